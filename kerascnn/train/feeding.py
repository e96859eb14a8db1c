"""Data feeding: the run's splits (`load_data`: in memory or streamed, `Data`) and what `model.fit` and `evaluate`
read from them (`fit_inputs`, `in_order`, `test_batches`, the batch-norm sample `batch_norm_images`). Rule: every
epoch's order depends on (seed, epoch) only; in memory every split is held once, as uint8, and normalized per batch."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kerascnn.data import stream
from kerascnn.data.spec import DataSpec
from kerascnn.train import distribute, finetune
from kerascnn.train.batches import (
    DeviceEpochBatches,
    EpochBatches,
    TFEpochBatches,
    epoch_seed,
    held_by_tensorflow,
    ordered_batches,
)
from kerascnn.train.config import TrainConfig
from kerascnn.train.ema import BATCH_NORM_IMAGES

# --input auto|memory|stream as StreamingDataset cache limits (None: never in memory)
CACHE_BYTES = {"auto": stream.DEFAULT_CACHE_BYTES, "memory": 1 << 62, "stream": None}

# streamed runs show the TensorBoard image summaries on this many validation images
SUMMARY_IMAGES = 1000

# the cluster of a run in one process (its chief)
SINGLE_PROCESS = distribute.Cluster()


@dataclasses.dataclass(kw_only=True)
class Data:
    """The dataset's splits, limited to `--limit`; `x_train`, `x_val` and `x_test` hold their uint8 pixels, each
    held once and normalized per batch (`kerascnn.train.batches`); on the TensorFlow backend they are read-only
    views of the tf.Variables in `held` ({split: variable}), which the tf.data inputs gather from.

    `input_path` is "memory" (the arrays hold every split) or "stream" (`dataset` is then a `StreamingDataset`
    that reads the splits from disk every epoch, this process's shard `shard_index` of `num_shards`; the arrays
    hold only up to `SUMMARY_IMAGES` validation images, for the TensorBoard image summaries). `test_source` says
    where the test images come from.
    """

    dataset: stream.StreamingDataset
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    input_path: str = "memory"
    test_source: str
    num_shards: int = 1
    shard_index: int = 0
    held: dict = dataclasses.field(default_factory=dict)

    @property
    def stream(self) -> stream.StreamingDataset | None:
        """The dataset that feeds every epoch from disk when `input_path` is "stream", else None."""
        return self.dataset if self.input_path == "stream" else None

    @property
    def num_classes(self) -> int:
        return len(self.dataset.labels)

    def count(self, split: str) -> int:
        """Images of `split` this process reads."""
        if self.stream is not None:
            return self.stream.count(split, self.num_shards)
        return len({"train": self.y_train, "validation": self.y_val, "test": self.y_test}[split])


def data_spec(config: TrainConfig) -> DataSpec:
    """The run's data, as TrainConfig's fields give it (checked by `TrainConfig.validate`)."""
    return DataSpec.from_settings(dataclasses.asdict(config))


def _use_normalization(dataset, normalization: dict | None):
    """`dataset` normalizing with `normalization` ({"mean", "std"}, a fine-tuned backbone's) instead of its own
    statistics; it is written to dataset.json, so export and the metadata carry it."""
    if normalization is not None:
        finetune.check_normalization(normalization, dataset.input_shape[-1], "--init-from/--weights")
        dataset.mean, dataset.std = list(normalization["mean"]), list(normalization["std"])
    return dataset


def load_data(
    config: TrainConfig, cluster: distribute.Cluster = SINGLE_PROCESS, normalization: dict | None = None
) -> Data:
    """The splits of `data_spec(config)`, limited to --limit (a seeded class-balanced subset), in memory (normalized
    arrays) or streamed (`kerascnn.data.stream`).

    In memory: a dataset whose training pixels fit in `stream.DEFAULT_CACHE_BYTES` (`--input auto`; Fashion-MNIST,
    small folders) or `--input memory`, decoded once by the pipeline's decoder. Streamed: everything larger, every
    `--input stream` run and every run across several processes (each reads its own shard).
    `normalization` ({"mean", "std"} in pixel units) replaces the training images' statistics (fine-tuning).
    """
    data = stream.open(data_spec(config), cache_bytes=CACHE_BYTES[config.input_pipeline], batch_size=config.batch_size)
    if data.skipped:
        print(
            f"Skipped {len(data.skipped)} image file(s) that cannot be decoded (--skip-bad-images), e.g. "
            f"{data.skipped[0]}."
        )
    data = _use_normalization(data, normalization)
    if data.input_path == "memory" and not cluster.multi_process:
        # uint8, held once: the batches normalize them (float32 would take 4x the bytes)
        splits = {split: data.arrays(split) for split in ("train", "validation", "test")}
        held = {}
        if keras.backend.backend() == "tensorflow":  # held by TensorFlow, where tf.data gathers the batches
            for split, (images, labels) in splits.items():
                held[split], images = held_by_tensorflow(images, f"{split}_images")
                splits[split] = images, labels
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits.values()
        return Data(
            dataset=data,
            x_train=x_train,
            y_train=y_train,
            x_val=x_val,
            y_val=y_val,
            x_test=x_test,
            y_test=y_test,
            input_path="memory",
            test_source=data.test_source,
            held=held,
        )
    x_val, y_val = data.arrays("validation", limit=SUMMARY_IMAGES)
    return Data(
        dataset=data,
        x_val=x_val,
        y_val=y_val,
        input_path="stream",
        test_source=data.test_source,
        num_shards=cluster.num_processes,
        shard_index=cluster.process_id,
    )


def fit_inputs(config: TrainConfig, data: Data, batch_size: int, steps_per_epoch: int, initial_epoch: int):
    """(training batches, validation data or None, steps per epoch or None, extra callbacks) for `fit`, from
    `initial_epoch` on.

    Streamed: uint8 tf.data batches (the training model normalizes them), the epochs back to back, each exactly
    `steps_per_epoch` batches (`.repeat()` only guards against Keras asking for a batch past the last epoch's end).
    In memory: the uint8 training pixels, normalized per batch, as `EpochBatches` (PyTorch: Keras iterates it in
    Python), the same batches gathered on the device (JAX: `DeviceEpochBatches`, the images uploaded once) or as a
    tf.data pipeline (TensorFlow: `TFEpochBatches`, whose callback sets each epoch's order). Every way an epoch's
    order depends on (seed, epoch) only.
    """
    if data.stream is not None:
        seeds = [epoch_seed(config.seed, epoch) for epoch in range(initial_epoch, config.epochs)]
        shards = dict(num_shards=data.num_shards, shard_index=data.shard_index, normalize=False)
        batches = data.stream.train_batches(batch_size, seeds, **shards).repeat()
        validation = data.stream.batches("validation", batch_size, **shards) if data.count("validation") else None
        return batches, validation, steps_per_epoch, []
    validation = in_order(data, "validation", batch_size) if len(data.y_val) else None
    arrays = data.held.get("train", data.x_train), data.y_train, data.num_classes, batch_size, config.seed
    normalization = (data.dataset.mean, data.dataset.std)
    if keras.backend.backend() == "tensorflow":
        batches = TFEpochBatches(*arrays, normalization=normalization)
        return batches.dataset, validation, None, [batches]
    if keras.backend.backend() == "jax":
        return DeviceEpochBatches(*arrays, initial_epoch, normalization), validation, None, []
    return EpochBatches(*arrays, initial_epoch, normalization), validation, None, []


def in_order(data: Data, split: str, batch_size: int):
    """An in-memory split's (normalized images, one-hot labels) batches in order (`ordered_batches`), gathered from
    its TensorFlow variable where it has one."""
    images, labels = {"validation": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}[split]
    normalization = (data.dataset.mean, data.dataset.std)
    return ordered_batches(data.held.get(split, images), labels, data.num_classes, batch_size, normalization)


def test_batches(data: Data, batch_size: int = 512):
    """The test split as (normalized images, one-hot labels) NumPy batches."""
    if data.stream is not None:
        yield from data.stream.batches("test", batch_size).as_numpy_iterator()
        return
    for start in range(0, len(data.y_test), batch_size):
        chosen = slice(start, start + batch_size)
        yield data.dataset.normalize(data.x_test[chosen]), _one_hot(data.y_test[chosen], data.num_classes)


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def batch_norm_images(
    config: TrainConfig, data: Data, cluster: distribute.Cluster = SINGLE_PROCESS, recompute: bool = False
):
    """With --ema or `recompute` (`small_data.unconverged`), on one process: `BATCH_NORM_IMAGES` training images in
    a seeded shuffled order (folders list their files class by class: batches of one class would miss the variance
    between classes), as the training model takes them (normalized per slice in memory, uint8 when streamed; a
    streamed tfds split gives its first images), whose batch statistics become the evaluated weights' batch-norm
    statistics (`kerascnn.train.ema.update_batch_norms`). None without either, or across several processes (each
    would need the whole batch: their weights keep the moving statistics)."""
    if not (config.ema or recompute) or cluster.multi_process:
        return None
    rng = np.random.default_rng(config.seed)
    if data.x_train is not None:
        return data.dataset.normalized(data.x_train[rng.permutation(len(data.x_train))[:BATCH_NORM_IMAGES]])
    images = data.dataset.limited(BATCH_NORM_IMAGES, config.seed).arrays("train")[0]
    return images[rng.permutation(len(images))]
