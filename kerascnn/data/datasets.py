"""Datasets as in-memory uint8 arrays (notebooks, small experiments): the data stack's splits, decoded once."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from kerascnn.data.idx import FASHION_MNIST_LABELS  # noqa: F401  (kept importable from here)
from kerascnn.data.pipeline import dataset_metadata


@dataclasses.dataclass
class ImageDataset:
    """Splits "train", "validation" and "test" as (uint8 images (N, H, W, C), int64 labels).

    `mean` and `std` are per-channel statistics of the training images in pixel units (0..255): the network sees
    (pixel - mean) / std. They and `labels` travel with the trained model.
    """

    name: str
    labels: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    mean: list[float]
    std: list[float]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.splits["train"][0].shape[1:])

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """(images - mean) / std as float32."""
        return (images.astype(np.float32) - np.float32(self.mean)) / np.float32(self.std)

    def metadata(self) -> dict:
        """What inference needs: name, labels, input shape and the normalization, JSON-ready."""
        return dataset_metadata(self.name, self.labels, self.input_shape, self.mean, self.std)


def load_dataset(
    name: str = "fashion_mnist",
    data_dir: str | os.PathLike | None = None,
    validation_fraction: float = 1 / 12,
    seed: int = 0,
    image_size=None,
) -> ImageDataset:
    """`kerascnn.data.open(DataSpec(...))` decoded into arrays: the same splits and statistics.

    Args:
        name: a tfds image-classification dataset ("fashion_mnist", "mnist", "cifar10", ...); "fashion_mnist" is
            read from Debian's `dataset-fashion-mnist` IDX files when they are installed (offline), else from tfds.
        data_dir: a folder with one sub-folder of images per class, instead of `name`.
        validation_fraction: share of the training images held out for validation, in [0, 0.5].
        seed: seed of the validation split.
        image_size: (H, W) to resize to (default: the dataset's own size, a folder's first image's).

    Example:
        >>> ds = load_dataset("fashion_mnist")
        >>> x_test, y_test = ds.splits["test"]
    """
    from kerascnn.data.spec import DataSpec
    from kerascnn.data.stream import open

    if not 0.0 <= validation_fraction <= 0.5:
        raise ValueError(f"`validation_fraction` must be in [0, 0.5]. Received: {validation_fraction!r}")
    folder = None if data_dir is None else str(data_dir)
    image_size = tuple(image_size) if image_size else None
    data = open(DataSpec(name, folder, image_size=image_size, validation_fraction=validation_fraction, seed=seed))
    splits = {split: data.arrays(split) for split in ("train", "validation", "test")}
    return ImageDataset(data.name, data.labels, splits, data.mean, data.std)
