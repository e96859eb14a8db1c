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

    With `normalization` (mean, std), `images` are the uint8 pixels, held once, and each batch is normalized as it
    is gathered: (x - mean) / std in float32. A float32 copy of the whole split would take 4 times the pixels'
    bytes, and its normalization twice that again while it is computed.

    Args:
        images: (N, H, W, C) uint8 pixels with `normalization`, else float32 already normalized.
        labels: (N,) int class indices.
        num_classes: width of the one-hot targets.
        batch_size: images per batch.
        seed: the run's seed.
        epoch: the epoch the first pass belongs to (the initial epoch of a resumed run).
        normalization: per-channel (mean, std) in pixel units, or None.
    """

    def __init__(
        self, images, labels, num_classes: int, batch_size: int, seed: int, epoch: int = 0, normalization=None
    ):
        super().__init__()
        self.images, self.labels = images, np.asarray(labels)
        self.mean, self.std = _mean_std(normalization)
        self.one_hot = np.eye(num_classes, dtype=np.float32)
        self.batch_size, self.seed = batch_size, seed
        self.epoch = epoch
        self._order_epoch, self._order = None, None

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def order(self) -> np.ndarray:
        if self._order_epoch != self.epoch:
            self._order, self._order_epoch = epoch_order(len(self.labels), self.seed, self.epoch), self.epoch
        return self._order

    def batch_indices(self, index: int) -> np.ndarray:
        """The images of batch `index` of the current epoch: its slice of the epoch's order."""
        return self.order()[index * self.batch_size : (index + 1) * self.batch_size]

    def __getitem__(self, index: int):
        chosen = self.batch_indices(index)
        images = self.images[chosen]
        if self.mean is not None:
            images = (images.astype(np.float32) - self.mean) / self.std
        return images, self.one_hot[self.labels[chosen]]

    def on_epoch_end(self):
        self.epoch += 1


class DeviceEpochBatches(EpochBatches):
    """The batches of `EpochBatches` for the JAX backend's in-memory input, gathered on the device: the images and
    one-hot targets are uploaded once (`jax.device_put`, to the default device, a GPU where there is one), and each
    batch is a `jnp.take` of the epoch's indices, so only the indices cross from the host per batch (and uint8
    pixels are normalized there, on the device). Keras passes JAX arrays from a PyDataset through to the compiled
    step as they are."""

    def __init__(
        self, images, labels, num_classes: int, batch_size: int, seed: int, epoch: int = 0, normalization=None
    ):
        import jax

        super().__init__(images, labels, num_classes, batch_size, seed, epoch, normalization)
        self.images, self.targets = jax.device_put(images), jax.device_put(self.one_hot[self.labels])

    def __getitem__(self, index: int):
        import jax.numpy as jnp

        chosen = self.batch_indices(index)
        images = jnp.take(self.images, chosen, axis=0)
        if self.mean is not None:
            images = (images.astype(jnp.float32) - self.mean) / self.std
        return images, jnp.take(self.targets, chosen, axis=0)


