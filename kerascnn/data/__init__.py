"""Datasets (tfds, Debian's Fashion-MNIST IDX files, image folders) and jit-friendly augmentation."""

from kerascnn.data.augment import RandomCropFlip, RandomErasing
from kerascnn.data.datasets import ImageDataset, load_dataset
from kerascnn.data.folder import read_image_folder
from kerascnn.data.idx import read_idx

__all__ = ["ImageDataset", "RandomCropFlip", "RandomErasing", "load_dataset", "read_idx", "read_image_folder"]
