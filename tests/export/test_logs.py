"""What the two command lines print on stderr (kerascnn/cli.py): TensorFlow's, absl's and the TFLite converter's
log lines only with --verbose; Ctrl-C as one line and exit code 130."""

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from kerascnn import cli
from kerascnn.export import exporter
from kerascnn.export.__main__ import main as export_main

NOISE = re.compile(b"|".join(b"(?:" + pattern + b")" for pattern in cli.NOISE))
# what the user was shown before: start-up, the converter's log and settings, its warning, the XNNPACK delegate
MARKERS = ("oneDNN", "cuda drivers", "cuInit", "Ignored output_format", "fully_quantize", "Statistics for quantized")


def command_line(module, *args, cwd):
    """(exit code, stderr) of `python -m module args`, with this checkout on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")])}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, env=env, timeout=600
    )
    return done.returncode, done.stderr


ROOT = Path(__file__).resolve().parents[2]


def test_train_hides_the_library_start_up_lines_unless_verbose(tmp_path):
    """An empty --data-dir fails after TensorFlow is imported: without --verbose the error is all there is."""
    (tmp_path / "empty").mkdir()
    args = ["--data-dir", tmp_path / "empty", "--out", tmp_path / "run", "--no-tensorboard"]
    code, err = command_line("kerascnn.train", *args, cwd=ROOT)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    code, verbose = command_line("kerascnn.train", *args, "--verbose", cwd=ROOT)
    assert code == 2 and err.strip() in verbose
    assert any(NOISE.match(line.encode()) for line in verbose.splitlines()), verbose  # the filter's patterns match


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="export runs on the TensorFlow backend")
def test_an_int8_export_prints_only_its_own_progress(small_vgg_run, tmp_path):
    code, err = command_line(
        "kerascnn.export",
        small_vgg_run[0],
        *("--quant", "int8", "--calibration", "20", "--limit", "50", "--tflm-images", "0", "--no-mediapipe"),
        *("--out", tmp_path / "out"),
        cwd=ROOT,
    )
    assert code == 0, err
    assert [line for line in err.splitlines() if not line.startswith("[kerascnn.export] ")] == [], err


def test_ctrl_c_in_the_export_is_one_line_saying_what_was_kept_and_exit_130(tmp_path, capsys, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(exporter, "export_run", interrupt)
    assert export_main([str(tmp_path / "run"), "--no-mediapipe"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and "Traceback" not in err
    assert f"{tmp_path / 'run' / 'export'} is as it was" in err and "run the same command again" in err
    assert export_main([str(tmp_path / "run" / "last.keras"), "--out", str(tmp_path / "o")]) == 130
    assert f"{tmp_path / 'o'} is as it was" in capsys.readouterr().err
