"""The exponential moving average of the weights (Keras's optimizer `use_ema=True`) as the model the run
evaluates and saves, while training itself goes on from the raw weights.

Keras keeps, per trainable variable w, an average a <- m a + (1 - m) w after every step (m = `ema_momentum`; the
first step copies w) inside the optimizer, and at the end of `fit` overwrites the model's weights with it
(`optimizer.finalize_variable_values`). Between epochs the model holds the raw weights; `averaged_weights`
swaps the averages in for a moment (validation, best.keras) and puts the raw ones back exactly, so checkpoints
(raw weights plus the optimizer's averages) resume to the same run.

Batch norm's moving mean and variance are not trainable, so Keras does not average them: they stay the raw
weights' statistics, which the averaged weights do not produce (on the quick preset, EMA 0.999: 9.6 % validation
accuracy after the first epoch, 92.76 % test at the end, 93.33 % with statistics of their own). `update_batch_norms`
gives the averaged weights their own statistics from a sample of training images, as PyTorch's
`torch.optim.swa_utils.update_bn` does for averaged weights.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

# training images whose batch statistics become the averaged weights' batch-norm statistics
BATCH_NORM_IMAGES = 2048


def uses_ema(model: keras.Model) -> bool:
    """True when `model` is compiled with an optimizer that keeps a moving average of the weights."""
    return bool(getattr(getattr(model, "optimizer", None), "use_ema", False))


def update_batch_norms(network: keras.Model, images: np.ndarray, batch_size: int) -> None:
    """Sets the moving mean and variance of every trainable BatchNormalization layer in `network` to the average of
    its batch statistics over `images`, `batch_size` at a time, each batch weighted by its images: a batch of n
    after s images runs in training mode with momentum s / (s + n), so moving = sum(n_k * stat_k) / sum(n_k), a
    cumulative average (PyTorch's `update_bn` weights batches equally). The forward passes are the training ones
    (augmentation and dropout included), as the raw statistics were gathered; frozen batch norms (trainable=False)
    run in inference mode and keep theirs. Seed states advance on the way: callers that need them restore the
    variables (`averaged_weights` does)."""
    norms = [layer for layer in network._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [norm.momentum for norm in norms]
    try:
        for seen in range(0, len(images), batch_size):
            batch = images[seen : seen + batch_size]
            for norm in norms:
                norm.momentum = seen / (seen + len(batch))
            network(batch, training=True)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum


@contextlib.contextmanager
def averaged_weights(model: keras.Model, batch_norm_images: np.ndarray | None = None, batch_size: int = 128):
    """Inside the block `model`'s trainable weights are the optimizer's moving averages (when it keeps them), with
    batch-norm statistics of their own from `batch_norm_images` (`update_batch_norms`; None: the raw weights'
    statistics); on exit every variable of `model` is back, bit for bit. Without EMA and without images it does
    nothing; without EMA but with images the raw weights get recomputed statistics (a run too short for the moving
    statistics to converge: `kerascnn.train.small_data`)."""
    ema = uses_ema(model)
    if not ema and batch_norm_images is None:
        yield
        return
    variables = [*model.trainable_variables, *model.non_trainable_variables]
    raw = [keras.ops.convert_to_numpy(v) for v in variables]
    if ema:
        model.optimizer.finalize_variable_values(model.trainable_variables)
        for variable in model.trainable_variables:  # copies: on JAX a compiled call donated (deleted) the buffers
            variable.assign(keras.ops.convert_to_numpy(variable))
    if batch_norm_images is not None:
        update_batch_norms(model, batch_norm_images, batch_size)
    try:
        yield
    finally:
        for variable, value in zip(variables, raw):
            variable.assign(value)


class AveragedValidation(keras.callbacks.Callback):
    """Validates the moving average and/or recomputed batch-norm statistics during `fit` (val_loss, val_accuracy, so
    the best epoch and early stopping follow the model that is saved), training on with the raw weights after each
    validation. `averaged`: `averaged_weights`, or the same with batch-norm images bound (the trainer's, shared
    with its checkpoint)."""

    def __init__(self, averaged=averaged_weights):
        super().__init__()
        self.averaged = averaged
        self._block = None
        self._fitting = False

    def on_train_begin(self, logs=None):
        self._fitting = True

    def on_train_end(self, logs=None):
        self._fitting = False

    def on_test_begin(self, logs=None):
        if self._fitting:  # `averaged` does nothing without EMA and without batch-norm images
            self._block = self.averaged(self.model)
            self._block.__enter__()

    def on_test_end(self, logs=None):
        if self._block is not None:
            block, self._block = self._block, None
            block.__exit__(None, None, None)
