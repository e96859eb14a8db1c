"""Streaming input: image folders, tfds datasets and Fashion-MNIST IDX files as `tf.data` pipelines, which Keras 3
feeds to every backend. Peak memory does not grow with the number of images (only the list of file names does).

A split is a *source* of undecoded items (file paths, IDX records, tfds examples) and a *decode* function that
turns one item into (uint8 image (H, W, C), int64 label). `StreamingDataset.batches` chains

    source -> shard by worker -> shuffle (seeded; file names or records, not pixels) -> decode in parallel
           -> [cache, small datasets only] -> batch -> normalize (x - mean) / std, one-hot labels -> prefetch

Decoding is TensorFlow's (`tf.io.decode_image`: JPEG, PNG, GIF (first frame), BMP, WebP), run in parallel in the
tf.data runtime, and converts as `kerascnn.data.folder.to_8bit` does with Pillow: 16-bit PNGs scaled to 8 bits
as round(v / 257) (not clipped), palette images expanded to their colours, transparency composited over white.

Augmentation is not done here: the trainer's `kerascnn.data.RandomCropFlip` layer crops and flips the batches on
the accelerator, written with keras.ops so it jit-compiles, and it is the same code for the in-memory path.

Bad files are found before the first epoch: every file's header is opened and checked with Pillow's `verify`
(cheap: it does not decode the pixels; for PNG it checks every chunk's CRC, and a JPEG must end with its
end-of-image marker, which catches truncated files). A bad file is named in a ValueError, or with
`skip_bad=True` left out and counted in `StreamingDataset.skipped`; with `skip_bad=True` a file that still fails
to decode when met is dropped too (`tf.data.Dataset.ignore_errors`), without it the run stops there.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kerascnn.data.datasets import dataset_metadata
from kerascnn.data.folder import IMAGE_SUFFIXES

# A train split whose decoded pixels fit in this many bytes is decoded once and cached in memory: later epochs
# skip decoding. Larger ones are decoded on every epoch, so memory stays flat.
DEFAULT_CACHE_BYTES = 128 << 20
# The normalization statistics come from a seeded sample of this many training images (all when fewer).
DEFAULT_STATS_IMAGES = 5000
GREYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N"}
COLOR_MODES = {"grayscale": 1, "rgb": 3}


@dataclasses.dataclass
class Split:
    """One split: `count` items, `source()` an unbatched tf.data.Dataset of undecoded items, `decode` the map
    from an item to (uint8 image (H, W, C), int64 label). `files` holds the paths of a folder split."""

    count: int
    source: Callable
    decode: Callable
    files: list[str] | None = None


@dataclasses.dataclass
class StreamingDataset:
    """Splits "train", "validation" and "test" streamed from disk, and what inference needs.

    `mean` and `std` are per-channel statistics of training images in pixel units (0..255); the batches hold
    (pixel - mean) / std. `input_path` says how the pixels reach the model: "stream" (decoded every epoch) or
    "memory" (decoded once, cached). `test_source` says where the test images come from; `skipped` lists the
    unreadable files left out.
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
    skip_bad: bool = False

    def count(self, split: str, num_shards: int = 1) -> int:
        """Images of `split` that one of `num_shards` workers reads (every worker reads the same number)."""
        return self.splits[split].count // num_shards

    def images(self, split: str, num_shards: int = 1, shard_index: int = 0):
        """Unbatched, undecoded-then-decoded (uint8 image, int64 label) pairs of one worker's shard, in order."""
        import tensorflow as tf

        part = self.splits[split]
        items = part.source()
        if num_shards > 1:  # every worker reads count // num_shards items, so all run the same number of steps
            items = items.shard(num_shards, shard_index).take(part.count // num_shards)
        images = items.map(part.decode, num_parallel_calls=tf.data.AUTOTUNE)
        return images.ignore_errors() if self.skip_bad else images

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
            The batched, prefetched dataset.
        """
        import tensorflow as tf

        part = self.splits[split]
        cached = self.input_path == "memory"
        items = part.source()
        if num_shards > 1:
            items = items.shard(num_shards, shard_index).take(part.count // num_shards)
        count = max(part.count // num_shards, 1)
        if shuffle and not cached:
            items = items.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        images = items.map(part.decode, num_parallel_calls=tf.data.AUTOTUNE)
        if self.skip_bad:
            images = images.ignore_errors()
        if cached:
            images = images.cache()
            if shuffle:
                images = images.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        prepare = self._prepare_fn(one_hot, normalize)
        batches = images.batch(batch_size).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        if not self.skip_bad:  # a known length (filters hide it), so Keras counts the steps of each pass
            steps = -(-(part.count // num_shards) // batch_size)
            batches = batches.apply(tf.data.experimental.assert_cardinality(steps))
        return batches.prefetch(tf.data.AUTOTUNE)

    def train_batches(
        self, batch_size: int, seeds, *, num_shards: int = 1, shard_index: int = 0, normalize: bool = True
    ):
        """Training batches of `len(seeds)` epochs back to back, for `fit(..., steps_per_epoch=...)`.

        Epoch i visits this worker's training items in an order shuffled with `seeds[i]` alone (a full
        shuffle of file names or records, then decoding), and its batches end with the epoch (the last may be
        smaller). So an epoch's batches depend only on its seed, and a run resumed at epoch k, given the seeds
        of epochs k, k+1, ..., sees the batches the uninterrupted run saw.

        Args:
            batch_size: images per batch (per worker).
            seeds: one int seed per epoch.
            num_shards, shard_index, normalize: as in `batches`.

        Returns:
            A tf.data.Dataset of (float32 normalized images, one-hot labels); each epoch has
            ceil(count(split, num_shards) / batch_size) batches.
        """
        import tensorflow as tf

        part = self.splits["train"]
        count = max(part.count // num_shards, 1)
        prepare = self._prepare_fn(True, normalize)

        def epoch(seed):
            items = part.source()
            if num_shards > 1:
                items = items.shard(num_shards, shard_index).take(count)
            images = items.shuffle(count, seed=seed, reshuffle_each_iteration=False).map(
                part.decode, num_parallel_calls=tf.data.AUTOTUNE
            )
            if self.skip_bad:
                images = images.ignore_errors()
            return images.batch(batch_size).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)

        epochs = [epoch(int(seed)) for seed in seeds]  # Python seeds: one shuffle per epoch, chained
        dataset = epochs[0]
        for following in epochs[1:]:
            dataset = dataset.concatenate(following)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def arrays(self, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The decoded split as (uint8 images (N, H, W, C), int64 labels), filled into one preallocated array
        (the in-memory path for small datasets: no second copy, no Pillow objects).

        Args:
            split: "train", "validation" or "test".
            limit: only the first `limit` images.
        """
        count = self.count(split) if limit is None else min(limit, self.count(split))
        images = np.empty((count, *self.input_shape), np.uint8)
        labels = np.empty(count, np.int64)
        filled = 0
        for x, y in self.images(split).take(count).batch(256).as_numpy_iterator():
            images[filled : filled + len(x)], labels[filled : filled + len(x)] = x, y
            filled += len(x)
        return images[:filled], labels[:filled]

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
        """(images - mean) / std as float32, as `batches` computes it."""
        return (images.astype(np.float32) - np.float32(self.mean)) / np.float32(self.std)

    def limited(self, limit: int) -> StreamingDataset:
        """The same dataset with only the first `limit` items of each split (smoke tests)."""

        def first(part: Split) -> Split:
            return Split(
                min(part.count, limit),
                lambda: part.source().take(limit),
                part.decode,
                None if part.files is None else part.files[:limit],
            )

        return dataclasses.replace(self, splits={name: first(part) for name, part in self.splits.items()})

    def metadata(self) -> dict:
        """What inference needs: name, labels, input shape and the normalization, JSON-ready."""
        return dataset_metadata(self.name, self.labels, self.input_shape, self.mean, self.std)


