import keras
import numpy as np
import pytest

from kerascnn import layers
from tests.helpers import assert_close, random_images

pytestmark = pytest.mark.backend_portable


def test_scores_are_the_means_of_the_class_maps():
    x = random_images((2, 6, 5, 8))
    head = layers.GAPHead(10, activation=None)
    maps = keras.ops.convert_to_numpy(head.class_maps(x))
    assert maps.shape == (2, 6, 5, 10)
    assert_close(head(x), maps.mean(axis=(1, 2)), atol=1e-5)
    # the maps are the 1x1 convolution (channel mixing) of the features
    kernel, bias = head.classifier.get_weights()
    assert_close(maps, x @ kernel[0, 0] + bias, atol=1e-5)


def test_softmax_by_default():
    probs = keras.ops.convert_to_numpy(layers.GAPHead(4)(random_images((3, 4, 4, 6))))
    assert_close(probs.sum(axis=1), 1.0, atol=1e-5)


def test_no_dense_layer_and_one_kernel_per_class():
    head = layers.GAPHead(10)
    head.build((None, 7, 7, 32))
    assert [tuple(w.shape) for w in head.weights] == [(1, 1, 32, 10), (10,)]


def test_invariant_to_circular_shifts_with_circular_padding():
    """A stride-1 conv with circular padding commutes with circular shifts; GAP then forgets the shift."""
    x = random_images((2, 12, 12, 3))
    conv = layers.Conv2D(8, 3, activation="relu")  # "valid" after wrapping the borders by hand
    head = layers.GAPHead(5)

    def model(images):
        wrapped = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
        return keras.ops.convert_to_numpy(head(conv(wrapped)))

    base = model(x)
    for shift in [(1, 0), (0, 5), (7, 3)]:
        assert_close(model(np.roll(x, shift, axis=(1, 2))), base, atol=1e-5)


def test_dropout_only_in_training():
    x = random_images((2, 4, 4, 16))
    head = layers.GAPHead(3, dropout=0.5, activation=None)
    assert_close(head(x), head(x), atol=0)
    assert not np.allclose(*(keras.ops.convert_to_numpy(head(x, training=t)) for t in (True, False)))


@pytest.mark.parametrize(
    "kwargs,match", [(dict(num_classes=0), "num_classes"), (dict(num_classes=3, dropout=1.0), "dropout")]
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.GAPHead(**kwargs)


def test_config_round_trip():
    head = layers.GAPHead(7, dropout=0.2, activation=None)
    assert layers.GAPHead.from_config(head.get_config()).get_config() == head.get_config()
