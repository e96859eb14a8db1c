# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""The user's input files, checked once for every edge tool: regular files only, the test-data .npz, byte sizes."""

from __future__ import annotations

import os
import re
import stat
import zipfile
from pathlib import Path

import numpy as np

KIB = 1024


class EdgeError(Exception):
    """A problem with the user's files or flags; the message names the file or flag and what to do."""


def regular_file(path: Path, what: str, fix: str) -> Path:
    """`path` if it is a regular file (or a link to one).

    A FIFO or a device would block a read forever, a folder raises IsADirectoryError deep inside a reader: both are
    refused here, before anything opens them.

    Raises:
        EdgeError: "{what} {path} does not exist" (or is a folder, or not a regular file), then `fix`.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise EdgeError(f"{what} {path} does not exist: {fix}.") from None
    except OSError as error:
        raise EdgeError(f"{what} {path} cannot be read ({error.strerror}): {fix}.") from None
    if stat.S_ISDIR(mode):
        raise EdgeError(f"{what} {path} is a folder, not a file: {fix}.")
    if not stat.S_ISREG(mode):
        raise EdgeError(f"{what} {path} is not a regular file (a FIFO or device, which a read waits on): {fix}.")
    return path


def load_data(path: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, H, W, C) uint8, labels (N,) int) of a test-data .npz (`images`, `labels`), checked.

    Raises:
        EdgeError: not a regular file, not an .npz with images and labels, no images, images that are not uint8
            pixels (N, H, W) or (N, H, W, 1 or 3), or a label count other than the image count.
    """
    where = f"--data {path}"
    regular_file(path, "--data", "give the .npz of test images and labels")
    try:
        with np.load(path) as data:
            images, labels = data["images"][:limit], data["labels"][:limit]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise EdgeError(
            f"{where} is not an .npz with `images` and `labels` ({error}): save one with "
            "np.savez(path, images=uint8_images, labels=class_indices)."
        ) from error
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise EdgeError(
            f"{where}: images must be uint8 pixels (N, H, W) or (N, H, W, 1 or 3), got {images.dtype} "
            f"{tuple(images.shape)}: give 0..255 pixels as np.uint8."
        )
    if not len(images):
        raise EdgeError(f"{where} holds no images (after --limit): give at least one image and label.")
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise EdgeError(
            f"{where}: labels must be one integer class index per image, got {labels.dtype} {tuple(labels.shape)} "
            f"for {len(images)} images."
        )
    return images, labels.astype(int)


def check_labels(truth: np.ndarray, labels: list[str], model_path: Path) -> None:
    """Refuses class indices outside 0..len(labels) - 1: scored against the model they would give an accuracy that
    means nothing (0 % for data of another dataset).

    Raises:
        EdgeError: names the first few indices out of range and the model's label count.
    """
    count = len(labels)
    wrong = sorted({int(v) for v in truth if not 0 <= v < count})
    if wrong:
        raise EdgeError(
            f"--data labels must be class indices 0..{count - 1} (the {count} labels of "
            f"{model_path.with_suffix('.json')}), found {', '.join(map(str, wrong[:5]))}: give the data this model "
            "was trained to classify, labels in the manifest's order."
        )


def parse_size(text: str) -> int:
    """Bytes from "262144", "256K", "256KB", "256KiB", "0.5M" (K = 1,024 bytes, M = 1,024 K): --mcu-ram, here and in
    `python -m kerascnn.export`.

    Raises:
        ValueError: not a positive size.
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)(?:i?B)?\s*", text)
    if not found:
        raise ValueError(f"{text!r} is not a size: give bytes or K/M, e.g. 262144, 256K or 0.5M")
    value = float(found.group(1)) * {"": 1, "k": KIB, "m": KIB * KIB}[found.group(2).lower()]
    if value < 1:
        raise ValueError(f"{text!r} is not a positive size")
    return int(value)
