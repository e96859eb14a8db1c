"""The run's callbacks (`make_callbacks`: NaN guard, epoch seeds, averaged validation, early stopping, checkpoints,
TensorBoard) and the message of a run a NaN stopped (`nan_message`). Rule: every process checkpoints (saving is
collective), only the chief writes TensorBoard logs."""

from __future__ import annotations

import functools
from pathlib import Path

import keras

from kerascnn import rundir
from kerascnn.train import distribute
from kerascnn.train.batches import EpochSeeds
from kerascnn.train.checkpoint import LearningRateLogger, NaNGuard, ResumableCheckpoint
from kerascnn.train.config import TrainConfig
from kerascnn.train.ema import AveragedValidation, averaged_weights
from kerascnn.train.feeding import SINGLE_PROCESS, Data


def tensorflow_available() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


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
