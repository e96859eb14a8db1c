"""The model and its optimizer: the distribution scope they are built in (`distribution_scope`), the training model
around the network (`build_model`: input normalization when streamed, augmentation), the optimizer and its
learning-rate schedule (`compile_phase`, per fine-tuning phase), and a resumed run's checkpoint (`resume_model`).
Rule: the model, the optimizer's settings and the schedule always come from the config, never from a checkpoint."""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras

from kerascnn import models
from kerascnn.data import RandomCropFlip, RandomErasing
from kerascnn.rundir import Run
from kerascnn.train import distribute, finetune, schedules
from kerascnn.train.checkpoint import CheckpointError
from kerascnn.train.config import TrainConfig
from kerascnn.train.feeding import SINGLE_PROCESS, Data

# horizontal flips change what digits and letters mean
NO_FLIP_DATASETS = {"mnist", "emnist", "kmnist", "svhn_cropped"}

# --jit-compile as Model.compile's jit_compile. "auto" is Keras's own rule: XLA where the model supports it, except on
# PyTorch, under tf.distribute, and for TensorFlow on a CPU-only machine (where it was about 40x slower per step,
# `bench/layers.py` on the shared 2-core CPU, a factor that depends heavily on the load: README, Benchmarks)
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says why and what to do."""


def distribution_scope(config: TrainConfig, cluster: distribute.Cluster = SINGLE_PROCESS):
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
