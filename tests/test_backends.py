"""Runs the backend-portable tests (layers, data, models) again under the other Keras backends, each in a fresh process
(a process picks its backend once, when Keras is imported)."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[1]
OTHER_BACKENDS = [b for b in ("tensorflow", "jax", "torch") if b != keras.backend.backend()]


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_portable_suite_passes_under(backend):
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "backend_portable",
            "-p",
            "no:cacheprovider",
            "tests/layers",
            "tests/data",
            "tests/models",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, f"KERAS_BACKEND={backend}: {summary}\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert " passed" in summary and "failed" not in summary, summary
