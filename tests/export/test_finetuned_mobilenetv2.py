"""The whole way: keras.applications MobileNetV2 weights -> a fine-tuned kerascnn mobilenetv2 on a tiny RGB folder ->
float32, int8 and uint8 through the op audit, with metadata -> MediaPipe's ImageClassifier."""

import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from kerascnn import rundir
from kerascnn.export.audit import op_counts
from kerascnn.models import torch_weights
from tests.edge.test_mediapipe import check_mediapipe, edge_python  # noqa: F401  (the session fixture)
from tests.train.test_finetune import FOLDER_RUN, write_folder

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)

IMAGENET_PTH = Path(__file__).resolve().parents[2] / ".weights" / torch_weights.IMAGENET_PTH
needs_real_file = pytest.mark.skipif(
    not IMAGENET_PTH.is_file() or importlib.util.find_spec("torch") is None,
    reason=f"torch and torchvision's ImageNet MobileNetV2 are not installed: run {torch_weights.INSTALL_PTH}",
)

# after BN folding: convolutions (ReLU6 fused), the residual adds, the head's mean and softmax; (de)quantize at
# the edges of the integer variants. No MUL (an unfolded BN), no RELU6 of its own, no PAD ("same" padding).
VARIANTS = ["float32", "int8", "uint8"]
ALLOWED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "RESHAPE"}


def calibrate_batch_norms(model, folder):
    """Sets each BN's running mean and variance to its input's statistics on the folder's images, layer after layer:
    random Keras weights with the default statistics (0, 1) shrink the signal to nothing by the last block, which
    trained weights do not, and a head on all-zero features learns nothing."""
    from PIL import Image

    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted(folder.glob("*/*.png"))])
    x = images.astype("float32") / 127.5 - 1
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            h = keras.ops.convert_to_numpy(keras.Model(model.input, layer.input)(x))
            gamma, beta, _, _ = layer.get_weights()
            layer.set_weights([gamma, beta, h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2)) + 1e-3])


@pytest.fixture(scope="module")
def finetuned_export(tmp_path_factory):
    from kerascnn.export import export_run
    from kerascnn.train import resolve, train

    root = tmp_path_factory.mktemp("finetuned_mobilenetv2")
    folder = write_folder(root / "photos", classes=3, per_class=16, size=32, channels=3)
    weights = root / "keras_mobilenetv2_0.35.h5"
    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=False)
    calibrate_batch_norms(backbone, folder)
    backbone.save(weights)
    run = root / "run"
    train(resolve(dict(FOLDER_RUN, data_dir=str(folder), model="mobilenetv2", model_options=dict(alpha=0.35),
                       weights=str(weights), epochs=2, freeze_epochs=1, lr=1e-2, out=str(run))))  # fmt: skip
    # the variants a phone runs in MediaPipe (float16, dynamic and int8-io go through the same converter graph:
    # every preset passes the exporter's builtin-op audit on the RGB folder run of tests/export/test_export.py)
    report = export_run(run, VARIANTS, calibration=24, out=root / "out", latency_rounds=1, mediapipe=False)
    return root, run, report


def test_every_variant_passes_the_audit_with_bn_folded_and_relu6_fused(finetuned_export):
    root, run, report = finetuned_export
    assert list(report["variants"]) == VARIANTS
    for variant, row in report["variants"].items():
        tflite = (root / "out" / row["file"]).read_bytes()
        ops = op_counts(tflite)
        assert set(ops) <= ALLOWED_OPS, (variant, ops)
        # stem + 17 blocks (16 expansions) + the last 1x1 + the head's 1x1: 1 + 16 + 17 + 1 + 1 convolutions
        assert ops["CONV_2D"] == 1 + 16 + 17 + 1 + 1 and ops["DEPTHWISE_CONV_2D"] == 17, (variant, ops)
        assert ops["ADD"] == 10, (variant, ops)  # the residual blocks
    manifest = json.loads((root / "out" / report["variants"]["int8"]["file"]).with_suffix(".json").read_text())
    assert manifest["input"]["normalization"]["mean"] == [128.0] * 3  # ImageNet's (x - 128) / 127.5, from dataset.json
    assert json.loads((run / rundir.DATASET).read_text())["normalization"]["std"] == [127.5] * 3


def folder_in_mediapipe(edge_python, folder, out, report, tmp_path):  # noqa: F811
    """kerascnn-check-mediapipe's results for each of VARIANTS in `out` on every image of `folder` (as a camera
    would give them), and the images' labels."""
    from PIL import Image

    files = sorted(folder.glob("*/*.png"))
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    labels = np.array([int(f.parent.name[len("class") :]) for f in files])
    np.savez(tmp_path / "test.npz", images=images, labels=labels)
    models = (out / report["variants"][variant]["file"] for variant in VARIANTS)
    return check_mediapipe(edge_python, tmp_path / "test.npz", *models), labels


def test_the_finetuned_model_runs_in_mediapipe(finetuned_export, edge_python, tmp_path):  # noqa: F811
    root, run, report = finetuned_export
    results, labels = folder_in_mediapipe(edge_python, root / "photos", root / "out", report, tmp_path)
    for variant, result in zip(VARIANTS, results):
        assert result["mediapipe"]["supported"], (variant, result["mediapipe"])
        assert result["metadata"]["mean"] == pytest.approx([128.0] * 3) or variant == "uint8"
        assert result["top1_agreement"] >= 90.0, (variant, result)
        assert result["images"] == len(labels)


@needs_real_file
def test_the_imagenet_pth_fine_tuned_runs_in_mediapipe_and_predict(edge_python, tmp_path):  # noqa: F811
    """torchvision's ImageNet file (`--weights .weights/mobilenet_v2-b0353104.pth`, alpha 1.0) fine-tuned on a small
    RGB folder: the run normalizes as torchvision (dataset.json), and its float32, int8 and uint8 files, metadata
    written, run in MediaPipe's ImageClassifier and in kerascnn-predict (ai-edge-litert) with the same top-1."""
    from kerascnn.export import export_run
    from kerascnn.train import resolve, train

    folder = write_folder(tmp_path / "photos", classes=3, per_class=16, size=32, channels=3)
    run = tmp_path / "run"
    train(resolve(dict(FOLDER_RUN, data_dir=str(folder), model="mobilenetv2", weights=str(IMAGENET_PTH), epochs=2,
                       freeze_epochs=1, lr=1e-2, out=str(run))))  # fmt: skip
    normalization = json.loads((run / rundir.DATASET).read_text())["normalization"]
    assert normalization["mean"] == pytest.approx([255 * m for m in (0.485, 0.456, 0.406)])
    assert normalization["std"] == pytest.approx([255 * s for s in (0.229, 0.224, 0.225)])
    report = export_run(
        run, VARIANTS, calibration=24, out=tmp_path / "out", latency_rounds=1, mediapipe=False, tflm_images=0
    )
    results, labels = folder_in_mediapipe(edge_python, folder, tmp_path / "out", report, tmp_path)
    for variant, result in zip(VARIANTS, results):
        assert result["mediapipe"]["supported"], (variant, result["mediapipe"])
        assert result["top1_agreement"] >= 90.0, (variant, result)
        assert result["images"] == len(labels)
