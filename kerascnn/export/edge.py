# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""Running the edge side's tools (kerascnn-edge's MediaPipe and TFLM checks) from the TensorFlow side: where the edge
environment's Python is, and one subprocess call that returns the tool's JSON or why it failed. The report's
MediaPipe columns (`kerascnn.export.report`) and its microcontroller section (`kerascnn.export.tflm`) both use it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository checkout, when kerascnn runs from one
EDGE_PYTHON_VARIABLE = "KERASCNN_EDGE_PYTHON"
MEDIAPIPE_CHECK_VARIABLE = "KERASCNN_MEDIAPIPE_CHECK"
MEDIAPIPE_MODULE = "kerascnn_edge.check_mediapipe"  # run as `python -m` in the edge environment, where it is installed
NOT_MEASURED = (
    "not measured (no .venv-edge: python export/edge_venv.py builds it; or give --edge-python, a Python with "
    f"kerascnn-edge installed, or {EDGE_PYTHON_VARIABLE})"
)


def edge_tools(
    python: str | os.PathLike | None = None, script: str | os.PathLike | None = None
) -> tuple[Path, Path | None]:
    """(the edge environment's Python, a MediaPipe-check script or None) for the report's MediaPipe columns: the
    arguments, else the environment variables KERASCNN_EDGE_PYTHON and KERASCNN_MEDIAPIPE_CHECK, else the repository
    checkout's .venv-edge/bin/python and None: the installed kerascnn-edge's `python -m kerascnn_edge.check_mediapipe`
    (the tools are modules of the edge package, found by the edge Python, not by a path in this checkout)."""
    python = python or os.environ.get(EDGE_PYTHON_VARIABLE) or ROOT / ".venv-edge" / "bin" / "python"
    script = script or os.environ.get(MEDIAPIPE_CHECK_VARIABLE)
    return Path(python), None if script is None else Path(script)


def run_edge_tool(command: list[str], timeout: float) -> tuple[dict | None, str | None]:
    """(the JSON it printed, None), or (None, why it failed) of an edge-side tool (`command` starts with the edge
    environment's Python). Why: its last "error: " line, else the signal that killed it with its last line of stderr
    (a crash prints no error line; what stderr last holds may be a runtime's INFO chatter), else its last line.
    This checkout's PYTHONPATH is left out, so nothing of the TensorFlow side reaches the edge environment."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if not done.returncode:
        return json.loads(done.stdout), None
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:
        return None, errors[-1].removeprefix("error: ")
    if done.returncode < 0:
        crashed = f"it crashed ({signal.Signals(-done.returncode).name}, exit {128 - done.returncode})"
        return None, crashed + (f" after printing {lines[-1]!r:.200}" if lines else " with no output")
    return None, (lines or [f"exit {done.returncode}"])[-1]
