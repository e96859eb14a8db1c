#!/usr/bin/env python3
# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""Create (or reuse) the edge-side virtual environment `.venv-edge` at the repository root with the edge package
installed from this checkout (`pip install -e "export[mediapipe,tflm]"`: kerascnn-edge with MediaPipe and
tflite-micro), and print its Python. Standard library only.

    python export/edge_venv.py            # .venv-edge/bin/python, built on first use
    python export/edge_venv.py --venv /tmp/edge

The environment is reused while export/pyproject.toml is unchanged (its sha256 is stored in the environment);
otherwise pip brings it up to date (its cache makes that cheap). The install is editable: the tools run this
checkout's code (`python -m kerascnn_edge.predict`), so a change to it needs no reinstall.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import subprocess
import sys
import venv
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no lock; one builder at a time is then the caller's business
    fcntl = None

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "export"  # the kerascnn-edge distribution
PYPROJECT = EDGE / "pyproject.toml"
STAMP = "kerascnn-edge-pyproject.sha256"


def python_of(env: Path) -> Path:
    return env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ensure(env: Path = ROOT / ".venv-edge", quiet: bool = True) -> Path:
    """The edge environment's Python, creating or updating the environment when needed.

    Raises:
        subprocess.CalledProcessError: pip could not install the package (its output says why).
    """
    wanted = hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()
    stamp = env / STAMP
    python = python_of(env)
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    with _exclusive(env.with_name(env.name + ".lock")):  # two processes (pytest -n workers) build it once
        if not (python.exists() and stamp.exists() and stamp.read_text().strip() == wanted):
            _build(env, python, quiet)
            stamp.write_text(wanted + "\n")
    return python


@contextlib.contextmanager
def _exclusive(lock: Path):
    """Holds an exclusive lock on the file `lock` (created if missing) while the block runs."""
    with open(lock, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(env: Path, python: Path, quiet: bool) -> None:
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            *(["-q"] if quiet else []),
            "--disable-pip-version-check",
            "--no-compile",  # no .pyc for every installed file: Python writes those it imports, on first import
            "-e",
            f"{EDGE}[mediapipe,tflm]",
        ],
        check=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-edge", help="where (default .venv-edge)")
    args = parser.parse_args(argv)
    try:
        print(ensure(args.venv, quiet=False))
    except subprocess.CalledProcessError as error:
        print(f"error: pip could not install {EDGE} into {args.venv} (exit {error.returncode}).", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
