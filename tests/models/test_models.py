import keras
import numpy as np
import pytest

from kerascnn import layers, models
from tests.helpers import assert_close, random_images

pytestmark = pytest.mark.backend_portable

KERAS_WINDOW_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
                       keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
                       keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)


def all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


@pytest.mark.parametrize("name", models.names())
@pytest.mark.parametrize("input_shape,num_classes", [((28, 28, 1), 10), ((32, 32, 3), 4)])
def test_builds_from_kerascnn_layers_only(name, input_shape, num_classes):
    model = models.create(name, input_shape, num_classes)
    assert model.output_shape == (None, num_classes)
    assert not [layer.name for layer in all_layers(model) if isinstance(layer, KERAS_WINDOW_LAYERS)]
    assert any(isinstance(layer, layers.Conv2D) for layer in all_layers(model))


@pytest.mark.parametrize("name", models.names())
def test_trains_a_step_saves_and_reloads(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = models.create(name, (28, 28, 1), 10)
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=False)
    x, y = random_images((16, 28, 28, 1)), np.arange(16) % 10
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    model.save(tmp_path / f"{name}.keras")
    reloaded = keras.saving.load_model(tmp_path / f"{name}.keras")
    assert_close(reloaded(x, training=False), model(x, training=False), atol=1e-6)


def test_parameter_counts_as_documented():
    counts = {name: models.create(name).count_params() for name in models.names()}
    assert counts == {"lenet5": 61_706, "mobilenet": 77_898, "nin": 287_354, "resnet": 698_282, "vgg": 289_066}
    assert counts["mobilenet"] < 100_000


@pytest.mark.parametrize("name", [n for n in models.names() if n != "lenet5"])
def test_class_maps_average_to_the_scores(name):
    model = models.create(name, (28, 28, 1), 10)
    head, features = models.head_features(model)
    x = random_images((2, 28, 28, 1))
    maps = keras.ops.convert_to_numpy(head.class_maps(features(x, training=False)))
    assert maps.shape[-1] == 10
    assert_close(keras.ops.softmax(maps.mean(axis=(1, 2))), model(x, training=False), atol=1e-5)


def test_options_reach_the_builder():
    narrow = models.create("resnet", (28, 28, 1), 10, width=8, depth=(1, 1))
    assert narrow.count_params() < models.create("resnet").count_params() / 20


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError,
                       match=r"Unknown model 'resnt'\. Did you mean 'resnet'\? Valid names: lenet5, mobilenet"):
        models.create("resnt")


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="no option 'depth'.*Its options: width_multiplier, blocks, dropout"):
        models.create("mobilenet", depth=3)


@pytest.mark.parametrize("input_shape,match", [((28, 28), "input_shape"), ((4, 4, 1), "too small|does not fit")])
def test_bad_input_shape(input_shape, match):
    with pytest.raises(ValueError, match=match):
        models.create("lenet5", input_shape)


def test_register_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="already registered"):
        models.register("vgg")(lambda input_shape, num_classes: None)
