# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""The export folder: its file names, which folders an export may replace, and how it is put in place.

An export is written into a staging folder beside `--out` (`.<name>.partial-XXXX`) and moved into place only when
every variant passed, so a failed export leaves the earlier one untouched and no staging folder behind:

    out absent          stage -> out                        (one rename)
    out replaceable     out -> .<name>.old-XXXX, stage -> out, delete the old one
    --overwrite         each new file renamed over its namesake in out; the folder's other files are kept

`--out` may be a symbolic link: the folder it names is replaced and the link kept. Folders are created with the
umask's mode (0755 under the usual umask 022), not mkdtemp's 0700: a web server or another user reads the export.

A staging folder holds a lock (`LOCK`, flock) for as long as its export runs; the lock dies with the process, so the
staging folders of a killed export (SIGKILL, power loss) are recognised and removed by the next export beside them.

A folder is replaceable when it is empty or holds nothing but an earlier export of the same run: its report.json
names the same run (the same run directory, or a run with the same config.yaml) and every entry is a file that
export wrote (report.json, report.md, and the .tflite and manifest of each of its variants). Anything else (a user's
report.md, a same-named .json) is refused unless `--overwrite` is given.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path

REPORT_JSON = "report.json"  # the report, and which run it came from
REPORT_MD = "report.md"
MANIFEST_SUFFIX = ".json"  # <stem>.json beside each <stem>.tflite
LOCK = ".lock"  # in a staging folder, held (flock) by the export that writes it
STALE_UNLOCKED_SECONDS = 24 * 3600  # a staging folder without a lock (kerascnn before the lock): stale after a day
_HELD_LOCKS: dict[Path, int] = {}  # staging folder -> the open, locked LOCK file of this process


class OutputFolderError(ValueError):
    """`--out` cannot take the export: a file, an unwritable place, or a folder holding other files."""


def _earlier_export_files(out: Path, model_path: Path, fingerprint: str) -> set[str] | None:
    """The names an earlier export of this run wrote into `out`, or None when its report.json names another run
    (or there is none, or it is damaged)."""
    try:
        report = json.loads((out / REPORT_JSON).read_text())
        same_run = report.get("run_fingerprint") == fingerprint or (
            Path(report["source"]).resolve().parent == model_path.resolve().parent
        )
        files = {row["file"] for row in report["variants"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not same_run:
        return None
    return {REPORT_JSON, REPORT_MD, *files, *(str(Path(f).with_suffix(MANIFEST_SUFFIX)) for f in files)}


def check_out(out: Path, model_path: Path, fingerprint: str, overwrite: bool = False) -> None:
    """Raises unless the export may be put at `out` (see the module docstring); creates nothing.

    Raises:
        OutputFolderError: `out` is a file, cannot be created or written, or holds files that are not an earlier
            export of this run (without `overwrite`); the message names them and the fix.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(
            f"--out {out} is a file, not a folder: give a folder for the .tflite files and the report."
        )
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputFolderError(f"Cannot create the output folder {out} ({parent} is a file): give a writable --out.")
    if not os.access(parent, os.W_OK | os.X_OK) or (out.is_dir() and not os.access(out, os.W_OK | os.X_OK)):
        raise OutputFolderError(f"The output folder {out} is not writable: give a writable --out.")
    if not out.is_dir() or overwrite:
        return
    present = sorted(entry.name for entry in out.iterdir())
    ours = _earlier_export_files(out, model_path, fingerprint) if present else set()
    foreign = present if ours is None else [name for name in present if name not in ours]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        what = "another run's export or other files" if ours is None and (out / REPORT_JSON).exists() else "files"
        raise OutputFolderError(
            f"--out {out} holds {what} that are not an export of {model_path.parent} ({shown}): give a new or empty "
            "folder, or add --overwrite to write into it (same-named files are replaced, the others kept)."
        )


def target(out: Path) -> Path:
    """The folder an export to `out` writes: `out`, or the folder a symbolic link `out` names (the link stays)."""
    out = Path(out)
    return out.resolve() if out.is_symlink() else out


def _new_folder(parent: Path, prefix: str) -> Path:
    """A new folder `parent/<prefix><random>` with the umask's mode (mkdtemp's is 0700)."""
    while True:
        folder = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def _lock(path: Path) -> int | None:
    """An open file descriptor of `path` holding an exclusive flock, or None where another process holds it (or
    flock does not exist: Windows)."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_stale_staging(out: Path) -> list[Path]:
    """Removes the staging folders of exports to `out` whose process is gone and returns them: their LOCK is free
    (a live export holds it until it ends), or they have none and are older than a day. Never touches another
    export's live staging folder, or the `.old-` copy of an earlier export (it may be the only one left)."""
    out = Path(out)
    removed = []
    for folder in sorted(out.parent.glob(f".{out.name}.partial-*")):
        if folder in _HELD_LOCKS or folder.is_symlink() or not folder.is_dir():
            continue
        lock_file = folder / LOCK
        if lock_file.exists():
            fd = _lock(lock_file)
            if fd is None:
                continue  # a live export
            try:
                shutil.rmtree(folder, ignore_errors=True)
            finally:
                os.close(fd)
        elif time.time() - folder.stat().st_mtime > STALE_UNLOCKED_SECONDS:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            continue
        removed.append(folder)
    return removed


def stage(out: Path) -> Path:
    """A new empty staging folder beside `out` (its parents created, the umask's mode), locked by this process
    until `commit` or `discard`; stale staging folders of killed exports to `out` are removed first.

    Raises:
        OutputFolderError: the folder cannot be created.
    """
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out)
        staging = _new_folder(out.parent, f".{out.name}.partial-")
        fd = _lock(staging / LOCK)
        if fd is not None:
            _HELD_LOCKS[staging] = fd
        return staging
    except OSError as error:
        raise OutputFolderError(
            f"Cannot create the output folder {out} ({error.strerror}): give a writable --out."
        ) from error


def _unlock(staging: Path) -> None:
    """Removes the staging folder's LOCK file, then releases it (in this order: no other export sees it free)."""
    (Path(staging) / LOCK).unlink(missing_ok=True)
    fd = _HELD_LOCKS.pop(Path(staging), None)
    if fd is not None:
        os.close(fd)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    _unlock(staging)


def commit(staging: Path, out: Path, overwrite: bool = False) -> None:
    """Moves the finished export from `staging` to `out` (see the module docstring); `staging` is gone after.

    Raises:
        OSError: a rename failed; an earlier export moved aside is put back first.
    """
    out = target(out)
    try:
        _unlock(staging)  # its LOCK file must not reach `out`
        if overwrite and out.is_dir():
            for entry in sorted(staging.iterdir()):
                os.replace(entry, out / entry.name)
            return
        if not out.exists():
            os.rename(staging, out)
            return
        old = _new_folder(out.parent, f".{out.name}.old-")
        try:
            os.replace(out, old)  # onto the empty folder just made
        except BaseException:
            old.rmdir()
            raise
        try:
            os.rename(staging, out)
        except BaseException:  # Ctrl-C too: the earlier export goes back
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        discard(staging)
