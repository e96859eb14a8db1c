"""The run directory, the unit users copy around: its file names, and atomic writes into it.

Training writes it (`python -m kerascnn.train`), export reads it (`python -m kerascnn.export`); both name its
files through this module only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

CONFIG = "config.yaml"  # the resolved TrainConfig
DATASET = "dataset.json"  # labels, input shape, normalization
LABELS = "labels.txt"  # one label per line
METRICS = "metrics.json"  # test accuracy, history
BEST_MODEL = "best.keras"  # the run's model: the network at the best validation accuracy (--keep last: the last)
LAST_MODEL = "last.keras"  # the network after the last epoch
CHECKPOINT_DIR = "checkpoint"  # epoch-NNNN.keras (training model + optimizer) and state.json
STATE = "state.json"
TENSORBOARD_DIR = "tb"
EXPORT_DIR = "export"  # python -m kerascnn.export RUN writes here without --out
# what training writes into the run directory, and the default export (stale once the run is trained again):
# `--overwrite` deletes exactly these, and keeps anything else
RUN_ENTRIES = (CONFIG, DATASET, LABELS, METRICS, BEST_MODEL, LAST_MODEL, CHECKPOINT_DIR, TENSORBOARD_DIR, EXPORT_DIR)
# the first line of a run's config.yaml (a YAML comment, so `--config <run>/config.yaml` still reads it): a
# folder is a kerascnn run when its config.yaml starts with it, and a user's own config.yaml is told apart
RUN_MARKER = "# kerascnn run directory, written by python -m kerascnn.train"
# the lock file of the process writing the run (`locked`): not a run entry, and removed when that process is done
LOCK = ".kerascnn-lock"


class RunBusyError(RuntimeError):
    """Another process is writing the run directory; the message names its pid."""


def is_run(folder: str | os.PathLike) -> bool:
    """True when `folder` is a kerascnn run directory: its config.yaml starts with `RUN_MARKER`.

    Example:
        >>> is_run("runs/quick")
        True
    """
    try:
        with open(Path(folder) / CONFIG, encoding="utf-8", errors="replace") as file:
            return file.readline().rstrip("\r\n") == RUN_MARKER
    except OSError:  # missing, a folder, unreadable
        return False


def describe_entries(folder: str | os.PathLike, shown: int = 5) -> str:
    """ "a, b, c (and N more)": the first `shown` names in `folder`, sorted, for a message."""
    names = sorted(
        entry.name + ("/" if entry.is_dir() else "") for entry in Path(folder).iterdir() if entry.name != LOCK
    )
    more = f" (and {len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def run_entries_in(folder: str | os.PathLike) -> list[str]:
    """The `RUN_ENTRIES` that `folder` holds, folders with a trailing "/" (what `clear_run` would delete)."""
    paths = [Path(folder) / name for name in RUN_ENTRIES]
    return [path.name + ("/" if path.is_dir() else "") for path in paths if path.exists() or path.is_symlink()]


@contextlib.contextmanager
def locked(folder: str | os.PathLike):
    """Holds an exclusive OS lock on the run directory `folder` while the block runs: `fcntl.flock` on its `LOCK`
    file, which holds this process's pid. The kernel releases the lock when the process ends, however it ends, so a
    killed run leaves nothing locked. Creates `folder` if needed, and on exit removes the lock file and the folders it
    created when they are left empty (a run that fails its checks leaves nothing behind).

    Raises:
        RunBusyError: another process holds the lock (the message names its pid).

    Example:
        >>> with locked("runs/quick"):
        ...     train_into("runs/quick")
    """
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunBusyError(
                f"--out {folder} is being written by another training (pid {pid}). Wait for it to end, or choose "
                "another --out."
            ) from None
        # the holder before us may have removed the file between our open and our lock: lock the file now there
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # before the lock is released: a waiting process then locks a new file
        os.close(fd)
        for created_folder in created:
            with contextlib.suppress(OSError):  # not empty: the run's files are there
                created_folder.rmdir()


def clear_run(folder: str | os.PathLike) -> None:
    """Deletes the `RUN_ENTRIES` in `folder` (an earlier run's models, checkpoints, logs and metrics), nothing else:
    a run started with `--overwrite` must not inherit the old one's checkpoint/state.json or TensorBoard curves."""
    for name in RUN_ENTRIES:
        path = Path(folder) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes `data` to a temporary file beside `path`, then renames it over `path`: readers never see half a
    file, and an interrupted write leaves the previous file and no temporary one.

    Raises:
        OSError: the folder is missing or not writable (the temporary file is removed).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
