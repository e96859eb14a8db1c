"""Training-time augmentation written with keras.ops and keras.random, so it compiles with XLA (unlike
Keras's preprocessing layers, which switch jit_compile off)."""

from __future__ import annotations

import math

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


@keras.saving.register_keras_serializable(package="kerascnn")
class RandomErasing(keras.layers.Layer):
    """Random erasing (Zhong et al., AAAI 2020): with probability `rate`, each image gets one rectangle set to
    `value` (0, the mean colour of normalized images). Identity outside training.

    Per image: an area fraction s ~ U(scale) and an aspect ratio r = h / w, log-uniform in `ratio`, give the
    rectangle h = round(sqrt(s H W r)), w = round(sqrt(s H W / r)), clipped to [1, H] and [1, W] (where the
    paper draws again, this clips); its top-left corner is uniform over the positions where it fits. Every draw
    comes from the layer's seed generator, which the trainer seeds per (seed, epoch) like the crops.

    Args:
        rate: probability that an image is erased, in [0, 1].
        scale: (min, max) fraction of the image's area erased, 0 < min <= max <= 1.
        ratio: (min, max) aspect ratio h / w, 0 < min <= max.
        value: what the rectangle is filled with.
        seed: seed of the layer's random generator.
    """

    def __init__(self, rate=0.5, scale=(0.02, 0.4), ratio=(0.3, 3.3), value=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"`rate` must be in [0, 1]. Received: rate={rate!r}")
        scale, ratio = tuple(float(v) for v in scale), tuple(float(v) for v in ratio)
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"`scale` must be (min, max) with 0 < min <= max <= 1. Received: scale={scale!r}")
        if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"`ratio` must be (min, max) with 0 < min <= max. Received: ratio={ratio!r}")
        self.rate, self.scale, self.ratio, self.value, self.seed = float(rate), scale, ratio, float(value), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or self.rate == 0.0:
            return images
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        u = keras.random.uniform((batch, 5), seed=self.seed_generator)
        area = (self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 0]) * (height * width)
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = ops.exp(log_low + (log_high - log_low) * u[:, 1])
        h = ops.clip(ops.round(ops.sqrt(area * aspect)), 1.0, float(height))
        w = ops.clip(ops.round(ops.sqrt(area / aspect)), 1.0, float(width))
        top = ops.floor(u[:, 2] * (height - h + 1.0))
        left = ops.floor(u[:, 3] * (width - w + 1.0))
        rows = ops.cast(ops.arange(height), "float32")[None, :]
        cols = ops.cast(ops.arange(width), "float32")[None, :]
        in_rows = ops.logical_and(rows >= top[:, None], rows < (top + h)[:, None])  # (batch, height)
        in_cols = ops.logical_and(cols >= left[:, None], cols < (left + w)[:, None])  # (batch, width)
        erase = u[:, 4] < self.rate
        mask = ops.logical_and(ops.logical_and(in_rows[:, :, None], in_cols[:, None, :]), erase[:, None, None])
        return ops.where(mask[..., None], ops.cast(self.value, images.dtype), images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "scale": self.scale,
            "ratio": self.ratio,
            "value": self.value,
            "seed": self.seed,
        }
