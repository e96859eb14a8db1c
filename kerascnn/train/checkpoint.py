"""Atomic, resumable checkpoints: a run killed at any moment resumes from its last completed epoch."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import keras

from kerascnn.rundir import atomic_write


def atomic_save_model(model: keras.Model, path: Path) -> None:
    """model.save to a temporary .keras file beside `path`, then rename: never a half-written file."""
    tmp = path.with_name(f".partial-{path.name}")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class ResumableCheckpoint(keras.callbacks.Callback):
    """After every epoch: saves the training model with its optimizer state as
    `checkpoint/epoch-NNNN.keras`, then `checkpoint/state.json` (last epoch, best validation accuracy,
    history), then deletes the previous epoch's file. Saves `best.keras` (the network alone) when the
    validation accuracy improves. State is written last, so it always names a complete file.
    """

    def __init__(self, run_dir: Path, network: keras.Model, nan_guard: NaNGuard, state: dict | None = None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.directory = self.run_dir / "checkpoint"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.network = network
        self.nan_guard = nan_guard
        self.state = state or {"epoch": -1, "best_val_accuracy": None, "history": []}

    @staticmethod
    def load_state(run_dir: Path) -> dict | None:
        path = Path(run_dir) / "checkpoint" / "state.json"
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        if not (Path(run_dir) / "checkpoint" / state["file"]).exists():
            raise FileNotFoundError(f"{path} names {state['file']}, which is missing: the checkpoint is incomplete.")
        return state

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_guard.triggered:
            return  # the weights are not finite any more: keep the last good checkpoint
        logs = {k: float(v) for k, v in (logs or {}).items()}
        val_accuracy = logs.get("val_accuracy")
        if val_accuracy is not None and (self.state["best_val_accuracy"] is None
                                         or val_accuracy > self.state["best_val_accuracy"]):
            atomic_save_model(self.network, self.run_dir / "best.keras")
            self.state["best_val_accuracy"] = val_accuracy
            self.state["best_epoch"] = epoch
        name = f"epoch-{epoch:04d}.keras"
        atomic_save_model(self.model, self.directory / name)
        previous = self.state.get("file")
        self.state.update(epoch=epoch, file=name, history=[*self.state["history"], {"epoch": epoch, **logs}])
        atomic_write(self.directory / "state.json", json.dumps(self.state, indent=1))
        if previous and previous != name:
            (self.directory / previous).unlink(missing_ok=True)


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is not finite and remembers where."""

    def __init__(self):
        super().__init__()
        self.triggered = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.triggered = {"epoch": self._epoch, "batch": batch, "loss": float(loss)}
            self.model.stop_training = True


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs (TensorBoard plots it)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            optimizer = self.model.optimizer
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
