"""kerascnn.optimize: the tf_keras twin, tfmot kept from switching the process to Keras 2, QAT and pruning
exported as builtin-only int8 models."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kerascnn import layers, models
from kerascnn.export import audit, convert, export_run
from kerascnn.export.__main__ import main as export_main
from kerascnn.optimize import NoStandardEquivalent, TwinMismatch, check_twin, prune, sparsity_per_layer, to_tf_keras
from tests.helpers import copy_run, perturb_batch_norms, random_images

if keras.backend.backend() != "tensorflow":
    pytest.skip("tfmot and the TFLite export run on the TensorFlow backend", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", models.names())
def test_twin_of_every_zoo_model_matches(name):
    x = random_images((32, 28, 28, 1))
    model = perturb_batch_norms(models.create(name))
    twin = to_tf_keras(model, x)
    assert type(twin).__module__.startswith("tf_keras")
    assert not [layer for layer in twin.layers if "kerascnn" in type(layer).__module__]
    assert check_twin(model, twin, random_images((8, 28, 28, 1), seed=1)) < 1e-4


def padding_model():
    inputs = keras.Input((13, 11, 3))
    h = layers.Conv2D(8, 3, padding=((1, 2), (0, 3)), name="asymmetric")(inputs)
    h = layers.ConvBNAct(8, 3, strides=2, padding=1, name="explicit_strided")(h)
    h = layers.ConvBNAct(8, 3, padding=(1, 1), groups=8, name="depthwise_same_equivalent")(h)
    h = layers.AvgPool2D(2, padding="same", name="avg_same")(h)
    h = layers.Conv2D(8, 2, dilation_rate=2, padding=2, activation="relu", name="dilated")(h)
    h = keras.layers.ReLU(max_value=6.0, name="relu6")(h)
    return keras.Model(inputs, layers.GAPHead(4, name="head")(h))


def test_twin_with_explicit_and_asymmetric_padding():
    x = random_images((16, 13, 11, 3))
    model = perturb_batch_norms(padding_model())
    twin = to_tf_keras(model, x)
    kinds = [type(layer).__name__ for layer in twin.layers]
    assert kinds.count("ZeroPadding2D") == 3  # asymmetric, explicit_strided, dilated; the same-equivalent pads none
    assert check_twin(model, twin, x) < 1e-4


def test_layer_without_standard_equivalent_is_named():
    class Squash(keras.layers.Layer):
        def call(self, x):
            return x / (1.0 + keras.ops.abs(x))

    inputs = keras.Input((8, 8, 1))
    h = Squash(name="my_squash")(layers.Conv2D(4, 3)(inputs))
    with pytest.raises(NoStandardEquivalent, match="'my_squash' of type Squash"):
        to_tf_keras(keras.Model(inputs, layers.GAPHead(3)(h)))
    h = layers.MaxPool2D(2, padding=1, name="padded_max")(inputs)
    with pytest.raises(NoStandardEquivalent, match="'padded_max'.*Use 'same' or 'valid'"):
        to_tf_keras(keras.Model(inputs, layers.GAPHead(3)(layers.Conv2D(4, 3)(h))))


def test_twin_check_catches_a_different_function():
    x = random_images((8, 28, 28, 1))
    model = perturb_batch_norms(models.create("lenet5"))
    twin = to_tf_keras(model, x)
    weights = twin.get_weights()
    twin.set_weights([weights[0] * 1.5, *weights[1:]])
    with pytest.raises(TwinMismatch, match="differs from it by"):
        check_twin(model, twin, x)


KERAS3_AFTER_TFMOT = """
import os, numpy as np, keras, tensorflow as tf
from kerascnn import models
from kerascnn.export import audit, convert
from kerascnn.optimize import tf_keras_and_tfmot, to_tf_keras
tf_keras, tfmot = tf_keras_and_tfmot()
twin = tfmot.quantization.keras.quantize_model(to_tf_keras(models.create("mobilenet")))
assert os.environ.get("TF_USE_LEGACY_KERAS") is None, os.environ.get("TF_USE_LEGACY_KERAS")
assert tf.keras.layers.Dense is keras.layers.Dense, tf.keras.layers.Dense
model = models.create("vgg")
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(np.zeros((8, 28, 28, 1), "float32"), np.zeros(8, "int32"), epochs=1, verbose=0)
audit(convert(model, "float32"), "float32")
print("KERAS", keras.__version__, type(model).__module__)
"""


def test_keras3_keeps_working_in_the_same_process_after_tfmot():
    done = subprocess.run(
        [sys.executable, "-c", KERAS3_AFTER_TFMOT], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "KERAS 3." in done.stdout and "keras.src" in done.stdout


def test_plain_tfmot_import_would_switch_the_process_to_keras2():
    """The hazard the containment guards against (if tfmot stops doing this, legacy.py can go)."""
    code = "import os, tensorflow_model_optimization; print(os.environ.get('TF_USE_LEGACY_KERAS'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "1", done.stderr[-2000:]


def test_pruning_reaches_the_target_sparsity_per_layer():
    x = random_images((256, 28, 28, 1))
    pruned = prune(
        to_tf_keras(models.create("mobilenet"), x[:8]), x, np.arange(256) % 10, 0.5, epochs=2, batch_size=32, verbose=0
    )
    sparsity = sparsity_per_layer(pruned)
    assert len(sparsity) == 8  # stem, 6 pointwise convs, the head's 1x1 conv (depthwise stays dense)
    assert all(abs(value - 0.5) < 0.01 for value in sparsity.values()), sparsity
    audit(convert(pruned, "int8", x[:64]), "int8")


@pytest.fixture(scope="module")
def optimized(tmp_path_factory, small_vgg_run):
    """A briefly trained vgg exported with PTQ int8, QAT, pruning and pruning-preserving QAT rows."""
    root = tmp_path_factory.mktemp("optimize")
    copy_run(small_vgg_run[0], root)
    report = export_run(
        root / "run",
        ["int8"],
        calibration=200,
        out=root / "out",
        limit=500,
        latency_rounds=1,
        qat_epochs=1,
        prune_sparsity=0.5,
        prune_epochs=1,
        finetune_images=1024,
    )
    return root, report


def test_qat_and_pruning_rows(optimized):
    root, report = optimized
    rows = report["variants"]
    assert list(rows) == ["int8", "int8 (QAT)", "pruned 50%", "pruned 50% + QAT"]
    assert rows["int8 (QAT)"]["agreement_with_keras"] >= 90.0
    assert rows["int8 (QAT)"]["weight_sparsity"] < 0.1
    for name in ("pruned 50%", "pruned 50% + QAT"):
        assert abs(rows[name]["weight_sparsity"] - 0.5) < 0.02, (name, rows[name]["weight_sparsity"])
        assert rows[name]["gzip_bytes"] < 0.85 * rows["int8"]["gzip_bytes"]
        assert rows[name]["target_sparsity"] == 0.5
    assert all(abs(value - 0.5) < 0.01 for value in rows["pruned 50%"]["sparsity_per_layer"].values())
    for stem in ("vgg_int8_qat", "vgg_pruned50_int8", "vgg_pruned50_qat_int8"):
        manifest = json.loads((root / "out" / f"{stem}.json").read_text())
        assert manifest["input"]["dtype"] == "float32" and manifest["labels"][0] == "T-shirt/top"
    markdown = (root / "out" / "report.md").read_text()
    assert "| int8 (QAT) |" in markdown and "## Sparsity per layer (pruned 50%" in markdown


def test_cli_flags_reach_the_report(optimized, tmp_path, capsys):
    """python -m kerascnn.export's main, in this process (a subprocess would spend its time importing TensorFlow)."""
    root, _ = optimized

    def run(*flags):
        status = export_main(
            [str(root / "run"), "--quant", "float32", "--limit", "50", "--calibration", "32", "--out", str(tmp_path)]
            + list(flags)
        )
        return status, capsys.readouterr().err

    status, err = run("--qat-epochs", "1", "--finetune-images", "64")
    assert status == 0, err[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report["variants"]) == ["float32", "int8 (QAT)"] and report["variants"]["int8 (QAT)"]["qat_epochs"] == 1
    assert "int8 (QAT): 1 epoch of quantization-aware training on 64 images" in err
    status, err = run("--prune-sparsity", "1.5")
    assert status == 2 and "prune_sparsity must be in [0, 1)" in err