# ---------------------------------------------------------------------------------------------------------------
# image folders


def list_image_folder(
    root: str | os.PathLike, classes: list[str] | None = None
) -> tuple[list[str], np.ndarray, list[str]]:
    """(paths, int64 labels, class names) of root/<class name>/<image file>, without opening any file.

    Class names are the sorted sub-folder names (or `classes`, for a test folder that must match training).

    Raises:
        FileNotFoundError: `root` does not exist.
        ValueError: fewer than 2 class folders or no images; a test folder with a class training lacks.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {root} does not exist. Expected {root}/<class name>/<image files>.")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is not None and set(found) - set(classes):
        raise ValueError(
            f"{root} has class folders that the training folder lacks: "
            f"{', '.join(sorted(set(found) - set(classes)))}. Use the same class folders in both."
        )
    classes = found if classes is None else classes
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        names = sorted(
            e.name for e in os.scandir(folder) if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES
        )
        paths += [str(folder / n) for n in names]
        labels += [label] * len(names)
    if len(classes) < 2 or not paths:
        raise ValueError(
            f"{root} must hold one sub-folder per class (at least 2) with image files "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}); found {len(classes)} folders and {len(paths)} "
            "images."
        )
    return paths, np.array(labels, np.int64), classes


def check_image_file(path: str) -> tuple[str | None, tuple[int, int] | None, str | None]:
    """Checks one file's header without decoding its pixels: (problem or None, (height, width), mode).

    `mode` is Pillow's mode, with "+t" appended when a palette or greyscale image has a transparent colour.
    Pillow's `verify` reads the header (and checks every PNG chunk's CRC); a JPEG must also end with the
    end-of-image marker FF D9 within its last 64 bytes, which a truncated file lacks.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            size, mode, kind = (image.height, image.width), image.mode, image.format
            mode += "+t" if "transparency" in image.info else ""
            image.verify()
        if kind == "JPEG":
            with open(path, "rb") as f:
                f.seek(max(os.path.getsize(path) - 64, 0))
                if b"\xff\xd9" not in f.read():
                    return "truncated JPEG (no end-of-image marker)", None, None
        if kind not in ("JPEG", "PNG", "GIF", "BMP", "WEBP"):
            return f"{kind} data, which TensorFlow does not decode (convert it to PNG or JPEG)", None, None
    except Exception as error:  # Pillow raises many kinds (UnidentifiedImageError, SyntaxError, OSError, ...)
        return f"{type(error).__name__}: {error}", None, None
    return None, size, mode


