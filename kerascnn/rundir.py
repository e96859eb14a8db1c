"""The run directory, the unit users copy around: its file names, `Run` (the one reader and writer of its
config.yaml, dataset.json and checkpoint/state.json, and the rule for which file is its model), the checks before a
run is started, resumed or replaced in it, its lock, and atomic writes.

Training writes it (`python -m kerascnn.train`), fine-tuning (`--init-from`), export (`python -m kerascnn.export`) and
`kerascnn.load_model` read it; all of them open it through `Run`. This module sits below everything else in kerascnn:
the typed settings (`kerascnn.train.TrainConfig`) are parsed by the function a caller gives `Run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

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


class RunDirError(RuntimeError):
    """--out cannot hold this run (not a writable folder, already a run, or not the run to resume)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


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


def checkpoint_path(run_dir: str | os.PathLike, name: object, state_file: Path) -> Path:
    """`run_dir/checkpoint/name`, refusing any `name` that is not a plain file name inside that folder
    (a state.json edited to `"../../other/checkpoint/epoch-0003.keras"` must not load or delete another run's files).

    Raises:
        CheckpointError: `name` is not a string naming a file directly inside the checkpoint folder.
    """
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise CheckpointError(
            f"{state_file} names {name!r} as its checkpoint, which is not a file name inside "
            f"{directory}. Restore the file or start a new run (a new --out)."
        )
    path = directory / name
    if path.resolve().parent != directory.resolve():
        raise CheckpointError(f"{state_file} names {name!r}, which resolves outside {directory}.")
    return path


