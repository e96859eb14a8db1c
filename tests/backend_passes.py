"""The backend-portable tests (layers, data, models) run again under each other Keras backend, each pass a pytest
subprocess (a process picks its backend once, when Keras is imported).

The passes start as soon as the session's collection is done and shows a test of tests/test_backends.py: in the
pytest -n controller (whose workers then run the rest of the suite beside them), or in pytest itself without -n.
Each pass writes its output to `<folder>/<backend>.log` and, when it ends, its exit status to `<backend>.rc`;
tests/test_backends.py waits for those files. tests/conftest.py holds the hooks that call this module.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS_FILE = "tests/test_backends.py"
FOLDER_KEY = "kerascnn_backend_passes"  # in config.workerinput (pytest -n workers) or on config (one process)
# -n0: one process per pass; the passes only need the portable tests' folders
COMMAND = [sys.executable, "-m", "pytest", "-q", "-n0", "-m", "backend_portable", "-p", "no:cacheprovider"]
FOLDERS = ["tests/layers", "tests/data", "tests/models"]


def other_backends() -> list[str]:
    import keras

    return [backend for backend in ("tensorflow", "jax", "torch") if backend != keras.backend.backend()]


def create_folder(config) -> Path:
    """The folder of the passes' logs, made by the process that starts them (removed by `stop`)."""
    folder = Path(tempfile.mkdtemp(prefix="kerascnn-backend-passes-"))
    setattr(config, FOLDER_KEY, folder)
    config._kerascnn_passes = []
    return folder


def folder_of(config) -> Path:
    workerinput = getattr(config, "workerinput", None)
    return Path(workerinput[FOLDER_KEY]) if workerinput is not None else getattr(config, FOLDER_KEY)


def start(config, nodeids) -> None:
    """Starts one pass per other backend, once, if `nodeids` holds a test of tests/test_backends.py."""
    if config._kerascnn_passes or not any(nodeid.startswith(TESTS_FILE + "::") for nodeid in nodeids):
        return
    folder = folder_of(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    for backend in other_backends():
        log, status = folder / f"{backend}.log", folder / f"{backend}.rc"
        script = f"{shlex.join([*COMMAND, *FOLDERS])} > {shlex.quote(str(log))} 2>&1; echo $? > {status}.tmp"
        script += f" && mv {status}.tmp {status}"
        config._kerascnn_passes.append(
            subprocess.Popen(
                ["sh", "-c", script], cwd=ROOT, env={**env, "KERAS_BACKEND": backend}, start_new_session=True
            )
        )


def wait(config, backend: str, timeout_s: float) -> tuple[int | None, str]:
    """(exit status or None after `timeout_s`, output) of the pass under `backend`."""
    folder = folder_of(config)
    status = folder / f"{backend}.rc"
    deadline = time.monotonic() + timeout_s
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(1.0)
    log = folder / f"{backend}.log"
    output = log.read_text(errors="replace") if log.exists() else f"(no output: {log} was never written)"
    return (int(status.read_text()) if status.exists() else None), output


def stop(config) -> None:
    """Ends the passes still running (an interrupted session) and removes their folder."""
    for process in getattr(config, "_kerascnn_passes", []):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    folder = getattr(config, FOLDER_KEY, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
