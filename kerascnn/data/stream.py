"""Opening a run's data: the reader a `DataSpec` names (an image folder, Debian's Fashion-MNIST IDX files, or a tfds
dataset), as a `kerascnn.data.pipeline.StreamingDataset` of `tf.data` pipelines that Keras 3 feeds to every backend.
Peak memory does not grow with the number of images (only the list of file names does).

The readers' openers are importable from here too (`stream.open_image_folder`, `open_idx`, `open_tfds`).
"""

from __future__ import annotations

from kerascnn.data import idx
from kerascnn.data.folder import check_image_file, list_image_folder, open_image_folder
from kerascnn.data.idx import open_idx
from kerascnn.data.pipeline import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_STATS_IMAGES,
    DecodeError,
    Split,
    StreamingDataset,
    split_indices,
)
from kerascnn.data.spec import DataSpec
from kerascnn.data.tfds_source import open_tfds

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_STATS_IMAGES",
    "DataSpec",
    "DecodeError",
    "Split",
    "StreamingDataset",
    "check_image_file",
    "list_image_folder",
    "native_size_bytes",
    "open_dataset",
    "open_for_run",
    "open_idx",
    "open_image_folder",
    "open_run",
    "open_spec",
    "open_tfds",
    "split_indices",
]


def native_size_bytes(name: str) -> int | None:
    """Decoded bytes of the training split of Debian's Fashion-MNIST (from the IDX header) or of a tfds dataset (from
    its metadata), without reading an image; None when unknown."""
    files = idx.fashion_mnist_files() if name == "fashion_mnist" else None
    if files is not None:
        _, (count, height, width) = idx.read_header(files[0]["train"])
        return count * height * width
    from kerascnn.data.tfds_source import native_size_bytes as tfds_size

    return tfds_size(name)


def open_spec(
    spec: DataSpec,
    *,
    cache_bytes: int | None = DEFAULT_CACHE_BYTES,
    stats_images: int | None = DEFAULT_STATS_IMAGES,
    batch_size: int | None = None,
    recorded: dict | None = None,
) -> StreamingDataset:
    """The dataset `spec` names, its splits limited to `spec.limit` (a seeded class-balanced subset).

    Args:
        spec: what to read (checked here).
        cache_bytes: decode once and cache in memory when the training pixels fit in this many bytes (None: never).
        stats_images: the seeded sample of training images the mean and std come from (None: all).
        batch_size: when given, one batch must fit in memory (`kerascnn.data.images.check_memory`).
        recorded: a trained run's dataset.json: its statistics (and a folder's skipped files and input shape) are
            taken as recorded, nothing is checked or recomputed.

    Raises:
        ValueError, FileNotFoundError, RuntimeError: see the readers and `DataSpec.check`.
    """
    spec.check()
    common = dict(
        image_size=spec.image_size,
        validation_fraction=spec.validation_fraction,
        seed=spec.seed,
        cache_bytes=cache_bytes,
        stats_images=stats_images,
        batch_size=batch_size,
        recorded=recorded,
    )
    files = idx.fashion_mnist_files() if spec.dataset == "fashion_mnist" else None
    if spec.data_dir is not None:
        data = open_image_folder(
            spec.data_dir,
            test_dir=spec.test_dir,
            color_mode=spec.color_mode,
            test_fraction=spec.test_fraction,
            skip_bad=spec.skip_bad,
            **common,
        )
    elif files is not None:
        data = open_idx(*files, idx.FASHION_MNIST_LABELS, **common)
    else:
        data = open_tfds(spec.dataset, test_fraction=spec.test_fraction, **common)
    return data.limited(spec.limit, spec.seed) if spec.limit else data


def open_dataset(
    name: str = "fashion_mnist",
    data_dir=None,
    *,
    test_dir=None,
    image_size=None,
    color_mode=None,
    validation_fraction: float = 1 / 12,
    test_fraction: float = 1 / 12,
    seed: int = 0,
    skip_bad: bool = False,
    cache_bytes: int | None = DEFAULT_CACHE_BYTES,
    stats_images: int | None = DEFAULT_STATS_IMAGES,
) -> StreamingDataset:
    """`open_spec` of the `DataSpec` of these arguments (see `DataSpec` for each)."""
    spec = DataSpec(
        name,
        None if data_dir is None else str(data_dir),
        None if test_dir is None else str(test_dir),
        tuple(image_size) if image_size else None,
        color_mode,
        validation_fraction,
        test_fraction,
        seed,
        skip_bad,
    )
    return open_spec(spec, cache_bytes=cache_bytes, stats_images=stats_images)


def open_for_run(settings: dict, cache_bytes: int | None = DEFAULT_CACHE_BYTES, batch_size=None) -> StreamingDataset:
    """The dataset a training run with these settings reads (TrainConfig's fields, as in its config.yaml)."""
    return open_spec(DataSpec.from_settings(settings), cache_bytes=cache_bytes, batch_size=batch_size)


def open_run(dataset_meta: dict, config: dict) -> StreamingDataset:
    """A trained run's data, for export: opened from the spec the run recorded (`DataSpec.from_run`; runs written
    before the spec existed: from their config.yaml), without `limit`, with the statistics of its dataset.json.
    Nothing is re-checked or recomputed: a folder is listed again (its split needs the file names), and only the
    files export decodes are opened."""
    import dataclasses

    spec = dataclasses.replace(DataSpec.from_run(dataset_meta, config), limit=None)
    return open_spec(spec, cache_bytes=None, recorded=dataset_meta)
