"""Training batches whose order and augmentation depend only on (seed, epoch), so that a run resumed from
its epoch-k checkpoint sees exactly the batches and random crops the uninterrupted run would have seen."""

from __future__ import annotations

import keras
import numpy as np


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 31-bit seed for `stream` in `epoch`, a pure function of its arguments (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0] >> 1)


class EpochBatches(keras.utils.PyDataset):
    """`(images[i], one_hot(labels[i]))` batches of a fresh permutation per epoch.

    Epoch e visits the images in the order `default_rng(epoch_seed(seed, e)).permutation(N)`; the last
    batch may be smaller. Keras calls `on_epoch_end` after each epoch, which moves on to the next order.

    Args:
        images: (N, H, W, C) float32, normalized.
        labels: (N,) int class indices.
        num_classes: width of the one-hot targets.
        batch_size: images per batch.
        seed: the run's seed.
        epoch: the epoch the first pass belongs to (the initial epoch of a resumed run).
    """

    def __init__(self, images, labels, num_classes: int, batch_size: int, seed: int, epoch: int = 0):
        super().__init__()
        self.images, self.labels = images, np.asarray(labels)
        self.one_hot = np.eye(num_classes, dtype=np.float32)
        self.batch_size, self.seed = batch_size, seed
        self.epoch = epoch
        self._order_epoch, self._order = None, None

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def order(self) -> np.ndarray:
        if self._order_epoch != self.epoch:
            rng = np.random.default_rng(epoch_seed(self.seed, self.epoch))
            self._order, self._order_epoch = rng.permutation(len(self.labels)), self.epoch
        return self._order

    def __getitem__(self, index: int):
        chosen = self.order()[index * self.batch_size : (index + 1) * self.batch_size]
        return self.images[chosen], self.one_hot[self.labels[chosen]]

    def on_epoch_end(self):
        self.epoch += 1


class EpochSeeds(keras.callbacks.Callback):
    """At the start of epoch e, sets every random-seed state in the model (augmentation, dropout) to
    `[epoch_seed(seed, e, i), 0]`, i numbering the states in `model.variables` order: a run resumed at
    epoch e draws the same crops, flips and dropout masks as the uninterrupted run (seed states are not
    saved in .keras files)."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        states = [v for v in self.model.variables if v.name == "seed_generator_state"]
        for stream, state in enumerate(states, start=1):
            state.assign(np.array([epoch_seed(self.seed, epoch, stream), 0]).astype(state.dtype))
