"""One training run, in its steps: the run directory, the data, the model (new or resumed), the callbacks,
model.fit, and the test-set metrics. `train` runs them in order and restores Keras's global settings after."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from kerascnn import models, rundir
from kerascnn.data import RandomCropFlip, RandomErasing, stream
from kerascnn.data.spec import DataSpec
from kerascnn.rundir import Run
from kerascnn.saving import load_model
from kerascnn.train import distribute, finetune, schedules, small_data
from kerascnn.train.batches import (
    DeviceEpochBatches,
    EpochBatches,
    EpochSeeds,
    TFEpochBatches,
    epoch_seed,
    held_by_tensorflow,
    ordered_batches,
)
from kerascnn.train.checkpoint import (
    CheckpointError,
    EpochClock,
    LearningRateLogger,
    NaNGuard,
    ResumableCheckpoint,
    atomic_save_model,
)
from kerascnn.train.config import (
    PER_PROCESS_SETTINGS,
    RESUME_MAY_CHANGE,
    TrainConfig,
    flag,
    resolve,
    to_yaml,
)
from kerascnn.train.ema import BATCH_NORM_IMAGES, AveragedValidation, averaged_weights, update_batch_norms

# horizontal flips change what digits and letters mean
NO_FLIP_DATASETS = {"mnist", "emnist", "kmnist", "svhn_cropped"}
# --input auto|memory|stream as StreamingDataset cache limits (None: never in memory)
CACHE_BYTES = {"auto": stream.DEFAULT_CACHE_BYTES, "memory": 1 << 62, "stream": None}
# streamed runs show the TensorBoard image summaries on this many validation images
SUMMARY_IMAGES = 1000
SINGLE_PROCESS = distribute.Cluster()
# what may differ between the processes of one run (the settings of role PER_PROCESS): where each meets the others,
# which one it is, how long it waits for them, and what only the chief reads (out, overwrite: the others write scratch)
PER_PROCESS = PER_PROCESS_SETTINGS


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says why and what to do."""


# --jit-compile as Model.compile's jit_compile. "auto" is Keras's own rule: XLA where the model supports it, except on
# PyTorch, under tf.distribute, and for TensorFlow on a CPU-only machine (where it was about 40x slower per step,
# `bench/layers.py` on the shared 2-core CPU, a factor that depends heavily on the load: README, Benchmarks)
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


def compile_cache_dir(setting: str | None, environ=os.environ) -> Path | None:
    """The folder of JAX's persistent compilation cache: --compile-cache DIR, None for "off", else
    $JAX_COMPILATION_CACHE_DIR, else the per-user ~/.cache/kerascnn/jax."""
    if setting == "off":
        return None
    if setting:
        return Path(setting).expanduser()
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(environ["JAX_COMPILATION_CACHE_DIR"]).expanduser()
    return Path.home() / ".cache" / "kerascnn" / "jax"


def enable_compile_cache(setting: str | None) -> Path | None:
    """On the JAX backend, keeps compiled XLA programs in `compile_cache_dir(setting)` across runs, so a second
    run of the same model and batch size loads its train and test steps instead of compiling them (programs that
    compile in under a second are not kept, JAX's default). Returns the folder, None where it is off or not JAX."""
    folder = compile_cache_dir(setting)
    if folder is None or keras.backend.backend() != "jax":
        return None
    import jax

    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    return folder


def tensorflow_available() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


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


def cluster_settings(config: TrainConfig, state: dict | None) -> dict:
    """{flag: value} of everything that must be equal on every process of a run, compared by
    `distribute.initialize` before the first step: every setting but `PER_PROCESS`, the epochs a resumed run has
    done, and the versions of Keras, JAX and kerascnn (`rendezvous.serve` adds the process count)."""
    import kerascnn

    # num_processes as given may be None (taken from KERAS_DISTRIBUTION_NUM_PROCESSES): the rendezvous compares
    # the count each process resolved
    names = [f.name for f in dataclasses.fields(config) if f.name not in PER_PROCESS | {"num_processes"}]
    settings = {flag(name): getattr(config, name) for name in names}
    settings["--resume (epochs done)"] = state["epoch"] + 1 if state else 0
    settings.update({"Keras": keras.__version__, "JAX": distribute.jax_version(), "kerascnn": kerascnn.__version__})
    return settings


