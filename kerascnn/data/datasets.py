"""Image-classification datasets as in-memory uint8 arrays: tfds by name, Debian's Fashion-MNIST IDX files
offline, or a folder of the user's own images. TensorFlow and tfds are imported only where needed."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from kerascnn.data.folder import read_image_folder
from kerascnn.data.idx import read_idx

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
TFDS_PROBE_HOST = "storage.googleapis.com"  # tfds reads dataset metadata and many datasets from Google Cloud Storage
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def dataset_metadata(name: str, labels: list[str], input_shape, mean: list[float], std: list[float]) -> dict:
    """What inference needs (dataset.json): name, labels, input shape and the normalization (pixel - mean) / std on
    pixel values 0..255, JSON-ready. Shared by the in-memory and the streamed datasets."""
    return {
        "dataset": name,
        "labels": labels,
        "input_shape": [int(v) for v in input_shape],
        "normalization": {"mean": mean, "std": std, "units": "pixel values 0..255"},
    }


@dataclasses.dataclass
class ImageDataset:
    """Splits "train", "validation" and "test" as (uint8 images (N, H, W, C), int64 labels).

    `mean` and `std` are per-channel statistics of the training images in pixel units (0..255):
    the network sees (pixel - mean) / std. They and `labels` travel with the trained model.
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
    """Loads a dataset and holds out a seeded, random `validation_fraction` of its training split.

    Args:
        name: a tfds image-classification dataset ("fashion_mnist", "mnist", "cifar10", ...). Ignored
            when `data_dir` is given. "fashion_mnist" is read from Debian's `dataset-fashion-mnist` IDX
            files when they are installed (offline), else from tfds.
        data_dir: a folder with one sub-folder of images per class; its test split is empty.
        validation_fraction: share of the training images held out for validation, in [0, 0.5].
        seed: seed of the validation split.
        image_size: (H, W) to resize folder images to (default: the first image's size).
    """
    if not 0.0 <= validation_fraction <= 0.5:
        raise ValueError(f"`validation_fraction` must be in [0, 0.5]. Received: {validation_fraction!r}")
    if data_dir is not None:
        images, labels, label_names = read_image_folder(data_dir, image_size)
        name, test = Path(data_dir).name, (images[:0], labels[:0])
        train = (images, labels)
    elif name == "fashion_mnist" and _debian_fashion_mnist_dir() is not None:
        train, test = (_read_fashion_mnist_idx(split) for split in ("train", "test"))
        label_names = FASHION_MNIST_LABELS
    else:
        train, test, label_names = _load_tfds(name)

    order = np.random.default_rng(seed).permutation(len(train[1]))
    n_validation = int(round(len(order) * validation_fraction))
    held_out, kept = order[:n_validation], np.sort(order[n_validation:])
    splits = {
        "train": (train[0][kept], train[1][kept]),
        "validation": (train[0][held_out], train[1][held_out]),
        "test": test,
    }
    if data_dir is not None:  # an image folder has no test split: evaluate on the held-out images
        splits["test"] = splits["validation"]
    pixels = splits["train"][0].reshape(-1, splits["train"][0].shape[-1]).astype(np.float64)
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    return ImageDataset(
        name,
        list(label_names),
        splits,
        [round(float(v), 4) for v in mean],
        [round(float(max(v, 1e-3)), 4) for v in std],
    )


def _debian_fashion_mnist_dir() -> Path | None:
    directory = Path(os.environ.get("KERASCNN_FASHION_MNIST_DIR", DEBIAN_FASHION_MNIST))
    return directory if all((directory / f).exists() for pair in _IDX_FILES.values() for f in pair) else None


def _read_fashion_mnist_idx(split: str):
    directory = _debian_fashion_mnist_dir()
    images_file, labels_file = (directory / f for f in _IDX_FILES[split])
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{images_file} and {labels_file} do not hold matching images and labels "
            f"(shapes {images.shape} and {labels.shape})."
        )
    return images[..., None], labels.astype(np.int64)  # tfds's fashion_mnist: (28, 28, 1) uint8, int64


def online(host: str = TFDS_PROBE_HOST, port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to `host:port` opens within `timeout` seconds, the DNS lookup included (it
    runs in a daemon thread, so a resolver that hangs offline cannot stall the caller)."""
    import socket
    import threading

    result = []

    def connect():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


def _load_tfds(name: str):
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise RuntimeError(
            f"Dataset {name!r} needs tensorflow-datasets, which is not installed here" + _fashion_mnist_hint(name)
        ) from error
    try:
        builder = tfds.builder(name)
        if not builder.is_prepared():
            if not online():  # tfds would retry for minutes before failing
                raise RuntimeError(
                    f"this machine cannot reach {TFDS_PROBE_HOST}, and {name!r} is not in {builder.data_dir}"
                )
            print(
                f"Downloading {name!r} with tensorflow-datasets into {builder.data_dir} (needs internet)"
                + _fashion_mnist_hint(name),
                flush=True,
            )
        builder.download_and_prepare()
    except Exception as error:  # offline, unknown name, ...: tfds raises many kinds
        raise RuntimeError(
            f"Cannot load dataset {name!r} with tensorflow-datasets: {error}" + _fashion_mnist_hint(name)
        ) from error
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise ValueError(
            f"tfds dataset {name!r} is not an image-classification dataset (it needs 'image' and 'label' features)."
        )
    train, test = (
        tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, as_supervised=True)) for split in ("train", "test")
    )
    return train, test, features["label"].names


def _fashion_mnist_hint(name: str) -> str:
    if name != "fashion_mnist":
        return (
            ". Check the name (tfds.list_builders()) and that this machine is online; or train on your own "
            "images with --data-dir."
        )
    return (
        f". Fashion-MNIST offline: `apt-get install dataset-fashion-mnist` (IDX files in "
        f"{DEBIAN_FASHION_MNIST}, or set KERASCNN_FASHION_MNIST_DIR); online: tfds downloads it."
    )
