"""One training run: data, model, optimizer, callbacks, model.fit, and the run directory's files."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from kerascnn import models
from kerascnn.data import RandomCropFlip, load_dataset
from kerascnn.train.checkpoint import (
    LearningRateLogger,
    NaNGuard,
    ResumableCheckpoint,
    atomic_save_model,
    atomic_write,
)
from kerascnn.train.config import TrainConfig, to_yaml

# horizontal flips change what digits and letters mean
NO_FLIP_DATASETS = {"mnist", "emnist", "kmnist", "svhn_cropped"}
# changing these between a run and its --resume would make the checkpoint meaningless
RESUME_MAY_CHANGE = {"epochs", "early_stopping", "tensorboard", "out", "preset", "resume"}


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says why and what to do."""


def resolve_jit_compile(setting: str) -> bool:
    """"auto": XLA except for TensorFlow on a CPU, where it was measured 5-7x slower (bench/train.py)."""
    if setting != "auto":
        return setting == "on"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return keras.backend.backend() == "jax"


def tensorflow_available() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def _distribution_scope(config: TrainConfig):
    """(a function giving the context to build, compile and evaluate in, number of replicas):
    MirroredStrategy over the local devices on TensorFlow, keras.distribution.DataParallel on JAX."""
    import contextlib

    if not config.distribute:
        return contextlib.nullcontext, 1
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        return strategy.scope, strategy.num_replicas_in_sync
    if backend == "jax":
        distribution = keras.distribution.DataParallel()
        keras.distribution.set_distribution(distribution)
        return contextlib.nullcontext, len(distribution.device_mesh.devices.flatten())
    raise TrainingError(f"--distribute supports the tensorflow and jax backends, not {backend}.")