def _distribution_scope(config: TrainConfig, cluster: distribute.Cluster = SINGLE_PROCESS):
    """(a function giving the context to build, compile and evaluate in, number of replicas):
    MirroredStrategy over the local devices on TensorFlow, keras.distribution.DataParallel on JAX; across
    several processes (JAX), DataParallel over every device of every process, each feeding its own shard."""
    if cluster.multi_process:
        distribution = distribute.data_parallel(cluster)
        return contextlib.nullcontext, len(distribution.device_mesh.devices.flatten())
    if not config.distribute:
        return contextlib.nullcontext, 1
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        strategy = tf.distribute.MirroredStrategy(devices)
        return strategy.scope, strategy.num_replicas_in_sync
    if backend == "jax":
        distribution = keras.distribution.DataParallel()
        keras.distribution.set_distribution(distribution)
        return contextlib.nullcontext, len(distribution.device_mesh.devices.flatten())
    raise TrainingError(f"--distribute supports the tensorflow and jax backends, not {backend}.")


def _schedule(config: TrainConfig, steps_per_epoch: int):
    """Linear warm-up from 0 to `lr` over `warmup_epochs`, then `lr_decay` (cosine or linear) to 0 at the last step
    of `epochs`."""
    total = config.epochs * steps_per_epoch
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total - 1)
    return schedules.schedule(config.lr_decay, config.lr, warmup, total)


def _optimizer(config: TrainConfig, steps_per_epoch: int):
    schedule = _schedule(config, steps_per_epoch)
    ema = dict(use_ema=config.ema > 0, ema_momentum=config.ema or 0.99)
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=config.weight_decay, **ema)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, **ema)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def check_run_dir(config: TrainConfig, cluster: distribute.Cluster = SINGLE_PROCESS) -> tuple[Path, dict | None]:
    """(the run directory, its checkpoint state when resuming), checked before anything is written: `Run.check_start`
    (new, resumed and overwritten runs; only the chief checks a new run's folder).

    Raises:
        RunDirError, CheckpointError: see `Run.check_start`.
    """
    run = Run(config.run_dir, resolve)
    return run.folder, run.check_start(config, RESUME_MAY_CHANGE, chief=cluster.is_chief)


def _use_normalization(dataset, normalization: dict | None):
    """`dataset` normalizing with `normalization` ({"mean", "std"}, a fine-tuned backbone's) instead of its own
    statistics; it is written to dataset.json, so export and the metadata carry it."""
    if normalization is not None:
        finetune.check_normalization(normalization, dataset.input_shape[-1], "--init-from/--weights")
        dataset.mean, dataset.std = list(normalization["mean"]), list(normalization["std"])
    return dataset


def data_spec(config: TrainConfig) -> DataSpec:
    """The run's data, as TrainConfig's fields give it (checked by `TrainConfig.validate`)."""
    return DataSpec.from_settings(dataclasses.asdict(config))


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


def write_run_files(run_dir: Path, config: TrainConfig, data: Data, normalization_from: str | None = None) -> None:
    """Creates the run directory (`Run.create`): config.yaml, dataset.json and labels.txt. With `config.overwrite`, an
    earlier run's files are deleted first. `normalization_from` names the backbone whose normalization a fine-tuned
    run uses (dataset.json's normalization "from")."""
    # "spec", "skipped" and the file counts let export open the same splits with these statistics again
    # (kerascnn.data.open with recorded=), without re-checking the data or recomputing the statistics
    meta = data.dataset.metadata()
    if normalization_from:
        meta["normalization"]["from"] = normalization_from
    recorded = {
        **meta,
        "reader": "stream",
        "spec": data_spec(config).to_json(),
        "skipped": data.dataset.skipped,
        **data.dataset.facts,
    }
    Run(run_dir).create(to_yaml(config), recorded, data.dataset.labels, overwrite=config.overwrite)


