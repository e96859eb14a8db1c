"""MediaPipe Tasks as a tested client: the edge environment (.venv-edge from export/pyproject.toml, no
TensorFlow) runs MediaPipe's Python ImageClassifier on every exported variant, labels and normalization from the
metadata, and gets the top-1 accuracy ai-edge-litert gets on the same 1,000 test images."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kerascnn.export import report as reports

ROOT = Path(__file__).resolve().parents[2]

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)

sys.path.insert(0, str(ROOT / "export"))
import edge_venv  # noqa: E402  (export/edge_venv.py, standard library only)


@pytest.fixture(scope="session")
def edge_python():
    """.venv-edge at the repository root, built (or brought up to date) with export/ (kerascnn-edge) installed."""
    return edge_venv.ensure()


@pytest.fixture(scope="session")
def test_data(tmp_path_factory):
    from kerascnn.data import load_dataset

    images, labels = (a[:1000] for a in load_dataset("fashion_mnist").splits["test"])
    path = tmp_path_factory.mktemp("mediapipe") / "test.npz"
    np.savez(path, images=images, labels=labels)
    return path, images, labels


def check_mediapipe(python, data, *models):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(python), "-m", "kerascnn_edge.check_mediapipe", "--data", str(data), *map(str, models)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["results"]


def test_edge_environment_has_no_tensorflow_and_is_reused(edge_python):
    done = subprocess.run(
        [
            str(edge_python),
            "-c",
            "import importlib.util as u, mediapipe, ai_edge_litert, PIL;"
            "print(u.find_spec('tensorflow') is None, u.find_spec('keras') is None)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["True", "True"], done.stderr
    stamp = edge_python.parents[1] / edge_venv.STAMP
    before = stamp.stat().st_mtime_ns
    assert edge_venv.ensure() == edge_python and stamp.stat().st_mtime_ns == before  # up to date: not rebuilt


def test_mediapipe_classifies_every_supported_variant_like_ai_edge_litert(exported, edge_python, test_data):
    root, report = exported
    data, _, _ = test_data
    results = check_mediapipe(edge_python, data, *(root / "out" / row["file"] for row in report["variants"].values()))
    by_variant = dict(zip(report["variants"], results))
    for variant, result in by_variant.items():
        assert result["images"] == 1000
        # predict.py's route in the edge venv gives what the TensorFlow side measured on the same images
        assert result["ai_edge_litert"]["accuracy"] == pytest.approx(report["variants"][variant]["accuracy"], abs=0.2)
        meta = result["metadata"]
        assert meta["identifier_ok"] and meta["color_space"] == "RGB" and meta["name"] == "vgg"
        assert meta["label_files"] == [["labels.txt", 2]] and meta["license"] == "Apache-2.0"
        if variant == "int8-io":  # MediaPipe takes uint8 or float32 image inputs only
            assert not result["mediapipe"]["supported"] and "INT8" in result["mediapipe"]["error"]
            continue
        assert result["mediapipe"]["supported"], result["mediapipe"]
        assert abs(result["mediapipe"]["accuracy"] - result["ai_edge_litert"]["accuracy"]) <= 0.2, result
        assert result["top1_agreement"] >= 99.0 and result["mediapipe"]["ms_per_image"] > 0
    manifest = json.loads((root / "out" / "vgg_float32.json").read_text())
    assert by_variant["float32"]["metadata"]["mean"] == pytest.approx(manifest["input"]["normalization"]["mean"])
    assert by_variant["uint8"]["metadata"]["mean"] == [0, 0, 0] and by_variant["uint8"]["metadata"]["std"] == [1, 1, 1]
    assert by_variant["uint8"]["metadata"]["stats_max"] == [255, 255, 255]


def test_the_report_gains_mediapipe_columns(exported, edge_python, test_data):
    root, report = exported
    _, images, labels = test_data
    report = json.loads(json.dumps(report))
    reports.add_mediapipe(report, root / "out", images, labels, python=edge_python)
    assert report["mediapipe"].startswith("mediapipe 1.")
    assert (
        report["variants"]["uint8"]["mediapipe"]["supported"]
        and not report["variants"]["int8-io"]["mediapipe"]["supported"]
    )
    text = reports.markdown(report)
    assert "| refused | - |" in text and "Refused: Type mismatch" in text
    missing = json.loads(json.dumps(report))
    reports.add_mediapipe(missing, root / "out", images, labels, python=root / "no-venv" / "bin" / "python")
    assert missing["mediapipe"] == reports.NOT_MEASURED


@pytest.mark.parametrize("variant", ["int8", "uint8"])
def test_shipped_models_run_in_mediapipe(edge_python, test_data, variant):
    data, _, _ = test_data
    [result] = check_mediapipe(edge_python, data, ROOT / "export" / "fashion_mnist" / f"vgg_{variant}.tflite")
    assert result["mediapipe"]["supported"]
    assert abs(result["mediapipe"]["accuracy"] - result["ai_edge_litert"]["accuracy"]) <= 0.2
    assert result["mediapipe"]["accuracy"] >= 92.5


def run_check(python, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(python), "-m", "kerascnn_edge.check_mediapipe", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    """200 new images of the RGB folder's 4 classes (not the training ones), as check_mediapipe.py takes them."""
    from tests.helpers import colour_shapes

    images, labels = colour_shapes(200, seed=1)
    path = tmp_path_factory.mktemp("colour") / "test.npz"
    np.savez(path, images=images, labels=labels)
    return path


