"""A folder of the user's own images, root/<class name>/.../<image file>, as a `Source` (`FolderSource`): listed and
checked without decoding, decoded by `kerascnn.data.images`; split, limited and read by `kerascnn.data.stream`.

The rules are those of `keras.utils.image_dataset_from_directory` (class names are the sorted names of root's
sub-folders, files in nested sub-folders count under their class folder, a file's suffix says whether it is an
image), plus:
- hidden files and folders (a leading ".", such as macOS's `._IMG_0001.jpg`) are not images;
- a class folder whose name cannot be a line of labels.txt (only whitespace, or a newline or other control
  character in it) is refused, naming the folder; so are class folders whose names differ only by blanks around
  them ("a" and "a "), whose labels would print the same;
- a class folder without images is refused, naming the folder: it would be an output the model can never
  predict, and leaving it out silently would shift every later label;
- a symbolic link loop (a file link that points back to itself, a folder link that leads to a folder above it)
  is refused, naming the link, with or without --skip-bad-images: it is a mistake in the folder, not a bad image.

Bad files are found before the first epoch: every file's header is opened with Pillow (`check_image_file`: the
format, size, mode and EXIF orientation, and Pillow's `verify`, which checks every PNG chunk's CRC); a JPEG must
reach its end-of-image marker (bytes after it, as cameras write, are fine; so is MPO, a JPEG with more frames).
A file that passes the header check but still cannot be decoded is named when met; with `skip_bad=True` every
file is decoded once before training instead, and the ones that fail are left out and counted.
"""

from __future__ import annotations

import errno
import os
import unicodedata
from pathlib import Path

import numpy as np

from kerascnn.data import images as image_ops
from kerascnn.data.pipeline import Split
from kerascnn.data.source import Listing, Source

GREYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N"}
COLOR_MODES = {"grayscale": 1, "rgb": 3}
DECODED_FORMATS = {"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP"}  # what tf.io.decode_image reads


def label_problem(name: str) -> str | None:
    """Why folder `name` cannot be a label (one line of labels.txt), or None."""
    if not name.strip():
        return "it is empty or only whitespace"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "it holds a newline or another control character"
    return None


def _image_files(folder: Path, seen: dict) -> list[str]:
    """The image files under `folder`, nested sub-folders included, sorted by path; `seen` maps each folder already
    walked ((device, inode)) to its path, to catch link loops."""
    found = []
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        image_name = Path(entry.name).suffix.lower() in image_ops.IMAGE_SUFFIXES
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            try:
                os.stat(entry.path)
            except OSError as error:
                if error.errno == errno.ELOOP:  # a link to itself, or links that point at each other
                    raise ValueError(
                        f"{entry.path} is a symbolic link loop (it points back to itself): remove or fix the link."
                    ) from None
                if image_name:  # a dangling link: listed, and the header check names it as unreadable
                    found.append(entry.path)
                continue
        if entry.is_dir():
            key = (entry.stat().st_dev, entry.stat().st_ino)
            if key in seen:
                raise ValueError(
                    f"{entry.path} is a symbolic link loop: it leads back to {seen[key]}, so the folder would never "
                    "end. Remove or fix the link."
                )
            seen[key] = entry.path
            found += _image_files(Path(entry.path), seen)
            del seen[key]
        elif image_name and entry.is_file():
            found.append(entry.path)
    return found


