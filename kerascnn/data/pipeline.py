"""The source-independent part of the data stack: a dataset's splits as `tf.data` pipelines, the seeded splits and
subsets, and the normalization statistics. The sources (`folder`, `idx`, `tfds_source`) list `Split`s,
`kerascnn.data.stream.open` splits them (`record_splits`) into a `StreamingDataset`; Keras 3 feeds the pipelines to
every backend.

A split is a *source* of undecoded items (file paths, IDX records, tfds examples) and a *decode* function that
turns one item into (uint8 image (H, W, C), int64 label). `StreamingDataset.batches` chains

    source -> shard by worker -> shuffle (seeded; file names or records, not pixels) -> decode in parallel
           -> [cache, small datasets only] -> batch -> normalize (x - mean) / std, one-hot labels -> prefetch

Augmentation is not done here: the trainer's `kerascnn.data.RandomCropFlip` layer crops and flips the batches on
the accelerator (keras.ops, so it jit-compiles).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable

import numpy as np

# A train split whose decoded pixels fit in this many bytes is decoded once and cached in memory: later epochs
# skip decoding. Larger ones are decoded on every epoch, so memory stays flat.
DEFAULT_CACHE_BYTES = 128 << 20
# The normalization statistics come from a seeded sample of this many training images (all when fewer).
DEFAULT_STATS_IMAGES = 5000
# The statistics pass reads batches of at most this many decoded bytes (so a huge --image-size cannot exhaust it).
STATS_BATCH_BYTES = 64 << 20


class DecodeError(ValueError):
    """Image files that pass the header check but cannot be decoded; the message names them."""


@dataclasses.dataclass
class Split:
    """One split: `count` items, `source()` an unbatched tf.data.Dataset of undecoded items, `decode` the map from
    an item to (uint8 image (H, W, C), int64 label). `labels` are the items' labels where the reader knows them
    without decoding (folders, IDX files), `files` the paths of a folder split."""

    count: int
    source: Callable
    decode: Callable
    files: list[str] | None = None
    labels: np.ndarray | None = None
    rebuild: Callable | None = None  # index -> the subset as a new split (folders, IDX); default: a filter of source()
    decoded: tuple[np.ndarray, np.ndarray] | None = None  # (uint8 images, labels) held decoded already (IDX)

    def subset(self, index: np.ndarray) -> Split:
        """The items at the sorted positions `index`, in order."""
        index = np.asarray(index, np.int64)
        if self.rebuild is not None:
            return self.rebuild(index)
        files = None if self.files is None else [self.files[i] for i in index]
        labels = None if self.labels is None else self.labels[index]
        return Split(len(index), masked(self.source, index, self.count), self.decode, files, labels)


def masked(source: Callable, index: np.ndarray, count: int) -> Callable:
    """source() restricted to the items at the sorted positions `index` (of `count` items)."""
    mask = np.zeros(count, bool)
    mask[index] = True

    def kept_items():
        import tensorflow as tf

        keep = tf.constant(mask)
        return source().enumerate().filter(lambda i, item: keep[i]).map(lambda i, item: item)

    return kept_items


def split_indices(count: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """A seeded random partition of range(count): one sorted index array per fraction, then the rest.

    The permutation is `np.random.default_rng(seed).permutation(count)`; the first round(count * f0) indices go to
    part 0, the next round(count * f1) to part 1, and so on.
    """
    order = np.random.default_rng(seed).permutation(count)
    parts, start = [], 0
    for fraction in fractions:
        size = int(round(count * fraction))
        parts.append(np.sort(order[start : start + size]))
        start += size
    return [*parts, np.sort(order[start:])]


def stratified_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded, class-balanced subset of `limit` of `labels`.

    Each class's positions are shuffled (seeded); then the classes take turns, in a seeded order, so every class
    gets floor(limit / classes) or one more, unless it has fewer items (the others then fill in).
    """
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    queues = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    # round r of every class, then round r + 1: rank within the class first, the class order second
    ranked = sorted((rank, turn, position) for turn, q in enumerate(queues) for rank, position in enumerate(q))
    return np.sort(np.array([position for _, _, position in ranked[:limit]], np.int64))