def build_model(
    config: TrainConfig, data: Data, steps_per_epoch: int, network: keras.Model | None = None, phase=None
) -> tuple[keras.Model, keras.Model]:
    """(training model, network): the network wrapped in a model named "train" that augments its input
    first (when augmentation is on), compiled with the optimizer and loss. A streamed run feeds uint8 pixels,
    which the training model normalizes first, on the accelerator (`StreamingDataset.normalization_layer`).
    `network` is a network built already (fine-tuning: `finetune.build_network`); `phase` (True: head only,
    False: all layers, None: not fine-tuning) sets what trains and the optimizer's schedule (`compile_phase`)."""
    if network is None:
        network = models.create(config.model, data.dataset.input_shape, data.num_classes, **config.model_options)
    flip = config.augment_flip if config.augment_flip is not None else config.dataset not in NO_FLIP_DATASETS
    if data.stream is not None:
        inputs = keras.Input(data.dataset.input_shape, dtype="uint8")
        x = data.stream.normalization_layer()(inputs)
    else:
        inputs = keras.Input(data.dataset.input_shape)
        x = inputs
    if config.augment_padding or flip:
        x = RandomCropFlip(config.augment_padding, flip, seed=config.seed, name="augment")(x)
    if config.augment_erase:
        x = RandomErasing(config.augment_erase, seed=config.seed, name="erase")(x)
    train_model = keras.Model(inputs, network(x), name="train")
    compile_phase(train_model, network, config, steps_per_epoch, phase)
    return train_model, network


def compile_phase(train_model, network, config: TrainConfig, steps_per_epoch: int, phase=None) -> None:
    """Compiles `train_model` for a fine-tuning phase (`finetune.set_phase`, then a fresh optimizer whose
    schedule spans the phase: `finetune.phase_config`), or for a whole run when `phase` is None."""
    if phase is not None:
        finetune.set_phase(network, head_only=phase)
        config = finetune.phase_config(config, head_only=phase)
    train_model.compile(
        optimizer=_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=JIT_COMPILE[config.jit_compile],
        steps_per_execution=config.steps_per_execution,
    )


def resume_model(config: TrainConfig, data: Data, run_dir: Path, state: dict, steps_per_epoch: int, phase=None):
    """(training model, network) of `build_model`, with the weights and optimizer state of the checkpoint
    that `state` names. The model, the optimizer's settings (weight-decay exclusions included) and the
    learning-rate schedule come from `config`, so a resumed run given more epochs decays over the new total.
    `phase` is the fine-tuning phase the checkpoint's epoch ran in (its optimizer holds that phase's variables)."""
    train_model, network = build_model(config, data, steps_per_epoch, phase=phase)
    train_model.optimizer.build(train_model.trainable_variables)
    path = Run(run_dir).checkpoint_file(state)
    try:
        train_model.load_weights(path)
    except Exception as error:  # zipfile, h5py and Keras raise many kinds for a damaged file
        raise CheckpointError(
            f"Checkpoint {path} is damaged (truncated or not a .keras file: "
            f"{type(error).__name__}). Resume is not possible from it; start a new run (--overwrite, or a "
            "new --out)."
        ) from error
    return train_model, network


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


