"""IDX files (the MNIST format), gzipped or not: the header, the arrays (NumPy only), and Debian's Fashion-MNIST
(`apt-get install dataset-fashion-mnist`) as a `Source` (`IdxSource`)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from kerascnn.data.pipeline import Split
from kerascnn.data.source import Listing, Source

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_MNIST_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def parse_header(raw: bytes, path) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, data offset) of an IDX file from its first bytes: magic 0x00 0x00 <dtype code> <ndim>, then
    ndim big-endian uint32 sizes; the data follows in C order.

    Raises:
        ValueError: not an IDX header (names the file).
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES or len(raw) < 4 + 4 * raw[3]:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()}).")
    ndim = raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    return np.dtype(_DTYPES[raw[2]]), shape, 4 + 4 * ndim


def read_header(path: str | Path) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) of the IDX file at `path`, reading only its header."""
    path = Path(path)
    try:
        with _open(path) as f:
            raw = f.read(4 + 4 * 255)
    except (OSError, EOFError) as error:
        raise ValueError(f"Cannot read IDX file {path}: {error}. Reinstall or re-download it.") from error
    dtype, shape, _ = parse_header(raw, path)
    return dtype, shape


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (`parse_header`).

    Raises:
        ValueError: the file is not IDX or its data is truncated (the message names the file).
    """
    path = Path(path)
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"Cannot read IDX file {path}: {error}. Reinstall or re-download it.") from error
    dtype, shape, offset = parse_header(raw, path)
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(
            f"{path} is truncated or corrupt: its header says shape {shape} ({expected} bytes of data) but "
            f"it holds {len(raw) - offset} bytes. Reinstall or re-download it."
        )
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def debian_fashion_mnist_dir() -> Path | None:
    """The folder of Debian's Fashion-MNIST IDX files ($KERASCNN_FASHION_MNIST_DIR, else /usr/share/datasets/...),
    or None when they are not all there."""
    directory = Path(os.environ.get("KERASCNN_FASHION_MNIST_DIR", DEBIAN_FASHION_MNIST))
    return directory if all((directory / f).exists() for pair in IDX_FILES.values() for f in pair) else None


def fashion_mnist_files() -> tuple[dict[str, Path], dict[str, Path]] | None:
    """({split: images file}, {split: labels file}) of Debian's Fashion-MNIST, or None when not installed."""
    directory = debian_fashion_mnist_dir()
    if directory is None:
        return None
    return {s: directory / f[0] for s, f in IDX_FILES.items()}, {s: directory / f[1] for s, f in IDX_FILES.items()}


def idx_split(images_path: Path, labels_path: Path, image_size: tuple[int, int] | None) -> Split:
    """One split of 3-D uint8 image and 1-D label IDX files, held as NumPy arrays (IDX files hold MNIST-sized data:
    Fashion-MNIST's training images are 47 MB) and resized in the pipeline when `image_size` differs."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{images_path} and {labels_path} do not hold matching uint8 images and labels "
            f"(shapes {images.shape} and {labels.shape})."
        )
    return _array_split(images[..., None], labels.astype(np.int64), tuple(image_size or images.shape[1:]))


def _array_split(images: np.ndarray, labels: np.ndarray, size: tuple[int, int]) -> Split:
    """A split of uint8 images (N, h, w, 1) held in memory, resized to `size` in the pipeline when it differs."""
    same = size == images.shape[1:3]

    def source():
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices((images, labels))

    def decode(image, label):
        from kerascnn.data.images import resize

        return (image if same else resize(image, size)), label

    def rebuild(index):
        return _array_split(images[index], labels[index], size)

    return Split(len(labels), source, decode, None, labels, rebuild, (images, labels) if same else None)


class IdxSource(Source):
    """IDX image and label files ("train" and "test"; gzipped or not): 3-D uint8 images and 1-D labels, held as
    arrays, resized in the pipeline when `image_size` differs from theirs.

    Raises (from `list`):
        ValueError: a file is not a 3-D uint8 image / 1-D label IDX file, or the counts differ.
    """

    test_name = "the test IDX files"

    def __init__(self, images_files, labels_files, label_names, *, name="fashion_mnist", image_size=None):
        self.images_files = {s: Path(p) for s, p in images_files.items()}
        self.labels_files = {s: Path(p) for s, p in labels_files.items()}
        self.classes, self.name, self.image_size = list(label_names), name, image_size
        self.where = str(self.images_files["train"].parent)

    def list(self, input_shape=None, skipped=None) -> Listing:
        """Reads the four files; the input shape comes from the header (a replay's is the same)."""
        images, labels, size = self.images_files, self.labels_files, self.image_size
        train, test = (idx_split(images[s], labels[s], size) for s in ("train", "test"))
        height, width = self.image_size or read_header(self.images_files["train"])[1][1:]
        return Listing(self.classes, (height, width, 1), train, test)


def fashion_mnist_source(image_size=None) -> IdxSource | None:
    """Debian's Fashion-MNIST as an `IdxSource`, or None when it is not installed."""
    files = fashion_mnist_files()
    return None if files is None else IdxSource(*files, FASHION_MNIST_LABELS, image_size=image_size)
