"""The CLI's first seconds: --help and argument errors before TensorFlow, help texts with defaults, quiet logs."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kerascnn.train.__main__ import parser

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import sys, atexit\n"
    "atexit.register(lambda: print('HEAVY', sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') "
    "if m in sys.modules), file=sys.stderr))\n"
    "from kerascnn.train.__main__ import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize(
    "args,code",
    [
        (["--help"], 0),
        (["--epochs", "0"], 2),
        (["--preset", "slow"], 2),
        (["--model-options", "[1]"], 2),
        (["--out", "/nonexistent", "--resume"], 2),
    ],
)
def test_help_and_argument_errors_answer_before_tensorflow(args, code):
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr[-2000:]
    assert "HEAVY []" in done.stderr, done.stderr[-2000:]


def test_import_kerascnn_is_light_and_subpackages_still_import():
    script = (
        "import sys, kerascnn\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'heavy'\n"
        "from kerascnn import layers, models\n"
        "assert kerascnn.models is models and 'mobilenet' in models.names()\n"
        "assert callable(kerascnn.load_model)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("setting,enabled", [(None, True), ("0", False)])
def test_import_kerascnn_turns_on_onednn_unless_the_user_chose(setting, enabled):
    """TensorFlow keeps its oneDNN kernels off on AVX2-only CPUs; kerascnn asks for them before TensorFlow loads,
    and a TF_ENABLE_ONEDNN_OPTS of the user's is kept."""
    script = (
        "import os, kerascnn\n"
        "import tensorflow\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], _pywrap_util_port.IsMklEnabled())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [setting or "1", str(enabled)]


def test_every_flag_has_help_with_its_default():
    text = parser().format_help()
    for action in parser()._actions:
        if action.option_strings and action.dest not in ("help", "resume", "config"):
            assert action.help and "default" in action.help, action.option_strings
    assert "(default: 128)" in text and "(default: 0.003)" in text


def test_run_log_is_one_line_per_epoch_and_quiet_when_not_a_terminal(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kerascnn.train",
            "--model",
            "lenet5",
            "--limit",
            "256",
            "--batch-size",
            "16",
            "--epochs",
            "2",
            "--no-tensorboard",
            "--out",
            str(tmp_path / "run"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    progress = [line for line in done.stdout.splitlines() if re.match(r"\s*\d+/\d+ ", line)]
    assert len(progress) == 2 and all(line.startswith("16/16 ") for line in progress), done.stdout
    assert "\b" not in done.stdout and "\r" not in done.stdout
    # TF_CPP_MIN_LOG_LEVEL=1 drops TensorFlow's INFO lines such as this one (the few that TensorFlow 2.21 prints
    # before its logging is initialized ignore the setting)
    assert "cpu_feature_guard" not in done.stderr, done.stderr[-3000:]