def make_callbacks(
    config: TrainConfig,
    run_dir: Path,
    data: Data,
    network,
    state,
    nan_guard,
    cluster: distribute.Cluster = SINGLE_PROCESS,
    bn_images=None,
) -> list:
    """The run's callbacks. Across several processes, saving a model is a collective operation (JAX checks
    that every process saves the same values), so every process checkpoints, the others into a private
    scratch `run_dir`; only the chief (process 0) writes TensorBoard logs. `bn_images`: `batch_norm_images`."""
    averaged = functools.partial(averaged_weights, batch_norm_images=bn_images, batch_size=config.batch_size)
    callbacks = [nan_guard, EpochSeeds(config.seed), LearningRateLogger(), AveragedValidation(averaged)]
    has_validation = data.count("validation") > 0
    if config.early_stopping and has_validation:  # before the checkpoint, which saves the epoch it stops on
        callbacks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=config.early_stopping))
    elif config.early_stopping:
        print("No validation images: --early-stopping is off.")
    callbacks.append(
        ResumableCheckpoint(
            run_dir,
            network,
            nan_guard,
            state,
            every=config.checkpoint_every,
            averaged=averaged,
            keep_last=config.keep == "last",
        )
    )
    if not cluster.is_chief:
        return callbacks
    if config.tensorboard and tensorflow_available() and cluster.multi_process:
        # the image summaries predict on one process only, which a multi-process model cannot do
        callbacks.append(keras.callbacks.TensorBoard(run_dir / rundir.TENSORBOARD_DIR, histogram_freq=1))
    elif config.tensorboard and tensorflow_available():
        from kerascnn.train.summaries import ImageSummaries

        tb = run_dir / rundir.TENSORBOARD_DIR
        callbacks.append(keras.callbacks.TensorBoard(tb, histogram_freq=1))
        if has_validation:
            callbacks.append(
                ImageSummaries(
                    tb / "images",
                    network,
                    data.dataset.normalized(data.x_val),
                    data.y_val,
                    data.x_val,
                    data.dataset.labels,
                )
            )
    elif config.tensorboard:
        print("TensorFlow is not installed here: no TensorBoard logs (the metrics still go to metrics.json).")
    return callbacks


def nan_message(nan_guard: NaNGuard, state: dict | None, run_dir: Path) -> str:
    where = nan_guard.triggered
    at = f"epoch {where['epoch'] + 1}" + (f", batch {where['batch'] + 1}" if where["batch"] is not None else "")
    if state and state.get("file"):
        kept = f"The last good checkpoint (epoch {state['epoch'] + 1}) is kept in {run_dir / rundir.CHECKPOINT_DIR}."
    else:
        kept = "No epoch finished with finite weights, so no checkpoint was saved."
    return (
        f"Training stopped: {where['what']} in {at}. {kept} Lower --lr (or raise --warmup-epochs) "
        "and start again with --overwrite (or a new --out)."
    )


def flip_tta_accuracy(model, batches) -> float:
    """Accuracy of horizontal-flip test-time augmentation: the class of p(x) + p(mirror(x)), the outputs of each
    image and its left-right mirror summed (the same class as their mean). `batches` yields (images, one-hot
    labels) as NumPy arrays."""
    correct = total = 0
    for images, targets in batches:
        images = np.asarray(images)
        outputs = keras.ops.convert_to_numpy(model.predict_on_batch(images))
        outputs = outputs + keras.ops.convert_to_numpy(model.predict_on_batch(images[:, :, ::-1]))
        correct += int((outputs.argmax(-1) == np.asarray(targets).argmax(-1)).sum())
        total += len(images)
    return correct / max(total, 1)


def _test_batches(data: Data, batch_size: int = 512):
    """The test split as (normalized images, one-hot labels) NumPy batches."""
    if data.stream is not None:
        yield from data.stream.batches("test", batch_size).as_numpy_iterator()
        return
    for start in range(0, len(data.y_test), batch_size):
        chosen = slice(start, start + batch_size)
        yield data.dataset.normalize(data.x_test[chosen]), _one_hot(data.y_test[chosen], data.num_classes)