def pixel_statistics(batches: Iterable[np.ndarray], channels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (pixel units) of uint8 image batches, in one pass: mean = S1 / n,
    std = sqrt(S2 / n - mean^2) with S1, S2 the sums of the pixels and of their squares, accumulated in float64,
    so memory does not grow with the number of images. A std below 1e-3 is raised to 1e-3. Rounded to 4 places.
    The one statistics function of kerascnn: every reader's `dataset.json` normalization comes from it."""
    s1, s2, n = np.zeros(channels), np.zeros(channels), 0
    for batch in batches:
        pixels = np.asarray(batch).reshape(-1, channels).astype(np.float64)
        s1 += pixels.sum(axis=0)
        s2 += np.square(pixels).sum(axis=0)
        n += len(pixels)
    mean = s1 / max(n, 1)
    std = np.sqrt(np.maximum(s2 / max(n, 1) - mean**2, 0.0))
    return [round(float(v), 4) for v in mean], [round(float(max(v, 1e-3)), 4) for v in std]


def choose_path(count: int, input_shape, cache_bytes: int | None) -> str:
    """ "memory" when the decoded uint8 training pixels fit in `cache_bytes`, else "stream"."""
    pixels = count * int(np.prod(input_shape))
    return "memory" if cache_bytes is not None and pixels <= cache_bytes else "stream"


@dataclasses.dataclass
class StreamingDataset:
    """Splits "train", "validation" and "test" streamed from disk, and what inference needs.

    `mean` and `std` are per-channel statistics of training images in pixel units (0..255); the batches hold
    (pixel - mean) / std. `input_path` says how the pixels reach the model: "stream" (decoded every epoch) or
    "memory" (decoded once, cached). `test_source` says where the test images come from; `skipped` lists the
    unreadable files left out; `facts` holds what the reader recorded for the run (file counts) so that export
    can tell whether the data changed.
    """

    name: str
    labels: list[str]
    input_shape: tuple[int, int, int]
    splits: dict[str, Split]
    mean: list[float]
    std: list[float]
    input_path: str
    test_source: str
    skipped: list[str] = dataclasses.field(default_factory=list)
    facts: dict = dataclasses.field(default_factory=dict)

    def count(self, split: str, num_shards: int = 1) -> int:
        """Images of `split` that one of `num_shards` workers reads (every worker reads the same number)."""
        return self.splits[split].count // num_shards

    def _items(self, split: str, num_shards: int, shard_index: int):
        """The undecoded items of worker `shard_index`'s shard: every num_shards-th item from `shard_index` on,
        cut to count // num_shards so that every worker runs the same number of steps."""
        part = self.splits[split]
        items = part.source()
        if num_shards > 1:
            items = items.shard(num_shards, shard_index).take(part.count // num_shards)
        return items

    def images(self, split: str, num_shards: int = 1, shard_index: int = 0):
        """Unbatched decoded (uint8 image, int64 label) pairs of one worker's shard, in order."""
        import tensorflow as tf

        return self._items(split, num_shards, shard_index).map(self.splits[split].decode, tf.data.AUTOTUNE)

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        one_hot: bool = True,
        num_shards: int = 1,
        shard_index: int = 0,
        normalize: bool = True,
    ):
        """A tf.data.Dataset of (float32 normalized images (B, H, W, C), labels) for `model.fit`/`evaluate`.

        Args:
            split: "train", "validation" or "test".
            batch_size: images per batch (per worker when `num_shards` > 1).
            shuffle: shuffle every epoch, with a buffer as large as the split (of file names or records, which
                are small; the cached path shuffles the cached images).
            seed: seed of the shuffle.
            one_hot: labels as one-hot float32 rows (else int64).
            num_shards, shard_index: read only part `shard_index` of `num_shards` (one per worker process).
            normalize: (x - mean) / std in float32; False leaves the uint8 pixels, 4x fewer bytes to move, for a
                model that normalizes on the accelerator (`normalization_layer`).

        Returns:
            The batched, prefetched dataset, of known length ceil(count(split, num_shards) / batch_size).
        """
        import tensorflow as tf

        part = self.splits[split]
        cached = self.input_path == "memory"
        items = self._items(split, num_shards, shard_index)
        count = max(part.count // num_shards, 1)
        if shuffle and not cached:
            items = items.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        images = items.map(part.decode, num_parallel_calls=tf.data.AUTOTUNE)
        if cached:
            images = images.cache()
            if shuffle:
                images = images.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        batches = images.batch(batch_size).map(self._prepare_fn(one_hot, normalize), tf.data.AUTOTUNE)
        steps = -(-(part.count // num_shards) // batch_size)  # known, so Keras counts the steps of each pass
        return batches.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)

    def train_batches(
        self, batch_size: int, seeds, *, num_shards: int = 1, shard_index: int = 0, normalize: bool = True
    ):
        """Training batches of `len(seeds)` epochs back to back, for `fit(..., steps_per_epoch=...)`.

        Epoch i visits this worker's training items in an order shuffled with `seeds[i]` alone (a full shuffle of
        file names or records, then decoding), and its batches end with the epoch (the last may be smaller). So an
        epoch's batches depend only on its seed, and a run resumed at epoch k, given the seeds of epochs k, k+1,
        ..., sees the batches the uninterrupted run saw.

        Args:
            batch_size: images per batch (per worker).
            seeds: one int seed per epoch.
            num_shards, shard_index, normalize: as in `batches`.

        Returns:
            A tf.data.Dataset of (images, one-hot labels); each epoch has ceil(count("train", num_shards) /
            batch_size) batches.
        """
        import tensorflow as tf

        part = self.splits["train"]
        count = max(part.count // num_shards, 1)
        prepare = self._prepare_fn(True, normalize)

        def epoch(seed):
            items = self._items("train", num_shards, shard_index)
            images = items.shuffle(count, seed=seed, reshuffle_each_iteration=False).map(part.decode, tf.data.AUTOTUNE)
            return images.batch(batch_size).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)

        epochs = [epoch(int(seed)) for seed in seeds]  # Python seeds: one shuffle per epoch, chained
        dataset = epochs[0]
        for following in epochs[1:]:
            dataset = dataset.concatenate(following)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def arrays(self, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The decoded split as (uint8 images (N, H, W, C), int64 labels), filled into one preallocated array
        (the in-memory path: no second copy, no Pillow objects).

        Args:
            split: "train", "validation" or "test".
            limit: only the first `limit` images.

        Raises:
            DecodeError: a file cannot be decoded (named).
        """
        count = self.count(split) if limit is None else min(limit, self.count(split))
        if self.splits[split].decoded is not None:  # already decoded arrays: no pipeline
            images, labels = self.splits[split].decoded
            return images[:count], labels[:count]
        images = np.empty((count, *self.input_shape), np.uint8)
        labels = np.empty(count, np.int64)
        filled = 0
        with self.naming_bad_files():
            for x, y in self.images(split).take(count).batch(256).as_numpy_iterator():
                images[filled : filled + len(x)], labels[filled : filled + len(x)] = x, y
                filled += len(x)
        return images[:filled], labels[:filled]

    def statistics(self, sample: int | None = DEFAULT_STATS_IMAGES, seed: int = 0) -> tuple[list, list]:
        """`pixel_statistics` of a seeded sample of `sample` training images (all when fewer, or when None), read
        in batches of at most 256 images and `STATS_BATCH_BYTES`.

        Raises:
            DecodeError: a sampled file cannot be decoded (named).
        """
        part = self.splits["train"]
        if sample is not None and sample < part.count:
            part = part.subset(np.sort(np.random.default_rng(seed).choice(part.count, sample, replace=False)))
        if part.decoded is not None:
            images = part.decoded[0]
            return pixel_statistics((images[i : i + 1024] for i in range(0, len(images), 1024)), images.shape[-1])
        import tensorflow as tf

        batch = int(np.clip(STATS_BATCH_BYTES // int(np.prod(self.input_shape)), 1, 256))
        images = part.source().map(part.decode, num_parallel_calls=tf.data.AUTOTUNE).map(lambda x, y: x)
        with self.naming_bad_files():
            return pixel_statistics(images.batch(batch).prefetch(2).as_numpy_iterator(), self.input_shape[-1])

    def undecodable(self) -> list[str]:
        """The files of every split that fail to decode, found in one parallel pass: each decoded item carries its
        position, and the positions missing after `ignore_errors` are the bad files. Empty for record datasets."""
        import tensorflow as tf

        def positions(part: Split):
            def decoded(i, item):  # the output depends on the pixels, so the decoding cannot be pruned away
                return i, tf.reduce_max(part.decode(*item)[0])

            return {int(i) for i, _ in part.source().enumerate().map(decoded, tf.data.AUTOTUNE).ignore_errors()}

        bad = []
        for part in self.splits.values():
            if part.files:
                seen = positions(part)
                bad += [path for index, path in enumerate(part.files) if index not in seen]
        return sorted(set(bad))

    @contextlib.contextmanager
    def naming_bad_files(self):
        """Turns a TensorFlow decoding error (which names no file) into a `DecodeError` naming the files that fail,
        found by `undecodable`; other errors pass through."""
        import tensorflow as tf

        try:
            yield
        except tf.errors.InvalidArgumentError as error:
            bad = self.undecodable()
            if not bad:
                raise
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise DecodeError(
                f"{len(bad)} image file(s) pass the header check but cannot be decoded: {', '.join(bad[:5])}{more} "
                f"({' '.join(error.message.split())[:120]}). Remove or replace them, or pass --skip-bad-images to "
                "train without them."
            ) from None

    def without(self, files: Iterable[str]) -> StreamingDataset:
        """The same dataset without `files` (in any split), which join `skipped`."""
        drop = set(files)
        splits = {
            name: part.subset(np.array([i for i, f in enumerate(part.files) if f not in drop], np.int64))
            if part.files
            else part
            for name, part in self.splits.items()
        }
        return dataclasses.replace(self, splits=splits, skipped=sorted(set(self.skipped) | drop))

    def _prepare_fn(self, one_hot: bool, normalize: bool = True):
        import tensorflow as tf

        mean, std = tf.constant(self.mean, tf.float32), tf.constant(self.std, tf.float32)
        num_classes = len(self.labels)

        def prepare(x, y):
            if normalize:
                x = (tf.cast(x, tf.float32) - mean) / std
            return x, (tf.one_hot(y, num_classes) if one_hot else y)

        return prepare

    def normalization_layer(self, name: str = "normalize"):
        """A `keras.layers.Rescaling` computing (x - mean) / std = x * (1 / std) + (-mean / std) per channel: the
        model-side normalization of uint8 batches from `batches(..., normalize=False)`."""
        import keras

        std = np.float32(self.std)
        return keras.layers.Rescaling(
            scale=(1 / std).tolist(), offset=(-np.float32(self.mean) / std).tolist(), name=name
        )

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """(images - mean) / std as float32, as `batches` computes it; in place on one float32 copy (not one
        temporary per operation)."""
        out = images.astype(np.float32)
        out -= np.float32(self.mean)
        out /= np.float32(self.std)
        return out

    def normalized(self, images: np.ndarray) -> NormalizedImages:
        """`images` read as `normalize(images)`, a slice at a time (`NormalizedImages`)."""
        return NormalizedImages(images, self.normalize)

    def limited(self, limit: int, seed: int = 0) -> StreamingDataset:
        """The same dataset with at most `limit` items in each split: a seeded class-balanced subset
        (`stratified_subset`) where the reader knows the labels without decoding (folders, IDX files), else the
        first `limit` items (tfds)."""

        def cut(part: Split) -> Split:
            if part.count <= limit:
                return part
            if part.labels is not None:
                return part.subset(stratified_subset(part.labels, limit, seed))
            return Split(limit, lambda: part.source().take(limit), part.decode, None, None)

        return dataclasses.replace(self, splits={name: cut(part) for name, part in self.splits.items()})

    def metadata(self) -> dict:
        """What inference needs: name, labels, input shape and the normalization, JSON-ready."""
        return dataset_metadata(self.name, self.labels, self.input_shape, self.mean, self.std)


class NormalizedImages:
    """uint8 `images` read as float32 normalized images, `normalize` applied to each slice as it is read: `len`,
    `shape` and `[key]`, so a sample or a split held this way costs its uint8 pixels, not 4 times them.

    Example:
        >>> import numpy as np
        >>> pixels = np.full((1000, 28, 28, 1), 255, np.uint8)
        >>> sample = NormalizedImages(pixels, lambda x: (x - np.float32(127.5)) / np.float32(127.5))  # nothing yet
        >>> batch = sample[0:128]  # only these 128 images become float32
        >>> batch.shape, batch.dtype, float(batch.max())
        ((128, 28, 28, 1), dtype('float32'), 1.0)
    """

    def __init__(self, images: np.ndarray, normalize: Callable):
        self.images, self.normalize = images, normalize
        self.shape, self.dtype = images.shape, np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key) -> np.ndarray:
        return self.normalize(self.images[key])


def dataset_metadata(name: str, labels: list[str], input_shape, mean: list[float], std: list[float]) -> dict:
    """dataset.json's inference part: name, labels, input shape and the normalization (pixel - mean) / std on
    pixel values 0..255, JSON-ready."""
    return {
        "dataset": name,
        "labels": list(labels),
        "input_shape": [int(v) for v in input_shape],
        "normalization": {"mean": list(mean), "std": list(std), "units": "pixel values 0..255"},
    }


def record_splits(train: Split, test: Split | None, validation_fraction: float, test_fraction: float, seed: int):
    """The splits of every source ({"train", "validation", "test": Split}): `train` cut by `split_indices` into
    validation, a held-out test part when `test` is None, and train, in that order; `test` as it is otherwise."""
    fractions = (validation_fraction,) if test is not None else (validation_fraction, test_fraction)
    parts = split_indices(train.count, fractions, seed)
    names = ("validation",) if test is not None else ("validation", "test")
    splits = {name: train.subset(index) for name, index in zip(names, parts)}
    splits["train"] = train.subset(parts[-1])
    if test is not None:
        splits["test"] = test
    return splits
