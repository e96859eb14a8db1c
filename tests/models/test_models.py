import keras
import numpy as np
import pytest

from kerascnn import layers, models
from tests.helpers import assert_close, random_images

pytestmark = pytest.mark.backend_portable

KERAS_WINDOW_LAYERS = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)


def all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


# The models each backend's pass builds. On JAX a model's first build and its first train step compile an XLA program
# for each new weight and layer shape: 20-45 CPU seconds a model on this project's 2-core CPU (this file took 199 of
# the JAX pass's 356 CPU seconds). The JAX pass builds the models that presets train on JAX (vgg: quick; resnet: fast
# and best; mobilenet; mobilenetv2: fine-tuning); lenet5 and nin, the teaching models, build under TensorFlow and
# PyTorch, and their layers are tested on JAX in tests/layers.
MODELS_HERE = [n for n in models.names() if not (keras.backend.backend() == "jax" and n in ("lenet5", "nin"))]


@pytest.mark.parametrize("name", MODELS_HERE)
@pytest.mark.parametrize("input_shape,num_classes", [((28, 28, 1), 10), ((32, 32, 3), 4)])
def test_builds_from_kerascnn_layers_only(name, input_shape, num_classes):
    model = models.create(name, input_shape, num_classes)
    assert model.output_shape == (None, num_classes)
    assert not [layer.name for layer in all_layers(model) if isinstance(layer, KERAS_WINDOW_LAYERS)]
    assert any(isinstance(layer, layers.Conv2D) for layer in all_layers(model))


# on TensorFlow, mobilenetv2 trains every layer, saves and reloads in tests/export/test_finetuned_mobilenetv2.py (a
# fine-tuned run, exported and compared with Keras); the JAX and PyTorch passes train it here
TRAINED_HERE = [n for n in MODELS_HERE if not (n == "mobilenetv2" and keras.backend.backend() == "tensorflow")]


@pytest.mark.parametrize("name", TRAINED_HERE)
def test_trains_a_step_saves_and_reloads(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = models.create(name, (28, 28, 1), 10)
    # jit_compile "auto": XLA under JAX (one compilation of the step, twice as fast here as JAX's op-by-op
    # dispatch), none on TensorFlow's CPU or torch
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile="auto")
    x, y = random_images((16, 28, 28, 1)), np.arange(16) % 10
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    model.save(tmp_path / f"{name}.keras")
    reloaded = keras.saving.load_model(tmp_path / f"{name}.keras")
    assert_close(reloaded(x, training=False), model(x, training=False), atol=1e-6)


def test_parameter_counts_as_documented():
    documented = {
        "lenet5": 61_706,
        "mobilenet": 77_898,
        "mobilenetv2": 2_270_218,
        "nin": 287_354,
        "resnet": 698_282,
        "vgg": 289_066,
    }
    assert set(documented) == set(models.names())
    counts = {name: models.create(name).count_params() for name in MODELS_HERE}
    assert counts == {name: documented[name] for name in MODELS_HERE}
    assert documented["mobilenet"] < 100_000  # the edge net's budget: a change that outgrows it fails here


@pytest.mark.parametrize("name", [n for n in MODELS_HERE if n != "lenet5"])
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
    with pytest.raises(
        ValueError, match=r"Unknown model 'resnt'\. Did you mean 'resnet'\? Valid names: lenet5, mobilenet"
    ):
        models.create("resnt")


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="no option 'depth'.*Its options: width_multiplier, blocks, dropout"):
        models.create("mobilenet", depth=3)


@pytest.mark.parametrize(
    "input_shape,match", [((28, 28), "input_shape"), ((4, 4, 1), "at least 28x28"), ((0, 28, 1), "input_shape")]
)
def test_bad_input_shape(input_shape, match):
    with pytest.raises(ValueError, match=match):
        models.create("lenet5", input_shape)


def test_register_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="already registered"):
        models.register("vgg")(lambda input_shape, num_classes: None)


def variable_size_models():
    return [name for name in MODELS_HERE if name != "lenet5"]


@pytest.mark.parametrize("name", MODELS_HERE)
@pytest.mark.parametrize("input_shape", [(32, 32, 3), (96, 96, 3), (224, 224, 3), (40, 72, 3)])
def test_builds_for_any_fixed_size(name, input_shape):
    model = models.create(name, input_shape, 5)
    assert model.input_shape == (None, *input_shape)
    assert model.output_shape == (None, 5)


@pytest.mark.parametrize("name", MODELS_HERE)
def test_output_shape_for_agrees_with_a_forward_pass(name):
    model = models.create(name, (36, 44, 3), 4)
    assert models.input_size.output_shape_for(model, (36, 44, 3)) == (1, 4)
    assert model(random_images((1, 36, 44, 3)), training=False).shape == (1, 4)


@pytest.mark.parametrize("name", variable_size_models())
def test_variable_size_runs_on_two_sizes(name):
    model = models.create(name, (None, None, 3), 4)
    assert model.input_shape == (None, None, None, 3)
    for size in ((32, 48), (57, 29)):
        out = keras.ops.convert_to_numpy(model(random_images((2, *size, 3)), training=False))
        assert out.shape == (2, 4)
        assert_close(out.sum(axis=1), np.ones(2), atol=1e-5)


def test_lenet_refuses_a_variable_size_with_the_reason():
    with pytest.raises(ValueError, match="lenet5.*dense layers.*fixed height and width"):
        models.create("lenet5", (None, None, 1))


@pytest.mark.parametrize("name", MODELS_HERE)
def test_smallest_size_is_computed_and_named(name):
    """The smallest size comes from the layers' output-size formula; the model builds there and not below."""
    smallest = models.smallest_input_size(models.create(name, (64, 64, 3), 4))
    assert models.create(name, (*smallest, 3), 4).output_shape == (None, 4)
    for too_small in ((smallest[0] - 1, smallest[1]), (smallest[0], smallest[1] - 1)):
        if min(too_small) < 1:
            continue  # the model takes 1 pixel on this axis: nothing is too small
        with pytest.raises(ValueError, match=rf"at least {smallest[0]}x{smallest[1]} pixels.*too small"):
            models.create(name, (*too_small, 3), 4)


def test_lenet_smallest_size_follows_its_layers():
    # C1 keeps n (padding 2), S2 halves it, C3 takes 4, S4 halves, C5 needs 5: floor((floor(n/2) - 4)/2) >= 5
    assert models.smallest_input_size(models.create("lenet5", (32, 32, 1))) == (28, 28)
    assert models.smallest_input_size(models.create("lenet5", (32, 32, 1), 10, activation="sigmoid")) == (28, 28)
    with pytest.raises(ValueError, match=r"'lenet5' takes images of at least 28x28 pixels; input_shape=\(27, 40, 1\)"):
        models.create("lenet5", (27, 40, 1))
