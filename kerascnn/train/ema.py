"""The exponential moving average of the weights (Keras's optimizer `use_ema=True`) as the model the run
evaluates and saves, while training itself goes on from the raw weights.

Keras keeps, per trainable variable w, an average a <- m a + (1 - m) w after every step (m = `ema_momentum`; the
first step copies w) inside the optimizer, and at the end of `fit` overwrites the model's weights with it
(`optimizer.finalize_variable_values`). Between epochs the model holds the raw weights; `averaged_weights`
swaps the averages in for a moment (validation, best.keras) and puts the raw ones back exactly, so checkpoints
(raw weights plus the optimizer's averages) resume to the same run.
"""

from __future__ import annotations

import contextlib

import keras


def uses_ema(model: keras.Model) -> bool:
    """True when `model` is compiled with an optimizer that keeps a moving average of the weights."""
    return bool(getattr(getattr(model, "optimizer", None), "use_ema", False))


@contextlib.contextmanager
def averaged_weights(model: keras.Model):
    """Inside the block `model`'s trainable weights are the optimizer's moving averages; on exit the raw weights
    are back, bit for bit. Does nothing for a model without EMA."""
    if not uses_ema(model):
        yield
        return
    variables = model.trainable_weights
    raw = [keras.ops.convert_to_numpy(v) for v in variables]
    model.optimizer.finalize_variable_values(variables)
    try:
        yield
    finally:
        for variable, value in zip(variables, raw):
            variable.assign(value)


class AveragedValidation(keras.callbacks.Callback):
    """Validates the moving average during `fit` (val_loss, val_accuracy, so the best epoch and early stopping
    follow the model that is saved), training on with the raw weights after each validation."""

    def __init__(self):
        super().__init__()
        self._block = None
        self._fitting = False

    def on_train_begin(self, logs=None):
        self._fitting = True

    def on_train_end(self, logs=None):
        self._fitting = False

    def on_test_begin(self, logs=None):
        if self._fitting and uses_ema(self.model):
            self._block = averaged_weights(self.model)
            self._block.__enter__()

    def on_test_end(self, logs=None):
        if self._block is not None:
            block, self._block = self._block, None
            block.__exit__(None, None, None)