@dataclasses.dataclass
class FolderSummary:
    """What the header check learned: which files are good, the bad ones, the first good image's size, whether
    every good image has that size, and how many images of each mode there are."""

    good: np.ndarray
    bad: list[str]
    first_size: tuple[int, int]
    same_size: bool
    modes: dict[str, int]

    def greyscale(self) -> bool:
        return all(mode.split("+")[0] in GREYSCALE_MODES for mode in self.modes)

    def decodes_directly(self, channels: int) -> bool:
        """True when `tf.io.decode_image(..., channels)` alone gives what `decode_image_bytes` gives for every
        image: 8-bit, no transparency, and colour (or palette) or greyscale going to 3 channels, greyscale to 1."""
        direct = {"RGB", "L", "P", "1"} if channels == 3 else {"L", "1"}
        return set(self.modes) <= direct


def check_image_files(paths: list[str], skip_bad: bool) -> FolderSummary:
    """Checks every file's header (`check_image_file`) before training starts.

    Raises:
        ValueError: a bad file and `skip_bad` is False (the message names up to 5 of them and the count), or
            no good file at all.
    """
    good = np.ones(len(paths), bool)
    problems, sizes, modes = [], set(), {}
    first_size = None
    for index, path in enumerate(paths):
        problem, size, mode = check_image_file(path)
        if problem:
            good[index] = False
            problems.append(f"{path} ({problem})")
            continue
        first_size = first_size or size
        sizes.add(size)
        modes[mode] = modes.get(mode, 0) + 1
    if problems and not skip_bad:
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise ValueError(
            f"{len(problems)} image file(s) cannot be decoded: {'; '.join(problems[:5])}{more}. "
            "Remove or replace them, or pass --skip-bad-images to train without them."
        )
    if not good.any():
        raise ValueError(f"None of the {len(paths)} image files can be decoded (first: {problems[0]}).")
    return FolderSummary(good, [p.split(" (")[0] for p in problems], first_size, len(sizes) == 1, modes)


def decode_file_fn(image_size: tuple[int, int], channels: int, direct: bool = False, resize: bool = True) -> Callable:
    """The tf.data map (path, label) -> (uint8 image of `image_size` and `channels`, label).

    Args:
        image_size: (height, width) of the output.
        channels: 1 or 3.
        direct: every file decodes correctly with `tf.io.decode_image(..., channels)` alone (see
            `FolderSummary.decodes_directly`): skip the 16-bit and transparency handling of `decode_image_bytes`.
        resize: some file is not of `image_size`: resize bilinearly (as
            `keras.utils.image_dataset_from_directory` does) and round back to uint8, which keeps a cache 4x
            smaller than float32. Without it the images are only checked to be of that size.
    """
    import tensorflow as tf

    to_size = resize_fn(image_size, channels) if resize else None

    def decode(path, label):
        contents = tf.io.read_file(path)
        if direct:
            image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
        else:
            image = decode_image_bytes(contents, channels)
        if to_size is not None:
            return to_size(image), label
        return tf.ensure_shape(image, (*image_size, channels)), label

    return decode