def _mean_std(normalization) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(mean, std) as float32 arrays, or (None, None) without `normalization`."""
    if normalization is None:
        return None, None
    mean, std = normalization
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """The order epoch `epoch` visits `count` images in: `default_rng(epoch_seed(seed, epoch)).permutation(count)`."""
    return np.random.default_rng(epoch_seed(seed, epoch)).permutation(count)


class OrderedBatches(EpochBatches):
    """`EpochBatches` in the split's own order, every epoch: validation and test batches, normalized as they are
    gathered from the uint8 pixels (the JAX and PyTorch backends' in-memory evaluation input)."""

    def __init__(self, images, labels, num_classes: int, batch_size: int, normalization=None):
        super().__init__(images, labels, num_classes, batch_size, seed=0, normalization=normalization)

    def order(self) -> np.ndarray:
        return np.arange(len(self.labels))


def held_by_tensorflow(images: np.ndarray, name: str):
    """(a CPU `tf.Variable` holding `images`, a read-only NumPy view of the variable's buffer).

    Reading the variable gives its own buffer, which the view shares (nothing assigns to the variable afterwards).
    Keep the view in place of `images`: the pixels are then held once, by TensorFlow, where the tf.data inputs
    gather their batches (`TFEpochBatches`, `ordered_batches`), and NumPy readers see the same bytes. While the
    variable is made, TensorFlow's conversion briefly holds one more copy.
    """
    import tensorflow as tf

    with tf.device("/cpu:0"):
        variable = tf.Variable(images, trainable=False, name=name)
    return variable, np.asarray(variable.value())


def _tf_gather(pixels, labels, num_classes: int, normalization):
    """index -> (pixels[index], normalized as in `EpochBatches` with `normalization`; one-hot labels[index])."""
    import tensorflow as tf

    mean, std = _mean_std(normalization)
    with tf.device("/cpu:0"):
        targets = tf.constant(np.eye(num_classes, dtype=np.float32)[np.asarray(labels)])

    def gather(index):
        # a read, then a gather of the tensor read: a gather on the variable itself (ResourceGather) would switch it
        # to copy-on-read and copy its buffer, which `held_by_tensorflow`'s view shares
        batch = tf.gather(pixels.value(), index)
        if mean is not None:
            batch = (tf.cast(batch, tf.float32) - mean) / std
        return batch, tf.gather(targets, index)

    return gather


def ordered_batches(images, labels, num_classes: int, batch_size: int, normalization=None):
    """A split's (normalized images, one-hot labels) batches in order, for `fit(validation_data=...)` and
    `evaluate`: each batch is gathered from the uint8 pixels and normalized then, so no float32 copy of the split
    is made. From a `tf.Variable` (`held_by_tensorflow`), a tf.data pipeline of gathers; from a NumPy array,
    `OrderedBatches` (a PyDataset).
    """
    if isinstance(images, np.ndarray):
        return OrderedBatches(images, labels, num_classes, batch_size, normalization)
    import tensorflow as tf

    gather = _tf_gather(images, labels, num_classes, normalization)
    batches = tf.data.Dataset.range(len(labels)).batch(batch_size).map(gather)
    steps = -(-len(labels) // batch_size)
    return batches.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)


class TFEpochBatches(keras.callbacks.Callback):
    """The batches of `EpochBatches` as a tf.data pipeline, `self.dataset`, for the TensorFlow backend's in-memory
    input; this callback (passed to the same `fit`) gives each epoch its order.

    Keras feeds a PyDataset to TensorFlow through `tf.data.Dataset.from_generator`, one Python call per batch under
    the GIL; on this project's 2-core CPU that doubled the train step of a small VGG (80 -> 160 ms at batch 64).
    Here the images live in a `tf.Variable` (a dataset function captures it by reference: no 2 GB graph-constant
    limit), `on_epoch_begin` writes the epoch's order into another, and each batch is a gather of its indices: no
    Python runs per batch. Keras makes a new iterator every epoch (no `steps_per_epoch`), so an epoch ends with its
    own last batch, `steps_per_execution` included. With `normalization`, the variable holds the uint8 pixels and
    each gathered batch is normalized, as in `EpochBatches`. `images` may be that variable already
    (`held_by_tensorflow`): the pixels are then not copied.
    """

    def __init__(self, images, labels, num_classes: int, batch_size: int, seed: int, normalization=None):
        super().__init__()
        import tensorflow as tf

        self.seed, self.count = seed, len(labels)
        with tf.device("/cpu:0"):
            if not isinstance(images, tf.Variable):
                images = tf.Variable(images, trainable=False, name="train_images")
            self.pixels = images
            self.order = tf.Variable(np.arange(self.count, dtype=np.int32), trainable=False, name="epoch_order")
        gather = _tf_gather(self.pixels, labels, num_classes, normalization)
        # the order is read when an epoch's iterator starts, after on_epoch_begin has written it
        indices = tf.data.Dataset.range(1).flat_map(lambda _: tf.data.Dataset.from_tensor_slices(self.order.value()))
        batches = indices.batch(batch_size).map(gather)
        steps = -(-self.count // batch_size)
        self.dataset = batches.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)

    def on_epoch_begin(self, epoch, logs=None):
        self.order.assign(epoch_order(self.count, self.seed, epoch).astype(np.int32))


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
