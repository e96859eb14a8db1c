"""Atomic, resumable checkpoints: a run killed at any moment resumes from its last completed epoch."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from kerascnn import rundir
from kerascnn.rundir import CheckpointError, Run, atomic_write, checkpoint_path  # noqa: F401  (named here as before)
from kerascnn.train.ema import averaged_weights


def atomic_save_model(model: keras.Model, path: Path) -> None:
    """model.save to a temporary .keras file beside `path`, then rename: never a half-written file."""
    tmp = path.with_name(f".partial-{path.name}")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def all_finite(model: keras.Model) -> bool:
    """True when every variable of `model` (weights, batch-norm statistics; optimizer state excluded) is finite."""
    return all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in model.weights if "float" in str(v.dtype))


class ResumableCheckpoint(keras.callbacks.Callback):
    """After every `every`-th epoch, the last one and the one early stopping ends on: saves the training model
    with its optimizer state as `checkpoint/epoch-NNNN.keras`, then `checkpoint/state.json` (last saved epoch,
    best validation accuracy, the history of every epoch so far, the network's layer name), then deletes every
    other `epoch-*.keras` (the previous one, and any a kill between those two steps left behind). A kill loses
    at most `every` epochs. After every epoch whose validation accuracy improves (every epoch when there are no
    validation images, or with `keep_last`: the run keeps its last epoch) saves `best.keras`: the network alone,
    with the moving average of its weights when the optimizer keeps one (`averaged`:
    `kerascnn.train.ema.averaged_weights`, or the same with batch-norm images bound). State is written last, so
    it always names a complete file. An epoch whose weights or losses are not all finite is never saved: the NaN
    guard is triggered and training stops, leaving the last good checkpoint in place.
    """

    def __init__(
        self,
        run_dir: Path,
        network: keras.Model,
        nan_guard: NaNGuard,
        state: dict | None = None,
        every: int = 1,
        averaged=averaged_weights,
        keep_last: bool = False,
    ):
        super().__init__()
        self.every, self.averaged, self.keep_last = every, averaged, keep_last
        self.run = Run(run_dir)
        self.run_dir = self.run.folder
        self.directory = self.run.path(rundir.CHECKPOINT_DIR)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.network = network
        self.nan_guard = nan_guard
        self.state = state or {"epoch": -1, "best_val_accuracy": None, "history": []}
        self.state["network"] = network.name

    @staticmethod
    def load_state(run_dir: Path) -> dict | None:
        """The run's state.json, checked (`Run.state`); None when the run has none."""
        return Run(run_dir).state()

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_guard.triggered:
            return  # the weights are not finite any more: keep the last good checkpoint
        logs = {k: float(v) for k, v in (logs or {}).items()}
        bad = [k for k in ("loss", "val_loss") if k in logs and not math.isfinite(logs[k])]
        if bad or not all_finite(self.model):
            what = f"{bad[0]} became {logs[bad[0]]}" if bad else "weights became non-finite"
            self.nan_guard.stop(self.model, epoch, None, what)
            return
        val_accuracy = logs.get("val_accuracy")  # None without validation images: the latest epoch is the best
        if (
            self.keep_last
            or val_accuracy is None
            or self.state["best_val_accuracy"] is None
            or val_accuracy > self.state["best_val_accuracy"]
        ):
            with self.averaged(self.model):
                atomic_save_model(self.network, self.run_dir / rundir.BEST_MODEL)
            self.state["best_val_accuracy"] = val_accuracy
            self.state["best_epoch"] = epoch
        self.state["history"] = [*self.state["history"], {"epoch": epoch, **logs}]
        last = epoch + 1 >= (self.params or {}).get("epochs", epoch + 1) or self.model.stop_training
        if (epoch + 1) % self.every and not last:
            return
        name = f"epoch-{epoch:04d}.keras"
        atomic_save_model(self.model, self.directory / name)
        self.state.update(epoch=epoch, file=name)
        self.run.write_state(self.state)
        for stale in self.directory.glob("epoch-*.keras"):  # also one left by a kill before this point last time
            if stale.name != name:
                stale.unlink(missing_ok=True)


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is not finite (or when the checkpoint finds non-finite
    weights at an epoch's end) and remembers where: `triggered` is {"epoch", "batch", "what"}."""

    def __init__(self):
        super().__init__()
        self.triggered = None
        self._epoch = 0

    def stop(self, model, epoch: int, batch: int | None, what: str) -> None:
        self.triggered = {"epoch": epoch, "batch": batch, "what": what}
        model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.stop(self.model, self._epoch, batch, f"the loss became {float(loss)}")


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs (TensorBoard plots it)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            optimizer = self.model.optimizer
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class EpochClock(keras.callbacks.Callback):
    """`seconds`: the wall time of each epoch of this session, from its start to this callback's turn at its end
    (training, validation and the callbacks listed before this one, the checkpoint included). The first epoch
    includes compiling the train and test steps."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self._start, 3))