def _optimizer(config: TrainConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(total - warmup, 1), warmup_target=config.lr, warmup_steps=warmup
    )
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def _check_resume(run_dir: Path, config: TrainConfig) -> None:
    import yaml

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    current = yaml.safe_load(to_yaml(config))
    changed = sorted(k for k in current if k not in RESUME_MAY_CHANGE and saved.get(k) != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise TrainingError(f"--resume must use the run's own settings; these differ from {run_dir / 'config.yaml'}: "
                            f"{details}. Resume with the original command, or use a new --out.")


def train(config: TrainConfig) -> dict:
    """Trains `config.model` and writes the run directory. Returns the metrics written to metrics.json."""
    run_dir = Path(config.out or f"runs/{config.preset or config.model}")
    state = ResumableCheckpoint.load_state(run_dir) if config.resume else None
    if not config.resume and (run_dir / "checkpoint" / "state.json").exists():
        raise TrainingError(f"{run_dir} already holds a run. Continue it with --resume, or choose a new --out.")
    if state is not None:
        _check_resume(run_dir, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "config.yaml", to_yaml(config))

    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    dataset = load_dataset(config.dataset, config.data_dir, config.validation_fraction, config.seed)
    (x_train, y_train), (x_val_raw, y_val), (x_test_raw, y_test) = (
        (images[: config.limit], labels[: config.limit]) for images, labels in
        (dataset.splits[split] for split in ("train", "validation", "test"))
    )
    num_classes = len(dataset.labels)
    x_train, x_val, x_test = (dataset.normalize(x) for x in (x_train, x_val_raw, x_test_raw))
    atomic_write(run_dir / "dataset.json", json.dumps(dataset.metadata(), indent=1))
    atomic_write(run_dir / "labels.txt", "\n".join(dataset.labels) + "\n")
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)

    scope, replicas = _distribution_scope(config)
    if config.batch_size % replicas:
        raise TrainingError(f"--batch-size {config.batch_size} must be divisible by the {replicas} replicas.")
    with scope():
        if state is not None:
            train_model = keras.saving.load_model(run_dir / "checkpoint" / state["file"])
            network = train_model.get_layer(config.model) if len(train_model.layers) > 2 else train_model
            initial_epoch = state["epoch"] + 1
            print(f"Resuming {run_dir} at epoch {initial_epoch + 1} (epochs 1-{initial_epoch} are done).")
        else:
            network = models.create(config.model, dataset.input_shape, num_classes, **config.model_options)
            flip = config.augment_flip if config.augment_flip is not None else config.dataset not in NO_FLIP_DATASETS
            if config.augment_padding or flip:
                inputs = keras.Input(dataset.input_shape)
                augmented = RandomCropFlip(config.augment_padding, flip, seed=config.seed, name="augment")(inputs)
                train_model = keras.Model(inputs, network(augmented), name="train")
            else:
                train_model = network
            train_model.compile(
                optimizer=_optimizer(config, steps_per_epoch),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            )
            initial_epoch = 0
        train_model.jit_compile = resolve_jit_compile(config.jit_compile)

    print(f"{config.model}: {network.count_params():,} parameters; {dataset.name}: {len(x_train):,} train / "
          f"{len(x_val):,} validation / {len(x_test):,} test images; backend {keras.backend.backend()}, "
          f"jit_compile={train_model.jit_compile}; replicas: {replicas}; run directory {run_dir}")

    nan_guard = NaNGuard()
    callbacks = [nan_guard, LearningRateLogger(), ResumableCheckpoint(run_dir, network, nan_guard, state)]
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=config.early_stopping))
    if config.tensorboard and tensorflow_available():
        from kerascnn.train.summaries import ImageSummaries

        callbacks.append(keras.callbacks.TensorBoard(run_dir / "tb", histogram_freq=1))
        callbacks.append(ImageSummaries(run_dir / "tb" / "images", network, x_val, y_val, x_val_raw, dataset.labels))
    elif config.tensorboard:
        print("TensorFlow is not installed here: no TensorBoard logs (the metrics still go to metrics.json).")

    started = time.perf_counter()
    if initial_epoch < config.epochs:
        train_model.fit(
            x_train, _one_hot(y_train, num_classes), batch_size=config.batch_size, epochs=config.epochs,
            initial_epoch=initial_epoch, validation_data=(x_val, _one_hot(y_val, num_classes)),
            callbacks=callbacks, verbose=2 if config.limit else "auto",
        )
    seconds = time.perf_counter() - started

    if nan_guard.triggered:
        where = nan_guard.triggered
        raise TrainingError(
            f"The loss became {where['loss']} in epoch {where['epoch'] + 1}, batch {where['batch'] + 1}; training "
            f"stopped. The last good checkpoint (epoch {where['epoch']}) is kept in {run_dir / 'checkpoint'}. "
            "Lower --lr (or raise --warmup-epochs) and start a new run."
        )

    atomic_save_model(network, run_dir / "last.keras")
    final_state = ResumableCheckpoint.load_state(run_dir)
    metrics = {
        "model": config.model,
        "parameters": int(network.count_params()),
        "dataset": dataset.name,
        "epochs": final_state["epoch"] + 1 if final_state else 0,
        "best_epoch": final_state.get("best_epoch", -1) + 1 if final_state else 0,
        "best_val_accuracy": final_state.get("best_val_accuracy") if final_state else None,
        "train_seconds_this_session": round(seconds, 1),
        "backend": keras.backend.backend(),
        "history": final_state["history"] if final_state else [],
    }
    if len(x_test):
        test_onehot = _one_hot(y_test, num_classes)
        with scope():
            best_path = run_dir / "best.keras"
            best = keras.saving.load_model(best_path) if best_path.exists() else network
            for name, model in (("best", best), ("last", network)):
                model.compile(loss=keras.losses.CategoricalCrossentropy(),
                              metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
                loss, accuracy = model.evaluate(x_test, test_onehot, batch_size=512, verbose=0)
                metrics[f"test_accuracy_{name}"] = round(float(accuracy), 5)
                metrics[f"test_loss_{name}"] = round(float(loss), 5)
        metrics["test_accuracy"] = metrics["test_accuracy_best"]
    atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=1))
    return metrics