def decode_image_bytes(contents, channels: int):
    """Encoded JPEG/PNG/GIF/BMP/WebP bytes -> uint8 (H, W, channels), in the tf graph, converted as
    `kerascnn.data.folder.to_8bit` converts with Pillow.

    A 16-bit PNG (bit depth byte 24 of the file is 16) is decoded as uint16 and scaled to 8 bits as
    round(v * 255 / 65535) = round(v / 257), not clipped. Transparency (grey or colour with alpha, palettes
    with a transparent colour) is composited over white: p = a * p + (1 - a) * 255 with a = alpha / 255.
    Greyscale becomes RGB by repeating it; RGB becomes greyscale as Pillow's "L", 0.299 R + 0.587 G + 0.114 B.
    Images that already have `channels` channels and no alpha are returned as decoded.
    """
    import tensorflow as tf

    deep_png = tf.logical_and(
        tf.strings.substr(contents, 0, 8) == b"\x89PNG\r\n\x1a\n", tf.strings.substr(contents, 24, 1) == b"\x10"
    )

    def sixteen_bit():
        wide = tf.cast(tf.io.decode_png(contents, channels=0, dtype=tf.uint16), tf.float32)
        return tf.cast(tf.round(wide / 257.0), tf.uint8)

    def eight_bit():
        return tf.io.decode_image(contents, channels=0, expand_animations=False)

    image = tf.cond(deep_png, sixteen_bit, eight_bit)
    image.set_shape((None, None, None))
    return tf.cond(tf.shape(image)[-1] == channels, lambda: image, lambda: _convert_channels(image, channels))


def _convert_channels(image, channels: int):
    """uint8 (H, W, 1..4) -> uint8 (H, W, channels): alpha composited over white, then grey <-> RGB."""
    import tensorflow as tf

    x = tf.cast(image, tf.float32)

    def composite():
        alpha = x[..., -1:] / 255.0
        return x[..., :-1] * alpha + 255.0 * (1.0 - alpha)

    x = tf.cond(tf.shape(x)[-1] % 2 == 0, composite, lambda: x)  # 2: grey + alpha, 4: RGB + alpha
    if channels == 3:
        x = tf.cond(tf.shape(x)[-1] == 1, lambda: tf.tile(x, (1, 1, 3)), lambda: x)
    else:
        x = tf.cond(
            tf.shape(x)[-1] == 3, lambda: tf.reduce_sum(x * (0.299, 0.587, 0.114), -1, keepdims=True), lambda: x
        )
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


def resize_fn(image_size: tuple[int, int], channels: int) -> Callable:
    """uint8 image of any size -> uint8 (height, width, channels): bilinear resize, rounded (an image already of
    that size comes back unchanged)."""
    import tensorflow as tf

    height, width = image_size

    def resize(image):
        image.set_shape((None, None, channels))
        image = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(image, (height, width))), 0, 255), tf.uint8)
        image.set_shape((height, width, channels))
        return image

    return resize


