"""Training-time augmentation written with keras.ops and keras.random, so it compiles with XLA (unlike
Keras's preprocessing layers, which switch jit_compile off)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerascnn")
class RandomCropFlip(keras.layers.Layer):
    """Pads each image by `padding` zeros on every side, crops a random window of the original size,
    and mirrors it left-right with probability 1/2 if `flip`. Identity outside training.

    Args:
        padding: cells of zero padding before the crop (0 turns cropping off); the images are normalized,
            so zero is the mean colour.
        flip: random horizontal flips (off for digits and text).
        seed: seed of the layer's random generator.
    """

    def __init__(self, padding=2, flip=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"`padding` must be an int >= 0. Received: padding={padding!r}")
        self.padding = padding
        self.flip = bool(flip)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        if self.padding:
            p = self.padding
            padded = ops.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
            offsets = keras.random.randint((batch, 2), 0, 2 * p + 1, seed=self.seed_generator)
            rows = offsets[:, :1] + ops.arange(height)[None, :]  # (batch, height)
            cols = offsets[:, 1:] + ops.arange(width)[None, :]  # (batch, width)
            padded = ops.take_along_axis(padded, rows[:, :, None, None], axis=1)
            images = ops.take_along_axis(padded, cols[:, None, :, None], axis=2)
        if self.flip:
            mirror = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator) < 0.5
            images = ops.where(mirror, ops.flip(images, axis=2), images)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "flip": self.flip, "seed": self.seed}