class Run:
    """A run directory: creates it, opens it, and checks it before a run starts, resumes or replaces one in it.

    Nothing else in kerascnn opens its config.yaml, dataset.json or checkpoint/state.json. `parse_config` turns
    config.yaml's values into the typed settings `config()` returns (`kerascnn.train.resolve`: a `TrainConfig`);
    without it only the untyped `settings()` are read.

    Args:
        folder: the run directory (it need not exist yet).
        parse_config: values -> settings object, with the fields `resume`, `overwrite` and `epochs`
            (`kerascnn.train.resolve`).

    Example:
        >>> from kerascnn.train import resolve
        >>> run = Run("runs/quick", resolve)
        >>> run.config().model, run.dataset()["labels"][:2], run.model_file().name
        ('vgg', ['T-shirt/top', 'Trouser'], 'best.keras')
    """

    def __init__(self, folder: str | os.PathLike, parse_config: Callable[[dict], Any] | None = None):
        self.folder = Path(folder)
        self.parse_config = parse_config

    def path(self, name: str) -> Path:
        """The path of the run's file or folder `name` (one of the names above)."""
        return self.folder / name

    def is_run(self) -> bool:
        """True when the folder is a kerascnn run (`is_run`)."""
        return is_run(self.folder)

    def model_file(self) -> Path | None:
        """The run's model: best.keras, the epoch --keep chose (the best validation accuracy, or the last epoch),
        else last.keras; None when neither is there. Fine-tuning (--init-from), export and `kerascnn.load_model`
        all take this file."""
        for name in (BEST_MODEL, LAST_MODEL):
            if self.path(name).is_file():
                return self.path(name)
        return None

    # config.yaml

    def settings(self) -> dict:
        """config.yaml's values as saved (the marker line is a YAML comment).

        Raises:
            ValueError: config.yaml cannot be read, is not YAML, or holds no mapping (the message names it).
        """
        import yaml

        path = self.path(CONFIG)
        try:
            values = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            details = " ".join(str(error).split())
            raise ValueError(f"Cannot read {path} ({type(error).__name__}: {details}). Fix or restore it.") from error
        if not isinstance(values, dict):
            raise ValueError(
                f"{path} must hold a mapping of settings (e.g. `epochs: 10`), not {type(values).__name__}."
            )
        return values

    def config(self):
        """The run's settings, typed: `parse_config(self.settings())`.

        Raises:
            ValueError: config.yaml is unreadable, or `parse_config` refuses its values.
        """
        if self.parse_config is None:
            raise TypeError("Run(folder, parse_config=kerascnn.train.resolve) reads typed settings; this Run has none.")
        return self.parse_config(self.settings())

    def fingerprint(self) -> str:
        """sha256 of config.yaml: exports of runs with the same settings count as exports of the same run."""
        return hashlib.sha256(self.path(CONFIG).read_bytes()).hexdigest()

    # dataset.json

    def dataset(self) -> dict | None:
        """dataset.json (labels, input shape, normalization, the data spec), or None when the run has none.

        Raises:
            ValueError: dataset.json is there but is not a JSON object.
        """
        path = self.path(DATASET)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} cannot be read ({error}). Fix or remove it.") from error
        if not isinstance(record, dict):
            raise ValueError(f"{path} must hold a JSON object, not {type(record).__name__}. Fix or remove it.")
        return record

    def create(self, settings_yaml: str, dataset: dict, labels: list[str], overwrite: bool = False) -> None:
        """Creates the run: config.yaml (`RUN_MARKER`, then `settings_yaml`), dataset.json and labels.txt. With
        `overwrite`, an earlier run's files (`RUN_ENTRIES`) are deleted first."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if overwrite:
            clear_run(self.folder)
        atomic_write(self.path(CONFIG), f"{RUN_MARKER}\n{settings_yaml}")
        atomic_write(self.path(DATASET), json.dumps(dataset, indent=1))
        atomic_write(self.path(LABELS), "\n".join(labels) + "\n")

    # metrics.json

    def metrics(self) -> dict:
        """metrics.json: what training returned (test accuracy, history).

        Raises:
            FileNotFoundError: the run has not finished (no metrics.json).
        """
        return json.loads(self.path(METRICS).read_text())

    def write_metrics(self, metrics: dict) -> None:
        atomic_write(self.path(METRICS), json.dumps(metrics, indent=1))

    # checkpoint/state.json

    def state(self) -> dict | None:
        """The checkpoint's state.json, checked; None when the run has none.

        Raises:
            CheckpointError: state.json is not a JSON object naming an existing checkpoint inside the run.
        """
        path = self.path(CHECKPOINT_DIR) / STATE
        if not path.exists():
            return None
        try:
            state = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(
                f"{path} is not readable JSON ({error}): the run cannot be resumed. Start a new run (a new --out)."
            ) from error
        if not isinstance(state, dict) or not isinstance(state.get("epoch"), int) or "file" not in state:
            raise CheckpointError(
                f'{path} must be a JSON object with "epoch" (an int) and "file" (the '
                "checkpoint's name): the run cannot be resumed. Start a new run (a new --out)."
            )
        file = checkpoint_path(self.folder, state["file"], path)
        if not file.exists():
            raise CheckpointError(f"{path} names {state['file']}, which is missing: the checkpoint is incomplete.")
        state.setdefault("history", [])
        state.setdefault("best_val_accuracy", None)
        return state

    def write_state(self, state: dict) -> None:
        """Writes state.json (after the checkpoint it names: it always names a complete file)."""
        atomic_write(self.path(CHECKPOINT_DIR) / STATE, json.dumps(state, indent=1))

    def checkpoint_file(self, state: dict) -> Path:
        """The checkpoint that `state` (from `state()`) names."""
        return checkpoint_path(self.folder, state["file"], self.path(CHECKPOINT_DIR) / STATE)

    # the checks before a run starts, resumes or replaces one here

    def check_writable(self) -> None:
        """Raises RunDirError unless the folder, or the nearest folder above it that exists, is a writable folder."""
        folder = self.folder
        existing = next(p for p in (folder, *folder.parents) if p.exists() or p == Path(p.anchor) or p == Path("."))
        if not existing.is_dir():
            raise RunDirError(f"--out {folder}: {existing} is a file, not a folder. Choose another --out.")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RunDirError(f"--out {folder}: {existing} is not writable. Choose another --out.")

    def check_resumable(self) -> None:
        """Raises RunDirError unless the folder holds a run to resume: it exists, has a config.yaml, and that is a
        run's (`is_run`; runs from before that marker are known by their checkpoint state)."""
        folder = self.folder
        if not folder.is_dir():
            raise RunDirError(
                f"--resume: {folder} does not exist. Give the --out of the run to continue, or drop "
                "--resume to start a new run."
            )
        if not self.path(CONFIG).exists():
            raise RunDirError(
                f"--resume: {folder} holds no run ({CONFIG} is missing). Give the --out of the run "
                "to continue, or drop --resume to start a new run."
            )
        if not self.is_run() and not (self.path(CHECKPOINT_DIR) / STATE).exists():
            raise RunDirError(
                f"--resume: {folder} holds no kerascnn run (its {CONFIG} is not a run's, and there is no "
                f"{CHECKPOINT_DIR}/{STATE}). Give the --out of the run to continue, or drop --resume."
            )

    def check_start(self, config, may_change: Collection[str] = (), chief: bool = True) -> dict | None:
        """Checks, before anything is written, that the run `config` (typed settings: `resume`, `overwrite`,
        `epochs`) may start here; returns the checkpoint state to resume from (None: a new run, or nothing saved).

        A new run goes into a missing or empty folder; with `config.overwrite` into an earlier run, where it replaces
        only the files a run writes (`RUN_ENTRIES`, deleted by `create`), or into a folder that holds none of those
        (a user's folder keeps all its files). A resumed run keeps its saved settings except those in `may_change`,
        and trains on to at least the epochs it has done. Only the `chief` checks a new run's folder: the other
        processes of a run never write it, and on shared storage the chief may already be filling it.

        Raises:
            RunDirError: --out is not a writable folder; --resume of a folder that holds no run or with other
                settings or fewer epochs; --resume with --overwrite; a new run into a folder that is not empty (a
                kerascnn run or anything else) without --overwrite; --overwrite into a folder that is not a run but
                holds files a run would replace.
            CheckpointError: --resume of a run whose state.json is damaged.
        """
        self.check_writable()
        if config.resume and config.overwrite:
            raise RunDirError(
                "--resume continues the run in --out and --overwrite replaces it: give one of them, not both."
            )
        if not config.resume:
            if chief and config.overwrite:
                self._check_overwrite()
            elif chief:
                self._check_new()
            return None
        self.check_resumable()
        state = self.state()
        if state is not None:
            self._check_same_settings(config, may_change)
            self._check_epochs(config.epochs, state)
        return state

    def _check_new(self) -> None:
        folder = self.folder
        if not folder.is_dir() or all(p.name == LOCK for p in folder.iterdir()):
            return
        if self.is_run():
            raise RunDirError(
                f"--out {folder} already holds a kerascnn run. Continue it with --resume, replace it with "
                "--overwrite (its models, checkpoints and logs are deleted), or choose a new --out."
            )
        raise RunDirError(
            f"--out {folder} is not empty and not a kerascnn run: it holds {describe_entries(folder)}. "
            f"Choose a new or empty --out, or add --overwrite to write the run there (replacing only "
            f"{', '.join(RUN_ENTRIES)})."
        )

    def _check_overwrite(self) -> None:
        """--overwrite replaces a kerascnn run; in any other folder it must not delete or replace the user's files."""
        if self.is_run() or not self.folder.is_dir():
            return
        taken = run_entries_in(self.folder)
        if taken:
            raise RunDirError(
                f"--overwrite: {self.folder} is not a kerascnn run, and a run would replace its {', '.join(taken)}. "
                "Move them out of it, or choose a new --out."
            )

    def _check_same_settings(self, config, may_change: Collection[str]) -> None:
        """A resumed run keeps its saved settings (the checkpoint would be meaningless otherwise)."""
        saved, current = (json.loads(json.dumps(dataclasses.asdict(c))) for c in (self.config(), config))
        changed = sorted(k for k in current if k not in may_change and saved.get(k) != current[k])
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
            raise RunDirError(
                f"--resume must use the run's own settings; these differ from {self.path(CONFIG)}: "
                f"{details}. Resume with the original command, or use a new --out."
            )

    def _check_epochs(self, epochs: int, state: dict) -> None:
        """A resumed run trains on to `epochs`; fewer than it has done would leave config.yaml contradicting
        metrics.json."""
        done = state["epoch"] + 1
        if epochs < done:
            raise RunDirError(
                f"--resume --epochs {epochs}: {self.folder} has trained {done} epochs already. Give --epochs {done} "
                "or more to train it on, or train a new run (a new --out) for fewer epochs."
            )

    def lock(self):
        """`locked(self.folder)`: an exclusive lock while this process writes the run."""
        return locked(self.folder)