def split_indices(count: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """A seeded random partition of range(count): one sorted index array per fraction, then the rest.

    The permutation is `np.random.default_rng(seed).permutation(count)`; the first round(count * f0) indices
    go to part 0, the next round(count * f1) to part 1, and so on. The same call as `load_dataset`'s, so a
    folder's validation split is the same whichever path reads it.
    """
    order = np.random.default_rng(seed).permutation(count)
    parts, start = [], 0
    for fraction in fractions:
        size = int(round(count * fraction))
        parts.append(np.sort(order[start : start + size]))
        start += size
    return [*parts, np.sort(order[start:])]


def open_image_folder(
    root: str | os.PathLike,
    *,
    test_dir: str | os.PathLike | None = None,
    image_size: tuple[int, int] | None = None,
    color_mode: str | None = None,
    validation_fraction: float = 1 / 12,
    test_fraction: float = 1 / 12,
    seed: int = 0,
    skip_bad: bool = False,
    cache_bytes: int | None = DEFAULT_CACHE_BYTES,
    stats_images: int | None = DEFAULT_STATS_IMAGES,
) -> StreamingDataset:
    """A folder of images (one sub-folder per class) as a streaming dataset, split without decoding.

    The file list is split by `split_indices` (seeded): `validation_fraction` for validation and, unless a
    separate `test_dir` is given, `test_fraction` for a held-out test split, never used to choose a model.

    Args:
        root: the training folder, root/<class name>/<image files>.
        test_dir: a folder with the same class folders, used as the test split instead of a held-out part.
        image_size: (height, width) every image is resized to; default the first image's size.
        color_mode: "grayscale" or "rgb"; default "grayscale" if every image is greyscale, else "rgb".
        validation_fraction, test_fraction: shares of the folder, each in [0, 0.5].
        seed: seed of the split and of the statistics sample.
        skip_bad: leave out files that cannot be decoded (counted in `skipped`) instead of raising.
        cache_bytes: cache the decoded images in memory when the training split's pixels fit in this many bytes
            (None: never).
        stats_images: size of the seeded sample of training images the mean and std come from (None: all).

    Returns:
        A `StreamingDataset`.

    Raises:
        FileNotFoundError, ValueError: see `list_image_folder` and `check_image_files`; bad arguments.

    Example:
        >>> data = open_image_folder("photos", image_size=(96, 96))
        >>> model.fit(data.batches("train", 64, shuffle=True), validation_data=data.batches("validation", 64))
    """
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value <= 0.5:
            raise ValueError(f"`{name}` must be in [0, 0.5]. Received: {name}={value!r}")
    if color_mode is not None and color_mode not in COLOR_MODES:
        raise ValueError(f"`color_mode` must be 'grayscale' or 'rgb'. Received: color_mode={color_mode!r}")
    paths, labels, classes = list_image_folder(root)
    test_paths, test_labels = [], labels[:0]
    if test_dir is not None:
        test_paths, test_labels, _ = list_image_folder(test_dir, classes)
    everything = paths + test_paths
    summary = check_image_files(everything, skip_bad)
    good, skipped = summary.good, summary.bad
    image_size = tuple(image_size or summary.first_size)
    if len(image_size) != 2 or not all(isinstance(v, int) and v > 0 for v in image_size):
        raise ValueError(f"`image_size` must be (height, width), positive ints. Received: {image_size!r}")
    channels = COLOR_MODES[color_mode] if color_mode else (1 if summary.greyscale() else 3)
    paths_arr = np.array(everything, dtype=object)
    all_labels = np.concatenate([labels, test_labels])
    train_good = good[: len(paths)]
    kept = np.flatnonzero(train_good)
    if test_dir is None:
        validation, test, train = split_indices(len(kept), (validation_fraction, test_fraction), seed)
        chosen = {"train": kept[train], "validation": kept[validation], "test": kept[test]}
        test_source = f"a seeded {test_fraction:.3g} of {Path(root).name} held out (never used to pick a model)"
    else:
        validation, train = split_indices(len(kept), (validation_fraction,), seed)
        chosen = {
            "train": kept[train],
            "validation": kept[validation],
            "test": len(paths) + np.flatnonzero(good[len(paths) :]),
        }
        test_source = f"the test folder {test_dir}"
    decode = decode_file_fn(
        image_size,
        channels,
        direct=summary.decodes_directly(channels),
        resize=not summary.same_size or image_size != summary.first_size,
    )
    splits = {
        name: _file_split([paths_arr[i] for i in index], all_labels[index], decode) for name, index in chosen.items()
    }
    if splits["train"].count == 0:
        raise ValueError(f"{root} leaves no training images after the validation and test splits.")
    input_shape = (*image_size, channels)
    input_path = _choose_path(splits["train"].count, input_shape, cache_bytes)
    dataset = StreamingDataset(
        Path(root).name,
        classes,
        input_shape,
        splits,
        [0.0] * channels,
        [1.0] * channels,
        input_path,
        test_source,
        skipped,
        skip_bad,
    )
    dataset.mean, dataset.std = image_statistics(dataset, stats_images, seed)
    return dataset


def _file_split(paths: list[str], labels: np.ndarray, decode) -> Split:
    def source():
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), tf.constant(labels, tf.int64)))

    return Split(len(paths), source, decode, paths)


def _choose_path(count: int, input_shape, cache_bytes: int | None) -> str:
    """ "memory" when the decoded uint8 training pixels fit in `cache_bytes`, else "stream"."""
    pixels = count * int(np.prod(input_shape))
    return "memory" if cache_bytes is not None and pixels <= cache_bytes else "stream"


