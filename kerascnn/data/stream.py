"""Opening data: `open(spec)`, the one public way. It picks the `Source` a `DataSpec` names (`source_for`: an image
folder, Debian's Fashion-MNIST IDX files, or a tfds dataset) and does, once for every source, what no source does:
the seeded validation/test split, the in-memory or streamed decision, the statistics, `skip_bad`'s decoding pass,
`limit`, and the replay of a trained run's dataset.json. The result is a `kerascnn.data.pipeline.StreamingDataset`
of `tf.data` pipelines that Keras 3 feeds to every backend; peak memory does not grow with the number of images.

Owners: `source` (the protocol), `folder`/`idx`/`tfds_source` (listing and decoding), `pipeline` (the splits'
batches), this module (opening). The former openers `open_image_folder`, `open_idx` and `open_tfds` remain below
as thin deprecated aliases of `open` (tests and bench/ call them); `open_spec`, `open_dataset` and `open_for_run`
are now `open(spec)`, `open_run` is `open(spec, recorded=dataset_json)`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kerascnn.data import idx
from kerascnn.data.folder import FolderSource, check_image_file, list_image_folder
from kerascnn.data.idx import IdxSource
from kerascnn.data.images import check_memory
from kerascnn.data.pipeline import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_STATS_IMAGES,
    DecodeError,
    Split,
    StreamingDataset,
    choose_path,
    record_splits,
    split_indices,
)
from kerascnn.data.source import Source
from kerascnn.data.spec import DataSpec
from kerascnn.data.tfds_source import TfdsSource

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_STATS_IMAGES",
    "DataSpec",
    "DecodeError",
    "Source",
    "Split",
    "StreamingDataset",
    "check_image_file",
    "list_image_folder",
    "native_size_bytes",
    "open",
    "source_for",
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


def source_for(spec: DataSpec) -> Source:
    """The source `spec` names: its `data_dir`, else Debian's Fashion-MNIST IDX files for "fashion_mnist" when they
    are installed, else the tfds dataset `spec.dataset`."""
    if spec.data_dir is not None:
        return FolderSource(
            spec.data_dir,
            test_dir=spec.test_dir,
            image_size=spec.image_size,
            color_mode=spec.color_mode,
            skip_bad=spec.skip_bad,
        )
    fashion_mnist = idx.fashion_mnist_source(spec.image_size) if spec.dataset == "fashion_mnist" else None
    return fashion_mnist or TfdsSource(spec.dataset, image_size=spec.image_size)


def open(  # kerascnn.data.open, the one way to open data (shadows the builtin here only)
    spec: DataSpec,
    *,
    cache_bytes: int | None = DEFAULT_CACHE_BYTES,
    stats_images: int | None = DEFAULT_STATS_IMAGES,
    batch_size: int | None = None,
    recorded: dict | None = None,
    source: Source | None = None,
) -> StreamingDataset:
    """The data `spec` names, split, with its statistics, limited to `spec.limit`.

    Args:
        spec: what to read (checked here).
        cache_bytes: decode once and cache in memory when the training pixels fit in this many bytes (None: never).
        stats_images: the seeded sample of training images the mean and std come from (None: all).
        batch_size: when given, one batch must fit in memory (`kerascnn.data.images.check_memory`).
        recorded: a trained run's dataset.json, to replay its data as export reads it: the same splits (without
            `limit`, never cached), its statistics, input shape and skipped files as recorded; nothing is checked,
            decoded or recomputed here (a folder is listed again: its split needs the file names).
        source: read this source instead of `source_for(spec)` (the spec then gives the split, seed and limit).

    Raises:
        ValueError, FileNotFoundError, RuntimeError: see `DataSpec.check` and the sources.

    Example:
        >>> data = open(DataSpec(data_dir="photos", image_size=(96, 96)))
        >>> model.fit(data.batches("train", 64, shuffle=True), validation_data=data.batches("validation", 64))
    """
    spec.check()
    if recorded is not None:
        spec, cache_bytes = dataclasses.replace(spec, limit=None), None
    source = source or source_for(spec)
    if recorded is None:
        listing = source.list()
    else:
        listing = source.list(tuple(recorded["input_shape"]), recorded.get("skipped", []))
    if batch_size is not None:
        check_memory(listing.input_shape, batch_size)
    splits = record_splits(listing.train, listing.test, spec.validation_fraction, spec.test_fraction, spec.seed)
    if splits["train"].count == 0:
        raise ValueError(f"{source.where} leaves no training images after the validation and test splits.")
    test_source = source.test_name
    if listing.test is None:
        test_source = f"a seeded {spec.test_fraction:.3g} of {source.held_out_from} held out"
        test_source += " (never used to pick a model)"
    channels = listing.input_shape[-1]
    data = StreamingDataset(
        source.name,
        listing.classes,
        listing.input_shape,
        splits,
        [0.0] * channels,
        [1.0] * channels,
        choose_path(splits["train"].count, listing.input_shape, cache_bytes),
        test_source,
        listing.skipped,
        listing.facts,
    )
    if recorded is not None:
        data.mean, data.std = recorded["normalization"]["mean"], recorded["normalization"]["std"]
        return data
    if spec.skip_bad:  # decode every file once: the ones that fail are left out and counted
        data = data.without(data.undecodable())
        source.check_left(data.labels, np.concatenate([data.splits[s].labels for s in ("train", "validation")]))
    data.mean, data.std = data.statistics(stats_images, spec.seed)
    return data.limited(spec.limit, spec.seed) if spec.limit else data


# Deprecated aliases of `open`, kept for older callers.


def _spec_and_options(kwargs: dict) -> tuple[dict, dict]:
    options = {k: kwargs.pop(k) for k in ("cache_bytes", "stats_images", "batch_size") if k in kwargs}
    if kwargs.get("image_size") is not None:
        kwargs["image_size"] = tuple(kwargs["image_size"])
    return kwargs, options


def open_image_folder(root, *, test_dir=None, **kwargs) -> StreamingDataset:
    """Deprecated: `open(DataSpec(data_dir=root, test_dir=test_dir, ...))`; other arguments: `DataSpec`'s,
    `open`'s."""
    fields, options = _spec_and_options(kwargs)
    folders = {"data_dir": str(root), "test_dir": None if test_dir is None else str(test_dir)}
    return open(DataSpec(**folders, **fields), **options)


def open_idx(images_files, labels_files, label_names, *, name="fashion_mnist", **kwargs) -> StreamingDataset:
    """Deprecated: `open(spec, source=IdxSource(...))`."""
    fields, options = _spec_and_options(kwargs)
    source = IdxSource(images_files, labels_files, label_names, name=name, image_size=fields.get("image_size"))
    return open(DataSpec(**fields), source=source, **options)


def open_tfds(name: str, *, data_dir: str | None = None, **kwargs) -> StreamingDataset:
    """Deprecated: `open(DataSpec(name, ...))`, or `open(spec, source=TfdsSource(name, data_dir=...))`."""
    fields, options = _spec_and_options(kwargs)
    source = TfdsSource(name, image_size=fields.get("image_size"), data_dir=data_dir)
    return open(DataSpec(name, **fields), source=source, **options)