def evaluate(
    config: TrainConfig,
    run_dir: Path,
    data: Data,
    network,
    scope,
    seconds: float,
    cluster: distribute.Cluster = SINGLE_PROCESS,
    epoch_seconds: list | None = None,
    keep_why: str | None = None,
) -> dict:
    """The metrics of the run (history from state.json; test accuracy of best.keras, the epoch chosen by
    validation accuracy or with --keep last the last one, and of the last network), written to metrics.json by the
    chief. `keep_why`: why the last epoch was kept without --keep (`small_data.keep_rule`), into the metrics.

    Across several processes every process evaluates its shard of the test split together, on the last
    network only (best.keras is on the chief's disk). `keep_why`: why the last epoch was kept without --keep
    (`small_data.keep_rule`), recorded in the metrics.
    """
    run = Run(run_dir)
    final_state = run.state() if cluster.is_chief else None
    metrics = {
        "model": config.model,
        "parameters": int(network.count_params()),
        "dataset": data.dataset.name,
        "epochs": final_state["epoch"] + 1 if final_state else 0,
        "best_epoch": final_state.get("best_epoch", -1) + 1 if final_state else 0,
        "best_val_accuracy": final_state.get("best_val_accuracy") if final_state else None,
        "kept": config.keep,  # "last": best_epoch is the last epoch, best_val_accuracy its validation accuracy
        "validation_images": data.count("validation") * data.num_shards,
        **({"keep_why": keep_why} if keep_why else {}),
        "train_seconds_this_session": round(seconds, 1),
        "epoch_seconds_this_session": epoch_seconds or [],
        "backend": keras.backend.backend(),
        "history": final_state["history"] if final_state else [],
        "input_path": data.input_path,
        "test_split": data.test_source,
        "test_images": data.count("test") * data.num_shards,
        "skipped_images": len(getattr(data.dataset, "skipped", [])),
        "processes": cluster.num_processes,
    }
    if data.count("test"):
        with scope():
            best_path = run.path(rundir.BEST_MODEL)  # the epoch --keep chose (`Run.model_file`), else the last one
            candidates = [("last", network)]
            if not cluster.multi_process:
                candidates.insert(0, ("best", load_model(best_path) if best_path.exists() else network))
            for name, model in candidates:
                model.compile(
                    loss=keras.losses.CategoricalCrossentropy(),
                    metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                )
                if data.stream is not None:
                    loss, accuracy = model.evaluate(
                        data.stream.batches("test", 512, num_shards=data.num_shards, shard_index=data.shard_index),
                        verbose=0,
                    )
                else:
                    loss, accuracy = model.evaluate(_in_order(data, "test", 512), verbose=0)
                metrics[f"test_accuracy_{name}"] = round(float(accuracy), 5)
                metrics[f"test_loss_{name}"] = round(float(loss), 5)
                if config.tta_flip and not cluster.multi_process:
                    metrics[f"test_accuracy_tta_{name}"] = round(flip_tta_accuracy(model, _test_batches(data)), 5)
        metrics["test_accuracy"] = metrics[f"test_accuracy_{candidates[0][0]}"]
        if f"test_accuracy_tta_{candidates[0][0]}" in metrics:
            metrics["test_accuracy_tta"] = metrics[f"test_accuracy_tta_{candidates[0][0]}"]
    if config.tta_flip and cluster.multi_process:
        print("--tta-flip: not evaluated across several processes (each holds a shard of the test split).")
    if cluster.is_chief:
        run.write_metrics(metrics)
    return metrics


def _fit_inputs(config: TrainConfig, data: Data, batch_size: int, steps_per_epoch: int, initial_epoch: int):
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
    validation = _in_order(data, "validation", batch_size) if len(data.y_val) else None
    arrays = data.held.get("train", data.x_train), data.y_train, data.num_classes, batch_size, config.seed
    normalization = (data.dataset.mean, data.dataset.std)
    if keras.backend.backend() == "tensorflow":
        batches = TFEpochBatches(*arrays, normalization=normalization)
        return batches.dataset, validation, None, [batches]
    if keras.backend.backend() == "jax":
        return DeviceEpochBatches(*arrays, initial_epoch, normalization), validation, None, []
    return EpochBatches(*arrays, initial_epoch, normalization), validation, None, []


def _in_order(data: Data, split: str, batch_size: int):
    """An in-memory split's (normalized images, one-hot labels) batches in order (`ordered_batches`), gathered from
    its TensorFlow variable where it has one."""
    images, labels = {"validation": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}[split]
    normalization = (data.dataset.mean, data.dataset.std)
    return ordered_batches(data.held.get(split, images), labels, data.num_classes, batch_size, normalization)


