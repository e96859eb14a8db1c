"""export/pi/arm64_check.py: kerascnn-predict, pip-installed from the kerascnn-edge wheel into a fresh virtual
environment on arm64 (Raspberry Pi OS = Debian bookworm) under qemu-user, agrees with the same install on x86, and the
qemu 7.2 crash of ai-edge-litert 2.3.0 is the emulator's /proc/cpuinfo, not the wheel on a Pi.

The emulated runs download about 170 MB (Debian arm64 packages, trixie's qemu-user, arm64 and x86 wheels; 230 MB more
for the slow test's other rows) into export/pi/.cache on first use; they skip only where qemu-aarch64,
apt-get/dpkg-deb or the registries are missing."""

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.edge.conftest import ARM64_CHECK as SCRIPT
from tests.edge.conftest import load_arm64_check as load_script

ROOT = Path(__file__).resolve().parents[2]
SOURCE_PACKAGE = ROOT / "export" / "kerascnn_edge"


def test_png_writer_round_trips_through_pillow(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (28, 20), dtype=np.uint8)
    (tmp_path / "x.png").write_bytes(load_script().png(pixels.tobytes(), 20, 28))
    with Image.open(tmp_path / "x.png") as image:
        assert image.mode == "L" and image.size == (20, 28)
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_unknown_row_is_refused_with_the_valid_names():
    result = subprocess.run([sys.executable, str(SCRIPT), "--rows", "pi9"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown rows ['pi9']" in result.stderr and "pi4" in result.stderr


def test_a_file_that_is_not_a_manifest_is_refused_in_one_line(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"")
    (tmp_path / "m.json").write_text('{"labels": ["a"]}')
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(tmp_path / "m.tflite")], capture_output=True, text=True
    )
    assert result.returncode == 2 and "is not a kerascnn manifest" in result.stderr
    assert "Traceback" not in result.stderr


def require_emulation():
    for tool, package in (("qemu-aarch64", "qemu-user"), ("apt-get", "apt"), ("dpkg-deb", "dpkg")):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is missing (apt-get install {package})")
    for host, port in (("deb.debian.org", 80), ("pypi.org", 443), ("files.pythonhosted.org", 443)):
        try:
            socket.create_connection((host, port), timeout=10).close()
        except OSError as error:
            pytest.skip(f"{host} is unreachable ({error}): the arm64 check downloads Debian packages and wheels")


def check(tmp_path, rows: str, images: int) -> dict:
    out = tmp_path / "arm64.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", rows, "--images", str(images), "--json-out", str(out)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stderr
    return {row["row"]: row for row in json.loads(out.read_text())["rows"]}


def assert_installed_from_the_wheel(row: dict) -> None:
    """The row ran kerascnn_edge from its fresh environment's site-packages, not the source tree; no TensorFlow."""
    edge = row["edge"]
    package = Path(edge["package"])
    assert package.is_relative_to(Path(edge["venv"]) / "lib"), edge
    assert package.parent.parent.name == "site-packages" and not package.is_relative_to(SOURCE_PACKAGE), edge
    assert edge["tensorflow"] is False, edge


def test_raspberry_pi_4_and_5_cpus_agree_with_x86(tmp_path):
    """Cortex-A72 (Pi 4) and Cortex-A76 (Pi 5) under trixie's qemu 10, ai-edge-litert 2.3.0, kerascnn-predict
    pip-installed from the wheel into a fresh arm64 virtual environment: same top-1 as the same install on x86."""
    require_emulation()
    rows = check(tmp_path, "pi4,pi5", 100)
    x86 = rows["x86-2.3.0"]
    assert x86["status"] == "ok" and x86["client"] == "kerascnn-predict"
    assert_installed_from_the_wheel(x86)
    assert rows["pi4"]["edge"]["venv"] != x86["edge"]["venv"]
    for name in ("pi4", "pi5"):
        assert rows[name]["status"] == "ok"
        assert_installed_from_the_wheel(rows[name])
        assert rows[name]["differ_from_x86"] <= 1  # int8 kernels may differ by CPU; measured 0 of 500
        assert abs(rows[name]["accuracy"] - x86["accuracy"]) <= 1.0


@pytest.mark.slow
def test_full_table_and_the_qemu_7_2_root_cause(tmp_path):
    """export/pi/README.md's table: 500 images, every row. `pytest -m slow tests/edge/test_pi.py` (~15 minutes)."""
    require_emulation()
    rows = check(tmp_path, "all", 500)
    for name in (
        "pi4",
        "pi5",
        "bookworm-1.4",
        "trixie-max",
        "trixie-1.4-a72",
        "bookworm-2.3-picpuinfo",
        "bookworm-2.3-picpuinfo-nosme",
    ):
        assert rows[name]["status"] == "ok" and rows[name]["differ_from_x86"] <= 5, rows[name]
        assert_installed_from_the_wheel(rows[name])
    # ai-edge-litert >= 2.2 dies in cpuinfo's ARM /proc/cpuinfo parser on the x86 text that qemu 7.2 passes through,
    # under any -cpu; the same wheel and qemu run once /proc/cpuinfo is a Pi's.
    assert rows["bookworm-2.3"]["status"] == rows["bookworm-2.3-a72"]["status"] == "crash: SIGSEGV"
    # qemu 7.2's SME emulation gets XNNPACK's SME int8 kernel wrong; qemu 10 runs the same kernel right.
    assert rows["bookworm-2.3-picpuinfo-max"]["differ_from_x86"] > 100
    # mediapipe's aarch64 wheel is built for Armv8.1 atomics (LSE): a Pi 4's Cortex-A72 (Armv8.0) cannot run it.
    assert rows["pi4-mediapipe"]["status"].startswith("crash: SIGILL") and "lse" in rows["pi4-mediapipe"]["status"]
    manifest = json.loads((ROOT / "export" / "fashion_mnist" / "vgg_int8.json").read_text())
    if manifest["input"]["shape"][-1] == 3:  # MediaPipe takes RGB models with metadata only
        assert rows["pi5-mediapipe"]["status"] == "ok" and rows["pi5-mediapipe"]["differ_from_x86"] <= 5
    else:
        assert rows["pi5-mediapipe"]["status"].startswith("error: MediaPipe refuses")