def list_image_folder(root, classes: list[str] | None = None) -> tuple[list[str], np.ndarray, list[str]]:
    """(paths, int64 labels, class names) of root/<class name>/.../<image file>, without opening any file (the rules
    are the module's).

    Args:
        root: the folder.
        classes: the class names to use (a test folder that must match training: it may lack some, not add any).

    Raises:
        FileNotFoundError: `root` does not exist (NotADirectoryError: it is a file).
        ValueError: fewer than 2 class folders; a class folder without images or whose name cannot be a label;
            class folders whose names differ only by surrounding blanks; a symbolic link loop; a test folder with a
            class training lacks.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            f"{root} is a file, not a folder. Give the folder that holds one sub-folder per class: "
            f"{root.parent}/<folder>/<class name>/<image files>."
        )
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {root} does not exist. Expected {root}/<class name>/<image files>.")
    found = sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and p.is_dir())
    for name in found:
        problem = label_problem(name)
        if problem:
            raise ValueError(
                f"Class folder {str(root / name)!r} cannot be a label ({problem}): rename it to a one-line name."
            )
    for stripped in sorted({name.strip() for name in found}):
        same = [name for name in found if name.strip() == stripped]
        if len(same) > 1:  # two labels that print the same
            raise ValueError(
                f"Class folders {', '.join(repr(str(root / name)) for name in same)} differ only by blanks around "
                "the name, so their labels would print the same: merge or rename them."
            )
    if classes is not None and set(found) - set(classes):
        raise ValueError(
            f"{root} has class folders that the training folder lacks: "
            f"{', '.join(sorted(set(found) - set(classes)))}. Use the same class folders in both."
        )
    if classes is None and len(found) < 2:
        raise ValueError(
            f"{root} must hold one sub-folder per class (at least 2) with image files "
            f"({', '.join(sorted(image_ops.IMAGE_SUFFIXES))}); found {len(found)} folder(s)."
        )
    seen = {(root.stat().st_dev, root.stat().st_ino): str(root)}
    paths, labels = [], []
    for label, name in enumerate(classes or found):
        if not (root / name).is_dir():
            continue
        class_folder = (root / name).stat()
        files = _image_files(root / name, {**seen, (class_folder.st_dev, class_folder.st_ino): str(root / name)})
        if not files and classes is None:
            raise ValueError(
                f"Class folder {root / name} holds no image files ({', '.join(sorted(image_ops.IMAGE_SUFFIXES))}): "
                "add images or remove the folder (an empty class is an output the model could never learn)."
            )
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise ValueError(f"{root} holds no image files ({', '.join(sorted(image_ops.IMAGE_SUFFIXES))}).")
    return paths, np.array(labels, np.int64), list(classes or found)


def jpeg_complete(path: str) -> bool:
    """True when the JPEG at `path` reaches its end-of-image marker: the marker segments are skipped by their
    lengths (so an EXIF thumbnail's own markers do not count) up to the first start-of-scan, and the scan data after
    it must hold FF D9 (in scan data FF is followed by 00 or a restart marker, so FF D9 is unambiguous). Bytes after
    the marker (cameras append data, MPO files more frames) are allowed: decoders stop at the first image."""
    with open(path, "rb") as f:
        data = f.read()
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:  # start of scan: the entropy-coded data follows the header
            return data.find(b"\xff\xd9", position + 2 + length) >= 0
        position += 2 + length
    return False


def check_image_file(path: str) -> tuple[str | None, tuple[int, int] | None, str | None, int]:
    """Checks one file's header without decoding its pixels: (problem or None, upright (height, width), mode,
    EXIF orientation 1..8).

    `mode` is Pillow's mode, with "+t" appended when a palette or greyscale image has a transparent colour. The
    size is the upright one: orientations 5..8 swap height and width.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            size, mode, kind = (image.height, image.width), image.mode, image.format
            mode += "+t" if "transparency" in image.info else ""
            # the EXIF block as the header gives it (getexif() would decode a PNG's pixels to look past them)
            exif = Image.Exif()
            exif.load(image.info.get("exif", b""))
            orientation = exif.get(image_ops.ORIENTATION_TAG, 1)
        with Image.open(path) as image:  # verify must come straight after open
            image.verify()
        if kind not in DECODED_FORMATS:
            return f"{kind} data, which TensorFlow does not decode (convert it to PNG or JPEG)", None, None, 1
        if kind in ("JPEG", "MPO") and not jpeg_complete(path):
            return "truncated JPEG (no end-of-image marker)", None, None, 1
    except Exception as error:  # Pillow raises many kinds (UnidentifiedImageError, SyntaxError, OSError, ...)
        return f"{type(error).__name__}: {error}", None, None, 1
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    return None, (size[::-1] if orientation >= 5 else size), mode, orientation


def check_image_files(paths: list[str], skip_bad: bool) -> dict:
    """Checks every file's header (`check_image_file`) before training starts: {"good": bool array, "bad": paths,
    "first_size": the first good image's upright size, "modes": {mode: count}, "orientations": int array}.

    Raises:
        ValueError: a bad file and `skip_bad` is False (the message names up to 5 of them and the count), or no
            good file at all.
    """
    good = np.ones(len(paths), bool)
    orientations = np.ones(len(paths), np.int64)
    problems, modes, first_size = [], {}, None
    for index, path in enumerate(paths):
        problem, size, mode, orientations[index] = check_image_file(path)
        if problem:
            good[index] = False
            problems.append((path, problem))
            continue
        first_size = first_size or size
        modes[mode] = modes.get(mode, 0) + 1
    if problems and not skip_bad:
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise ValueError(
            f"{len(problems)} image file(s) cannot be decoded: "
            f"{'; '.join(f'{p} ({why})' for p, why in problems[:5])}{more}. "
            "Remove or replace them, or pass --skip-bad-images to train without them."
        )
    if not good.any():
        raise ValueError(f"None of the {len(paths)} image files can be decoded (first: {problems[0][0]}).")
    return {"good": good, "bad": [p for p, _ in problems], "first_size": first_size, "modes": modes,
            "orientations": orientations}  # fmt: skip