@contextlib.contextmanager
def keras_globals():
    """Restores Keras's dtype policy and distribution on exit: a run with --mixed-precision or --distribute
    must not change the next run in the same process (a notebook)."""
    policy, distribution = keras.mixed_precision.global_policy(), keras.distribution.distribution()
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)
        keras.distribution.set_distribution(distribution)


def train(config: TrainConfig) -> dict:
    """Trains `config.model` and writes the run directory. Returns the metrics written to metrics.json.

    Raises:
        TrainingError: the run cannot start or go on (the message says why and what to do).
        ValueError, FileNotFoundError, RuntimeError: bad data or model options (named in the message).
    """
    with keras_globals(), run_lock(config), deliberate_traces(), distribute.session():
        return _train(config)


def _not_a_retrace(record) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def deliberate_traces():
    """Silences TensorFlow's "N out of the last M calls ... triggered tf.function retracing" while a run trains.

    Keras traces a new `tf.function` for every compiled model: the train and validation steps of each fine-tuning
    phase (phase 2 recompiles, its trainable variables differ), the TensorBoard summaries' predictions, and the test
    steps of best.keras and of the last network. TensorFlow's detector keys them all on the code object Keras
    shares between them (`multi_step_on_iterator`), so a small run, with few steps between those compiles, reads
    as one function retraced in a loop (5 traces in 10 calls), where each trace is a new function's first call.
    """
    logger = logging.getLogger("tensorflow")
    logger.addFilter(_not_a_retrace)
    try:
        yield
    finally:
        logger.removeFilter(_not_a_retrace)


def run_lock(config: TrainConfig):
    """`rundir.locked(--out)` on the chief, taken before anything is written or checked in it: a second training
    into the same folder is refused at once, naming the first one's pid. The other processes of a run write no run
    directory; a --resume of a missing folder is left to `check_run_dir` to refuse."""
    cluster = distribute.cluster_from(config.coordinator, config.num_processes, config.process_id)
    if not cluster.is_chief or (config.resume and not config.run_dir.is_dir()):
        return contextlib.nullcontext()
    run = Run(config.run_dir)
    run.check_writable()
    return run.lock()