def test_mediapipe_classifies_an_rgb_folder_run_like_ai_edge_litert(rgb_folder_export, edge_python, colour_data):
    """A run trained on an RGB folder with per-channel statistics: every variant MediaPipe takes (float32, float16,
    dynamic, int8, uint8) runs in it, one mean/std in its metadata, within 0.5 points of ai-edge-litert."""
    root, report, _, _ = rgb_folder_export
    results = check_mediapipe(
        edge_python, colour_data, *(root / "out" / row["file"] for row in report["variants"].values())
    )
    for variant, result in zip(report["variants"], results):
        meta = result["metadata"]
        assert meta["color_space"] == "RGB" and len(set(meta["mean"])) == 1 and len(set(meta["std"])) == 1, meta
        if variant == "int8-io":  # MediaPipe takes uint8 or float32 image inputs only
            assert not result["mediapipe"]["supported"] and "INT8" in result["mediapipe"]["error"]
            continue
        assert result["mediapipe"]["supported"], (variant, result["mediapipe"])
        assert abs(result["mediapipe"]["accuracy"] - result["ai_edge_litert"]["accuracy"]) <= 0.5, (variant, result)
        assert result["top1_agreement"] >= 99.5, (variant, result)


def test_check_mediapipe_errors_are_one_line_naming_the_file_or_flag(rgb_folder_export, edge_python, tmp_path):
    import shutil
    import zipfile

    root, _, images, labels = rgb_folder_export
    model = root / "out" / "vgg_uint8.tflite"
    data = model.read_bytes()
    stripped = tmp_path / "stripped.tflite"  # the zipped labels.txt cut off the end of the model
    stripped.write_bytes(data[: zipfile.ZipFile(model).infolist()[0].header_offset])
    shutil.copy(model.with_suffix(".json"), stripped.with_suffix(".json"))
    np.savez(tmp_path / "good.npz", images=images[:4], labels=labels[:4])
    np.savez(tmp_path / "range.npz", images=images[:4], labels=np.array([0, 1, 2, 7]))
    np.savez(tmp_path / "empty.npz", images=images[:0], labels=labels[:0])
    for args, message in [
        (["--data", tmp_path / "good.npz", stripped], f"{stripped}: its metadata names the label file labels.txt"),
        (["--data", tmp_path / "range.npz", model], "labels must be class indices 0..3 .* found 7"),
        (["--data", tmp_path / "empty.npz", model], "empty.npz holds no images"),
        (["--limit", "0", "--data", tmp_path / "good.npz", model], "--limit must be at least 1 image"),
    ]:
        done = run_check(edge_python, *args)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
        assert re.search(message, errors[0]), errors[0]


def test_a_model_without_metadata_is_not_supported_and_says_why(rgb_folder_export, edge_python, tmp_path):
    """MediaPipe runs a model without metadata with unnamed categories (0 % accuracy): check_mediapipe.py says it is
    not supported, and why, instead of reporting it supported."""
    import shutil

    from kerascnn.export import convert
    from kerascnn.export.exporter import load_keras_model

    root, _, images, labels = rgb_folder_export
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(convert(load_keras_model(root / "run" / "best.keras"), "float32"))
    shutil.copy(root / "out" / "vgg_float32.json", bare.with_suffix(".json"))
    np.savez(tmp_path / "good.npz", images=images[:4], labels=labels[:4])
    [result] = check_mediapipe(edge_python, tmp_path / "good.npz", bare)
    assert result["metadata"] is None and result["mediapipe"]["supported"] is False
    assert "no TFLite metadata" in result["mediapipe"]["error"] and "kerascnn.export" in result["mediapipe"]["error"]