# ---------------------------------------------------------------------------------------------------------------
# record datasets: Fashion-MNIST IDX files and tfds


def _masked(source: Callable, mask: np.ndarray) -> Callable:
    """source() restricted to the items whose index has mask[index] True."""

    def masked():
        import tensorflow as tf

        keep = tf.constant(mask)

        def kept(index, item):
            return keep[index]

        def drop_index(index, item):
            return item

        return source().enumerate().filter(kept).map(drop_index)

    return masked


def _record_dataset(
    name,
    labels,
    train: Split,
    test: Split | None,
    input_shape,
    *,
    validation_fraction,
    test_fraction,
    seed,
    cache_bytes,
    stats_images,
    test_source,
) -> StreamingDataset:
    """Splits a record dataset's train split by `split_indices` (validation, and test when it has none)."""
    fractions = (validation_fraction,) if test is not None else (validation_fraction, test_fraction)
    parts = split_indices(train.count, fractions, seed)
    splits = {}
    for split, index in zip(("validation", "test") if test is None else ("validation",), parts):
        mask = np.zeros(train.count, bool)
        mask[index] = True
        splits[split] = Split(len(index), _masked(train.source, mask), train.decode)
    mask = np.zeros(train.count, bool)
    mask[parts[-1]] = True
    splits["train"] = Split(len(parts[-1]), _masked(train.source, mask), train.decode)
    if test is not None:
        splits["test"] = test
    else:
        test_source = f"a seeded {test_fraction:.3g} of the training split held out (never used to pick a model)"
    channels = input_shape[-1]
    dataset = StreamingDataset(
        name,
        list(labels),
        tuple(input_shape),
        splits,
        [0.0] * channels,
        [1.0] * channels,
        _choose_path(splits["train"].count, input_shape, cache_bytes),
        test_source,
    )
    dataset.mean, dataset.std = image_statistics(dataset, stats_images, seed)
    return dataset


def open_idx(
    images_files: dict[str, Path],
    labels_files: dict[str, Path],
    label_names: list[str],
    *,
    name: str = "fashion_mnist",
    image_size: tuple[int, int] | None = None,
    validation_fraction: float = 1 / 12,
    seed: int = 0,
    cache_bytes: int | None = DEFAULT_CACHE_BYTES,
    stats_images: int | None = DEFAULT_STATS_IMAGES,
) -> StreamingDataset:
    """IDX image and label files (gzipped or not; "train" and "test") streamed record by record.

    `tf.data.FixedLengthRecordDataset` reads the records after the header (16 bytes for 3-D uint8 images,
    8 for labels), decompressing on the fly, so nothing is loaded whole. The validation split is the same
    seeded split as `load_dataset`'s.

    Raises:
        ValueError: a file is not a 3-D uint8 image / 1-D uint8 label IDX file, or the counts differ.
    """

    def header(path: Path, ndim: int) -> tuple[int, ...]:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read(4 + 4 * ndim)
        if len(raw) < 4 + 4 * ndim or raw[:4] != bytes([0, 0, 0x08, ndim]):
            raise ValueError(f"{path} is not a {ndim}-D uint8 IDX file (header {raw[:4].hex()}).")
        return tuple(int(v) for v in np.frombuffer(raw, ">u4", count=ndim, offset=4))

    split_data = {}
    for split in ("train", "test"):
        images_path, labels_path = Path(images_files[split]), Path(labels_files[split])
        count, height, width = header(images_path, 3)
        (label_count,) = header(labels_path, 1)
        if label_count != count:
            raise ValueError(f"{images_path} holds {count} images but {labels_path} {label_count} labels.")
        split_data[split] = (images_path, labels_path, count, height, width)
    height, width = split_data["train"][3:]
    image_size = tuple(image_size or (height, width))
    resize = resize_fn(image_size, 1) if image_size != (height, width) else (lambda image: image)

    def make(split):
        images_path, labels_path, count, h, w = split_data[split]

        def source():
            import tensorflow as tf

            gz = {True: "GZIP", False: ""}
            images = tf.data.FixedLengthRecordDataset(
                str(images_path), h * w, header_bytes=16, compression_type=gz[images_path.suffix == ".gz"]
            )
            labels = tf.data.FixedLengthRecordDataset(
                str(labels_path), 1, header_bytes=8, compression_type=gz[labels_path.suffix == ".gz"]
            )
            return tf.data.Dataset.zip((images, labels))

        def decode(image, label):
            import tensorflow as tf

            image = tf.reshape(tf.io.decode_raw(image, tf.uint8), (h, w, 1))
            return resize(image), tf.cast(tf.io.decode_raw(label, tf.uint8)[0], tf.int64)

        return Split(count, source, decode)

    return _record_dataset(
        name,
        label_names,
        make("train"),
        make("test"),
        (*image_size, 1),
        validation_fraction=validation_fraction,
        test_fraction=0.0,
        seed=seed,
        cache_bytes=cache_bytes,
        stats_images=stats_images,
        test_source="the test IDX files",
    )