def _train(config: TrainConfig) -> dict:
    enable_compile_cache(config.compile_cache)  # before JAX compiles anything
    cluster = distribute.cluster_from(config.coordinator, config.num_processes, config.process_id)
    run_dir, state = check_run_dir(config, cluster)
    if cluster.multi_process:  # before anything runs on JAX; nothing is written before all processes agree
        distribute.initialize(cluster, cluster_settings(config, state), config.startup_timeout)
    if state is not None and (config.init_from or config.weights):
        source = finetune.resumed_source(run_dir)  # the weights are the checkpoint's: the source may be gone
    else:
        source = finetune.weight_source(config.init_from, config.weights, config.model)
    normalization = None if source is None else source.normalization
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    data = load_data(config, cluster, normalization)
    if config.batch_size % cluster.num_processes:
        raise TrainingError(
            f"--batch-size {config.batch_size} must be divisible by the {cluster.num_processes} "
            "processes (it is the global batch; each process feeds its share)."
        )
    batch_size = config.batch_size // cluster.num_processes  # this process's share of every batch
    if data.count("train") == 0:
        raise TrainingError(
            f"No training images for this process ({data.dataset.name}: "
            f"{data.count('train') * cluster.num_processes} for {cluster.num_processes} processes)."
        )
    steps_per_epoch = math.ceil(data.count("train") / batch_size)

    scope, replicas = _distribution_scope(config, cluster)
    if config.batch_size % replicas:
        raise TrainingError(f"--batch-size {config.batch_size} must be divisible by the {replicas} replicas.")
    with scope():
        if state is not None:
            phase = None if source is None else state["epoch"] < config.freeze_epochs
            train_model, network = resume_model(config, data, run_dir, state, steps_per_epoch, phase)
            initial_epoch = state["epoch"] + 1
            print(f"Resuming {run_dir} at epoch {initial_epoch + 1} (epochs 1-{initial_epoch} are done).")
        else:
            network = None
            if source is not None:
                network = finetune.build_network(config, source, data.dataset.input_shape, data.dataset.labels)
                print(f"Fine-tuning from {source.description}")
            phase = None if source is None else config.freeze_epochs > 0
            train_model, network = build_model(config, data, steps_per_epoch, network, phase)
            initial_epoch = 0
    if cluster.is_chief:  # only now: a run that fails its checks leaves nothing behind
        write_run_files(run_dir, config, data, source.description if normalization is not None else None)
    # no --keep: the last epoch when the validation split is too small to choose (config.yaml keeps None)
    keep, keep_why = small_data.keep_rule(
        config.keep, data.count("validation") * data.num_shards, config.early_stopping
    )
    config = dataclasses.replace(config, keep=keep)

    share = (
        f"; process {cluster.process_id} of {cluster.num_processes} reads 1/{cluster.num_processes} of each split"
        if cluster.multi_process
        else ""
    )
    counts = " / ".join(f"{data.count(s) * data.num_shards:,} {s}" for s in ("train", "validation", "test"))
    print(
        f"{config.model}: {network.count_params():,} parameters; {data.dataset.name}: {counts} images "
        f"(test: {data.test_source}); input: {data.input_path}; backend {keras.backend.backend()}, "
        f"jit_compile={train_model.jit_compile}; replicas: {replicas}{share}; run directory {run_dir}"
    )
    hint = small_data.finetune_hint(
        config.data_dir, data.count("train") * data.num_shards, data.num_classes, source is None
    )
    for line in (keep_why, hint):
        if line:
            print(line)

    nan_guard = NaNGuard()
    # processes other than the chief save their (identical) checkpoints into a scratch folder, then delete it
    write_dir = run_dir if cluster.is_chief else Path(tempfile.mkdtemp(prefix=f"kerascnn-process{cluster.process_id}-"))
    clock = EpochClock()
    try:
        # too few steps for the moving statistics: the evaluated and saved model gets recomputed ones
        recompute = not cluster.multi_process and small_data.unconverged(network, config.epochs * steps_per_epoch)
        bn_images = batch_norm_images(config, data, cluster, recompute)
        if recompute:
            print(small_data.recompute_message(network, config.epochs * steps_per_epoch, len(bn_images)))
        callbacks = [*make_callbacks(config, write_dir, data, network, state, nan_guard, cluster, bn_images), clock]
        started = time.perf_counter()
        verbose = "auto" if sys.stdout.isatty() else 2
        # a file that passes the header check but fails to decode when streamed is named (DecodeError)
        naming_bad_files = data.stream.naming_bad_files if data.stream is not None else contextlib.nullcontext
        # one fit, or one per fine-tuning phase still to run: head only, then all layers with a fresh optimizer
        stages = [(initial_epoch, config.epochs, None)] if source is None else finetune.phases(config, initial_epoch)
        for start, end, head_only in stages:
            if nan_guard.triggered:
                break
            if head_only is not None and head_only != phase:
                with scope():
                    compile_phase(train_model, network, config, steps_per_epoch, head_only)
                phase = head_only
            batches, validation, steps, ordering = _fit_inputs(config, data, batch_size, steps_per_epoch, start)
            with naming_bad_files():
                train_model.fit(
                    batches,
                    epochs=end,
                    initial_epoch=start,
                    steps_per_epoch=steps,
                    validation_data=validation,
                    callbacks=[*ordering, *callbacks],
                    shuffle=False,
                    verbose=verbose,
                )
        seconds = time.perf_counter() - started

        if nan_guard.triggered:
            raise TrainingError(nan_message(nan_guard, Run(run_dir).state(), run_dir))
        if bn_images is not None:  # fit left the averages (--ema) or the moving statistics: give them their own
            update_batch_norms(train_model, bn_images, config.batch_size)
        atomic_save_model(network, write_dir / rundir.LAST_MODEL)  # every process: saving is collective
        with naming_bad_files():
            return evaluate(config, run_dir, data, network, scope, seconds, cluster, clock.seconds, keep_why)
    finally:
        if not cluster.is_chief:
            shutil.rmtree(write_dir, ignore_errors=True)
