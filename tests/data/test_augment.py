import keras
import numpy as np
import pytest

from kerascnn.data import RandomCropFlip
from tests.helpers import random_images

pytestmark = pytest.mark.backend_portable


def candidates(image, padding, flip):
    """Every crop of the zero-padded image (and its mirror) that RandomCropFlip may return."""
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    h, w = image.shape[:2]
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[dy : dy + h, dx : dx + w]
            yield crop
            if flip:
                yield crop[:, ::-1]


@pytest.mark.parametrize("padding,flip", [(2, True), (3, False), (0, True)])
def test_each_output_is_a_padded_crop_or_its_mirror(padding, flip):
    x = random_images((8, 10, 9, 2))
    y = keras.ops.convert_to_numpy(RandomCropFlip(padding, flip, seed=1)(x, training=True))
    assert y.shape == x.shape
    for image, out in zip(x, y):
        assert any(np.array_equal(out, c) for c in candidates(image, padding, flip))
    assert not np.array_equal(y, x)  # something moved


def test_identity_outside_training():
    x = random_images((4, 8, 8, 1))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(RandomCropFlip(2)(x)), x)


def test_compiles_inside_a_jitted_train_step():
    """The layer allows XLA (Keras's random preprocessing layers turn jit_compile off)."""
    inputs = keras.Input((8, 8, 1))
    h = RandomCropFlip(2, seed=0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(h)))
    model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=True)
    assert model.jit_compile
    history = model.fit(random_images((8, 8, 8, 1)), np.arange(8) % 2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_bad_padding():
    with pytest.raises(ValueError, match="padding"):
        RandomCropFlip(-1)
