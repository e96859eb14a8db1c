"""Bad input to the export and to kerascnn-predict: one-line errors naming the problem and the fix (exit code 2),
and the tests that kill the mutation-testing survivors (rounding of int8 inputs, the report's sign)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kerascnn.export import export_run, metadata
from kerascnn.export import report as reports
from kerascnn.export.__main__ import main as export_main
from kerascnn.export.runner import quantize as runner_quantize
from tests.export.test_export import ROOT
from tests.helpers import raises_on_command_line

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)

from kerascnn_edge import predict  # noqa: E402  (TensorFlow-free)

# --- the export ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_export_limit_below_one_is_refused(limit, capsys):
    with pytest.raises(SystemExit) as stop:
        export_main(["runs/any", "--limit", limit])
    assert stop.value.code == 2 and f"--limit must be at least 1, got {limit}" in capsys.readouterr().err
    with raises_on_command_line("--limit must be at least 1 test image"):
        export_run("runs/any", limit=int(limit))


def test_export_out_that_is_a_file_or_not_writable(exported, tmp_path, monkeypatch, capsys):
    root, _ = exported
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="--out .*file is a file, not a folder"):
        export_run(root / "run", ["float32"], out=tmp_path / "file", mediapipe=False)
    assert export_main([str(root / "run"), "--quant", "float32", "--out", str(tmp_path / "file" / "sub")]) == 2
    assert "Cannot create the output folder" in capsys.readouterr().err
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if Path(path) == tmp_path / "ro" else real_access(path, mode)
    )  # root ignores permission bits: pretend
    (tmp_path / "ro").mkdir()
    with pytest.raises(ValueError, match="output folder .*ro is not writable"):
        export_run(root / "run", ["float32"], out=tmp_path / "ro", mediapipe=False)


def test_export_refuses_runs_without_labels_or_normalization_or_with_the_wrong_label_count(exported, tmp_path):
    root, _ = exported
    for change, message in [
        ({"labels": []}, "needs the class labels"),
        ({"labels": ["a"] * 9}, "gives 10 scores but the run has 9 labels"),
        ({"normalization": {"mean": [], "std": [1.0]}}, "mean must be 1 number"),
        ({"normalization": {"mean": [1.0], "std": [0]}}, "std must be > 0"),
    ]:
        run = tmp_path / "run"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(root / "run", run, ignore=shutil.ignore_patterns("checkpoint", "tb"))
        meta = {**json.loads((run / "dataset.json").read_text()), **change}
        (run / "dataset.json").write_text(json.dumps(meta))
        with pytest.raises(metadata.MetadataError, match=message):
            export_run(run, ["float32"], out=tmp_path / "out", mediapipe=False)
        assert not (tmp_path / "out").exists()  # refused before anything is written


def test_export_under_another_backend_says_it_runs_on_tensorflow(exported):
    root, _ = exported
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "kerascnn.export", str(root / "run"), "--quant", "float32"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "export runs on the TensorFlow backend" in done.stderr and "KERAS_BACKEND=tensorflow" in done.stderr


def test_export_help_says_what_finetune_images_does(capsys):
    with pytest.raises(SystemExit):
        export_main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "seeded random subset of N training images" in help_text and "uint8" in help_text


# --- mutation survivors: rounding, the audit (test_presets.py), the report's sign ----------------------------


@pytest.mark.parametrize("quantize", [runner_quantize, predict.quantize], ids=["runner", "predict"])
def test_integer_input_quantization_rounds_to_nearest(quantize):
    """x / scale = 0.8, -0.8, 2.6, 300: round gives 1, -1, 3 (and clips); floor gives 0, -1, 2; truncation 0, 0, 2."""
    x = np.float32([0.4, -0.4, 1.3, 150.0])
    np.testing.assert_array_equal(quantize(x, 0.5, 3, np.int8), np.int8([4, 2, 6, 127]))
    np.testing.assert_array_equal(quantize(x, 0.5, 3, np.uint8), np.uint8([4, 2, 6, 255]))


def test_per_class_change_is_export_minus_keras():
    y = np.array([0, 0, 1, 1])
    keras_predicted = np.array([0, 0, 1, 1])
    exported_predicted = np.array([0, 0, 1, 0])  # the export misses one image of class 1
    change = reports.per_class_change(exported_predicted, keras_predicted, y, ["a", "b"])
    assert change == {"a": 0.0, "b": -50.0}
    row = {
        "size_bytes": 1,
        "gzip_bytes": 1,
        "accuracy": 75.0,
        "agreement_with_keras": 75.0,
        "per_class_accuracy_change_points": change,
        "latency_ms": {"1_thread": 1.0},
        "ops": {},
    }
    text = reports.markdown(
        {
            "model": "m",
            "dataset": "d",
            "test_images": 4,
            "keras": {"accuracy": 100.0},
            "machine": "x",
            "variants": {"int8": row},
        }
    )
    assert "| b -50.00 |" in text  # the worst class is the one the export got worse on