def open_tfds(
    name: str,
    *,
    image_size: tuple[int, int] | None = None,
    validation_fraction: float = 1 / 12,
    test_fraction: float = 1 / 12,
    seed: int = 0,
    cache_bytes: int | None = DEFAULT_CACHE_BYTES,
    stats_images: int | None = DEFAULT_STATS_IMAGES,
    data_dir: str | None = None,
) -> StreamingDataset:
    """A prepared tfds image-classification dataset, streamed example by example (not `batch_size=-1`).

    Images keep the dataset's size unless `image_size` is given; a dataset of varying sizes needs it (or
    takes the first image's). Its "test" split is the test split; without one, a seeded `test_fraction` of
    "train" is held out.

    Raises:
        RuntimeError: tensorflow-datasets missing or the dataset cannot be prepared.
        ValueError: not an image-classification dataset.
    """
    from kerascnn.data import datasets

    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise RuntimeError(
            f"Dataset {name!r} needs tensorflow-datasets, which is not installed here"
            + datasets._fashion_mnist_hint(name)
        ) from error
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            if not datasets.online():  # tfds would retry for minutes before failing
                raise RuntimeError(
                    f"this machine cannot reach {datasets.TFDS_PROBE_HOST}, and {name!r} is not in {builder.data_dir}"
                )
            print(f"Downloading {name!r} with tensorflow-datasets into {builder.data_dir} (needs internet)", flush=True)
        builder.download_and_prepare()
    except Exception as error:  # offline, unknown name, ...: tfds raises many kinds
        raise RuntimeError(
            f"Cannot load dataset {name!r} with tensorflow-datasets: {error}" + datasets._fashion_mnist_hint(name)
        ) from error
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise ValueError(
            f"tfds dataset {name!r} is not an image-classification dataset (it needs 'image' and 'label' features)."
        )
    height, width, channels = features["image"].shape
    own_size = None if height is None or width is None else (height, width)
    if image_size is None and own_size is None:
        first = next(iter(builder.as_dataset(split="train", as_supervised=True).take(1)))[0]
        image_size = tuple(int(v) for v in first.shape[:2])
    image_size = tuple(image_size or own_size)
    resize = resize_fn(image_size, channels)
    if image_size == own_size:  # every image already has it

        def resize(image):
            return image

    def make(split):
        def source():
            return builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)

        def decode(image, label):
            import tensorflow as tf

            return resize(image), tf.cast(label, tf.int64)

        try:
            count = builder.info.splits[split].num_examples
        except KeyError:  # split sizes not recorded (mocked builders): count the examples once
            count = int(source().reduce(0, lambda n, _: n + 1))
        return Split(count, source, decode)

    try:
        splits = set(builder.info.splits.keys())
    except KeyError:
        splits = set()
    test = make("test") if "test" in splits else None
    return _record_dataset(
        name,
        features["label"].names,
        make("train"),
        test,
        (*image_size, channels),
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        cache_bytes=cache_bytes,
        stats_images=stats_images,
        test_source=f"the {name} test split",
    )


# ---------------------------------------------------------------------------------------------------------------
# statistics


