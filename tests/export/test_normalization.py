"""One mean/std for every input channel: the run's per-channel normalization folded into the model
(kerascnn.export.normalization). Untrained models with random weights: fast."""

import keras
import numpy as np
import pytest

from kerascnn import layers, models
from kerascnn.export import TFLiteClassifier, convert
from kerascnn.export.audit import op_counts
from kerascnn.export.normalization import share_normalization, shared_statistics

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)

# channel means far apart (a photo folder under a blue sky is not far from this): a border error would show
MEAN, STD = [30.0, 120.0, 200.0], [20.0, 60.0, 40.0]


def pixels(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.float32)


def trained_input(images):
    return (images - np.float32(MEAN)) / np.float32(STD)


def randomize(model, seed=0):
    """Random weights everywhere, batch norm statistics and biases included (zeros would hide a wrong fold)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        value = rng.uniform(0.5, 1.5, shape) if "variance" in weight.path else rng.normal(0, 0.5, shape)
        weight.assign(value.astype("float32"))
    return model


def valid_conv_model():
    inputs = keras.Input((12, 20, 3))
    h = layers.Conv2D(4, 3, name="first")(inputs)
    return keras.Model(inputs, layers.GAPHead(3, name="head")(h), name="valid")


def pool_first_model():
    inputs = keras.Input((12, 20, 3))
    h = layers.MaxPool2D(2, name="pool")(inputs)
    return keras.Model(inputs, layers.GAPHead(3, name="head")(layers.Conv2D(4, 3, padding="same", name="c")(h)))


@pytest.mark.parametrize(
    "build, fold, added",
    [
        (lambda: models.create("vgg", (12, 20, 3), 3, widths=(4, 8, 8)), "shift", {"ADD": 1}),  # ConvBNAct "same"
        (lambda: models.create("lenet5", (28, 28, 3), 3), "shift", {"ADD": 1}),  # padding=2, with a bias
        (valid_conv_model, "bias", {}),
        (pool_first_model, "affine", {"MUL": 1, "ADD": 1}),
    ],
    ids=["vgg", "lenet5", "valid", "pool-first"],
)
def test_the_shared_input_gives_the_trained_outputs_everywhere_borders_included(build, fold, added):
    model = randomize(build())
    shared = share_normalization(model, MEAN, STD)
    assert shared.fold == fold and shared.model.name == model.name
    assert shared.mean == [shared.mean[0]] * 3 and shared.std == [shared.std[0]] * 3
    images = pixels((6, *model.inputs[0].shape[1:]))
    expected = model.predict(trained_input(images), verbose=0)
    np.testing.assert_allclose(shared.model.predict(shared.normalize(images), verbose=0), expected, atol=1e-5)
    # the first layer's own outputs agree too: the head's average would hide an error on the border pixels only
    first = model.layers[1].name
    inner = keras.Model(model.inputs, model.get_layer(first).output)
    inner_shared = keras.Model(shared.model.inputs, shared.model.get_layer(first).output)
    np.testing.assert_allclose(
        inner_shared.predict(shared.normalize(images), verbose=0),
        inner.predict(trained_input(images), verbose=0),
        atol=1e-4,
    )
    before, after = op_counts(convert(model)), op_counts(convert(shared.model))
    assert {op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)} == added
    np.testing.assert_allclose(TFLiteClassifier(convert(shared.model))(shared.normalize(images)), expected, atol=1e-5)


def test_folding_the_shift_into_the_bias_of_a_padded_convolution_would_be_wrong_at_the_borders():
    """Why a padded first convolution keeps the shift as an ADD: the bias fold is exact inside the image, off on the
    border pixels (zero padding is the pixel M in the shared input, the pixel m_c in the trained one)."""
    inputs = keras.Input((8, 8, 3))
    model = randomize(keras.Model(inputs, layers.Conv2D(2, 3, padding="same", name="c")(inputs)))
    shared = share_normalization(model, MEAN, STD)
    images = pixels((2, 8, 8, 3))
    exact = model.predict(trained_input(images), verbose=0)
    kernel = (
        np.asarray(model.get_layer("c").kernel) * (np.float32(shared.std[0]) / np.float32(STD))[None, None, :, None]
    )
    shift = (shared.mean[0] - np.float32(MEAN)) / shared.std[0]
    bias_folded = keras.Model(inputs, layers.Conv2D(2, 3, padding="same", name="c")(inputs))
    bias_folded.get_layer("c").set_weights(
        [kernel, np.asarray(model.get_layer("c").bias) + np.einsum("abcf,c->f", kernel, shift)]
    )
    error = np.abs(bias_folded.predict(shared.normalize(images), verbose=0) - exact)
    assert error[:, 1:-1, 1:-1].max() < 1e-4 and error[:, 0].max() > 0.05  # exact inside, wrong on the border
    np.testing.assert_allclose(shared.model.predict(shared.normalize(images), verbose=0), exact, atol=1e-4)


def test_shared_statistics_are_a_whole_mean_and_the_pooled_std():
    mean, std = shared_statistics(MEAN, STD)
    assert mean == 117.0  # (30 + 120 + 200) / 3 = 116.67, rounded to a whole pixel value: uint8 q = pixel
    everything = np.concatenate(  # three channels with exactly these means and stds, pooled
        [m + s * np.array([-1.0, 1.0]) for m, s in zip(MEAN, STD)]
    )
    assert std == pytest.approx(everything.std(), abs=1e-4)


def test_a_model_whose_channels_share_one_mean_and_std_is_kept():
    model = models.create("lenet5", (28, 28, 3), 3)
    shared = share_normalization(model, [72.9762], [90.0342])
    assert shared.model is model and shared.fold is None and shared.mean == [72.9762] * 3
    grey = share_normalization(models.create("lenet5", (28, 28, 1), 3), [72.9762], [90.0342])
    assert grey.fold is None and grey.std == [90.0342]


def test_a_normalization_that_does_not_fit_the_input_is_refused():
    with pytest.raises(ValueError, match="needs 1 or 3 means and stds"):
        share_normalization(models.create("lenet5", (28, 28, 3), 3), [1.0, 2.0], [1.0])


@pytest.mark.parametrize("mean, std", [([100.0] * 3, STD), (MEAN, [50.0] * 3)], ids=["one-mean", "one-std"])
def test_channels_that_share_only_the_mean_or_only_the_std_are_folded(mean, std):
    """Both must be shared to keep the model: one mean with three stds is still per-channel (MediaPipe refuses it)."""
    model = randomize(valid_conv_model())
    shared = share_normalization(model, mean, std)
    assert shared.fold == "bias" and len(set(shared.mean)) == 1 and len(set(shared.std)) == 1
    images = pixels((2, 12, 20, 3))
    expected = model.predict((images - np.float32(mean)) / np.float32(std), verbose=0)
    np.testing.assert_allclose(shared.model.predict(shared.normalize(images), verbose=0), expected, atol=1e-5)
