"""The kerascnn-edge wheel on x86: built from export/, `pip install`ed into a fresh virtual environment (its
dependencies numpy, Pillow and ai-edge-litert from the package registry, as a user's pip gets them), where TensorFlow
cannot be imported and its `kerascnn-predict` console script classifies as the source tree's predict does. The arm64
twin (the same install under qemu) is tests/edge/test_pi.py. Skips only where the registry is unreachable."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.edge.conftest import load_arm64_check

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "export" / "fashion_mnist" / "vgg_uint8.tflite"
IMAGES = 20


def require_registry():
    for host in ("pypi.org", "files.pythonhosted.org"):
        try:
            socket.create_connection((host, 443), timeout=10).close()
        except OSError as error:
            pytest.skip(f"{host} is unreachable ({error}): pip installs the wheel's dependencies from it")


def test_the_wheel_installs_and_predicts_in_a_fresh_venv_without_tensorflow(tmp_path, capsys):
    require_registry()
    check = load_arm64_check()
    try:
        images, labels = check.build_images(tmp_path, IMAGES)
    except check.CheckError as error:  # Debian's Fashion-MNIST IDX files (scripts/setup-data)
        pytest.skip(str(error))
    wheel = check.build_wheel(tmp_path / "wheel")
    assert wheel.name.startswith("kerascnn_edge-") and wheel.name.endswith("-py3-none-any.whl")
    venv, bin_ = tmp_path / "venv", tmp_path / "venv" / "bin"
    # Nothing of this process's environment leaks in: no PYTHONPATH to the source tree, no TensorFlow site.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}

    def run(*command, **kwargs):
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, **kwargs)

    created = run(sys.executable, "-m", "venv", str(venv))
    assert created.returncode == 0, created.stderr
    install = run(str(bin_ / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel))
    assert install.returncode == 0, install.stdout + install.stderr

    tensorflow = run(str(bin_ / "python"), "-c", "import tensorflow")
    assert tensorflow.returncode == 1 and "No module named 'tensorflow'" in tensorflow.stderr
    where = run(str(bin_ / "python"), "-c", "import kerascnn_edge; print(kerascnn_edge.__file__)")
    package = Path(where.stdout.strip())
    assert package.is_relative_to(venv / "lib") and package.parent.parent.name == "site-packages", where

    installed = run(str(bin_ / "kerascnn-predict"), "--model", str(MODEL), "--json", "--top-k", "1", *map(str, images))
    assert installed.returncode == 0, installed.stderr
    from kerascnn_edge import predict  # the source tree's, in this process

    assert predict.main(["--model", str(MODEL), "--json", "--top-k", "1", *map(str, images)]) == 0
    source = capsys.readouterr().out
    top1 = [json.loads(line)["top"][0] for line in installed.stdout.splitlines()]
    assert top1 == [json.loads(line)["top"][0] for line in source.splitlines()]  # same runtime: same scores too
    names = json.loads(MODEL.with_suffix(".json").read_text())["labels"]
    correct = sum(names[label] == name for label, (name, _) in zip(labels, top1))
    assert len(top1) == IMAGES and correct >= 0.8 * IMAGES  # the shipped model: ~93 % on the test set