def image_statistics(
    dataset: StreamingDataset, sample: int | None = DEFAULT_STATS_IMAGES, seed: int = 0, batch_size: int = 64
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (pixel units) of the training images, in one streaming pass.

    Over a seeded sample of `sample` training images (all of them when fewer, or when `sample` is None):
    mean = S1 / n, std = sqrt(S2 / n - mean^2) with S1, S2 the sums of the pixels and of their squares, summed
    per batch in the tf.data runtime and accumulated across batches, in float64, so memory does not grow
    with the number of images. A std below 1e-3 is raised to 1e-3.
    """
    import tensorflow as tf

    part = dataset.splits["train"]
    items = part.source()
    if sample is not None and sample < part.count:
        chosen = np.zeros(part.count, bool)
        chosen[np.random.default_rng(seed).choice(part.count, sample, replace=False)] = True
        items = _masked(part.source, chosen)()
    images = items.map(part.decode, num_parallel_calls=tf.data.AUTOTUNE)
    if dataset.skip_bad:
        images = images.ignore_errors()
    channels = dataset.input_shape[-1]

    def sums(x, _):  # per batch: pixel count, sum and sum of squares per channel
        x = tf.reshape(tf.cast(x, tf.float64), (-1, channels))
        return tf.cast(tf.shape(x)[0], tf.float64), tf.reduce_sum(x, 0), tf.reduce_sum(tf.square(x), 0)

    s1, s2, n = np.zeros(channels), np.zeros(channels), 0
    for count, total, squares in images.batch(batch_size).map(sums).prefetch(2).as_numpy_iterator():
        s1 += total
        s2 += squares
        n += count
    mean = s1 / max(n, 1)
    std = np.sqrt(np.maximum(s2 / max(n, 1) - mean**2, 0.0))
    return [round(float(v), 4) for v in mean], [round(float(max(v, 1e-3)), 4) for v in std]


# ---------------------------------------------------------------------------------------------------------------
# choosing


def native_size_bytes(name: str) -> int | None:
    """Decoded bytes of the training split of a tfds dataset or of Debian's Fashion-MNIST, from headers or
    tfds's metadata without reading the images; None when unknown (images of varying size, not prepared)."""
    from kerascnn.data import datasets

    directory = datasets._debian_fashion_mnist_dir() if name == "fashion_mnist" else None
    if directory is not None:
        with gzip.open(directory / datasets._IDX_FILES["train"][0], "rb") as f:
            header = f.read(16)
        count, height, width = (int(v) for v in np.frombuffer(header, ">u4", count=3, offset=4))
        return count * height * width
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(name)
        shape = builder.info.features["image"].shape
        count = builder.info.splits["train"].num_examples
    except Exception:  # not installed, unknown, not prepared: tfds raises many kinds
        return None
    return None if None in shape else count * int(np.prod(shape))


def open_for_run(settings: dict, cache_bytes: int | None = DEFAULT_CACHE_BYTES) -> StreamingDataset:
    """The streamed dataset a training run with these settings reads (TrainConfig's fields, as in its
    config.yaml): the same split and statistics every time, so export evaluates on the run's own test images.
    Keys missing from an older config.yaml take TrainConfig's defaults."""
    return open_dataset(
        settings["dataset"],
        settings.get("data_dir"),
        test_dir=settings.get("test_dir"),
        image_size=tuple(settings["image_size"]) if settings.get("image_size") else None,
        validation_fraction=settings["validation_fraction"],
        test_fraction=settings.get("test_fraction", 1 / 12),
        seed=settings["seed"],
        skip_bad=settings.get("skip_bad_images", False),
        cache_bytes=cache_bytes,
    )


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
    """An image folder (`data_dir`), Debian's Fashion-MNIST IDX files or a tfds dataset, streamed.

    Args: as `open_image_folder` (folders), `open_idx` and `open_tfds`; `test_dir` and `color_mode` are for
    folders only.

    Raises:
        ValueError: `test_dir` without `data_dir`; see the openers.
    """
    from kerascnn.data import datasets

    if data_dir is not None:
        return open_image_folder(
            data_dir,
            test_dir=test_dir,
            image_size=image_size,
            color_mode=color_mode,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=seed,
            skip_bad=skip_bad,
            cache_bytes=cache_bytes,
            stats_images=stats_images,
        )
    if test_dir is not None:
        raise ValueError("--test-dir is the test split of an image folder: give --data-dir too.")
    directory = datasets._debian_fashion_mnist_dir() if name == "fashion_mnist" else None
    if directory is not None:
        files = {split: [directory / f for f in pair] for split, pair in datasets._IDX_FILES.items()}
        return open_idx(
            {s: f[0] for s, f in files.items()},
            {s: f[1] for s, f in files.items()},
            datasets.FASHION_MNIST_LABELS,
            image_size=image_size,
            validation_fraction=validation_fraction,
            seed=seed,
            cache_bytes=cache_bytes,
            stats_images=stats_images,
        )
    return open_tfds(
        name,
        image_size=image_size,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        cache_bytes=cache_bytes,
        stats_images=stats_images,
    )