def file_split(paths: list[str], labels: np.ndarray, orientations: np.ndarray | None, decode) -> Split:
    """A folder split. Without `orientations` (export, which does not re-check the whole folder) each file's EXIF
    orientation is read from its header when the split is first read: only the files actually decoded are opened."""
    paths, labels = list(paths), np.asarray(labels, np.int64)
    known = [orientations]

    def source():
        import tensorflow as tf

        if known[0] is None:
            known[0] = np.array([check_image_file(p)[3] for p in paths], np.int64)
        return tf.data.Dataset.from_tensor_slices(
            (tf.constant(paths, tf.string), tf.constant(labels, tf.int64), tf.constant(known[0], tf.int64))
        )

    def rebuild(index):  # a subset is a smaller list of files, not a filter over the whole one
        return file_split(
            [paths[i] for i in index], labels[index], None if known[0] is None else known[0][index], decode
        )

    return Split(len(paths), source, decode, paths, labels, rebuild)


class FolderSource(Source):
    """A folder of images, root/<class name>/.../<image file> (the module's rules), and optionally a `test_dir` with
    the same class folders as its test split.

    Args:
        root: the training folder.
        test_dir: a folder with the same class folders, the test split (default: the pipeline holds one out).
        image_size: (height, width) every image is resized to; default the first image's upright size.
        color_mode: "grayscale" or "rgb"; default "grayscale" if every image is greyscale, else "rgb".
        skip_bad: leave out files whose header check fails (named in `skipped`) instead of raising.
    """

    def __init__(self, root, *, test_dir=None, image_size=None, color_mode: str | None = None, skip_bad=False):
        if color_mode is not None and color_mode not in COLOR_MODES:
            raise ValueError(f"`color_mode` must be 'grayscale' or 'rgb'. Received: color_mode={color_mode!r}")
        self.root, self.test_dir, self.image_size = root, test_dir, image_size
        self.color_mode, self.skip_bad = color_mode, skip_bad
        self.name = self.held_out_from = Path(root).name
        self.where, self.test_name = str(root), f"the test folder {test_dir}"

    def list(self, input_shape=None, skipped=None) -> Listing:
        """Lists both folders; checks every file's header (`check_image_files`) unless `input_shape` is given
        (replay), when the `skipped` files recorded are left out and nothing is opened."""
        paths, labels, classes = list_image_folder(self.root)
        test_paths, test_labels = [], labels[:0]
        if self.test_dir is not None:
            test_paths, test_labels, _ = list_image_folder(self.test_dir, classes)
        everything = paths + test_paths
        all_labels = np.concatenate([labels, test_labels])
        facts = {"files_per_class": np.bincount(labels, minlength=len(classes)).tolist()}
        if input_shape is None:
            summary = check_image_files(everything, self.skip_bad)
            good, skipped, orientations = summary["good"], summary["bad"], summary["orientations"]
            image_size = tuple(self.image_size or summary["first_size"])
            greyscale = all(mode.split("+")[0] in GREYSCALE_MODES for mode in summary["modes"])
            channels = COLOR_MODES[self.color_mode] if self.color_mode else (1 if greyscale else 3)
        else:
            skipped = [p for p in skipped or [] if p in set(everything)]
            good = ~np.isin(np.array(everything, dtype=object), skipped)
            orientations = None
            *image_size, channels = input_shape
            image_size = tuple(image_size)
        if len(image_size) != 2 or not all(isinstance(v, int) and v > 0 for v in image_size):
            raise ValueError(f"`image_size` must be (height, width), positive ints. Received: {image_size!r}")
        decode = image_ops.decode_file_fn(image_size, channels)

        def part(index):
            return file_split(
                [everything[i] for i in index],
                all_labels[index],
                None if orientations is None else orientations[index],
                decode,
            )

        train = part(np.flatnonzero(good[: len(paths)]))
        test = None if self.test_dir is None else part(len(paths) + np.flatnonzero(good[len(paths) :]))
        return Listing(classes, (*image_size, channels), train, test, skipped, facts)

    def check_left(self, classes, labels) -> None:
        empty = [name for name, n in zip(classes, np.bincount(labels, minlength=len(classes))) if n == 0]
        if empty:
            raise ValueError(
                f"Class folder(s) {', '.join(str(Path(self.root) / e) for e in empty)} hold no image that can be "
                "decoded (--skip-bad-images left them all out): add images or remove the folder."
            )
