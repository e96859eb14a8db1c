"""Runs the backend-portable tests (layers, data, models) again under the other Keras backends, each in a fresh process
(a process picks its backend once, when Keras is imported). Both passes start together, when the first of these tests
runs, and go on side by side: they are mostly single-threaded Python, so on a 2-core machine the pair takes little
longer than one."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[1]
OTHER_BACKENDS = [b for b in ("tensorflow", "jax", "torch") if b != keras.backend.backend()]
TIMEOUT_S = 1200


@pytest.fixture(scope="module")
def backend_passes():
    """{backend: (process, log file)}: the portable suite started under each other backend, all at once."""
    passes = {}
    for backend in OTHER_BACKENDS:
        log = tempfile.TemporaryFile(mode="w+")
        command = [sys.executable, "-m", "pytest", "-q", "-m", "backend_portable", "-p", "no:cacheprovider"]
        process = subprocess.Popen(
            [*command, "tests/layers", "tests/data", "tests/models"],
            cwd=ROOT,
            env={**os.environ, "KERAS_BACKEND": backend},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        passes[backend] = (process, log)
    yield passes
    for process, log in passes.values():
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_portable_suite_passes_under(backend, backend_passes):
    process, log = backend_passes[backend]
    returncode = process.wait(timeout=TIMEOUT_S)
    log.seek(0)
    output = log.read()
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert returncode == 0, f"KERAS_BACKEND={backend}: {summary}\n{output[-8000:]}"
    assert " passed" in summary and "failed" not in summary, summary
