"""Max and average pooling over windows, and their global forms (one value per channel)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kerascnn.layers.padding import (
    check_image_shape,
    conv_output_size,
    explicit_padding,
    normalize_padding,
    normalize_tuple,
    output_spatial_shape,
    resolve_padding,
)


class _Pool2D(keras.layers.Layer):
    """Shared argument handling and shape math of the windowed pools."""

    def __init__(self, pool_size, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, "strides")
        self.padding = normalize_padding(padding)
        if not isinstance(self.padding, str) and any(
            side >= k for pair, k in zip(self.padding, self.pool_size) for side in pair
        ):
            raise ValueError(
                "Explicit `padding` must be smaller than `pool_size` on each side, so that every window "
                f"holds at least one input cell. Received: padding={padding!r}, pool_size={pool_size!r}"
            )

    def build(self, input_shape):
        self.compute_output_shape(input_shape)  # raises if not 4-D or the window does not fit
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        mode, pads = resolve_padding(self.padding, tuple(inputs.shape[1:3]), self.pool_size, self.strides)
        if pads is None:
            return self._pool(inputs, mode)
        return self._pool_padded(inputs, ((0, 0), pads[0], pads[1], (0, 0)))

    def compute_output_shape(self, input_shape):
        check_image_shape(self.__class__.__name__, input_shape)
        height, width = output_spatial_shape(self.padding, tuple(input_shape[1:3]), self.pool_size, self.strides)
        return (input_shape[0], height, width, input_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }


@keras.saving.register_keras_serializable(package="kerascnn")
class MaxPool2D(_Pool2D):
    """Maximum over each pool_size window: Y[i, j, c] = max_{a, b} X[s*i + a, s*j + b, c].

    Output size per axis: floor((n + p - k) / s) + 1 (`conv_output_size` with d = 1). Padded cells
    never win the max: "same" and explicit padding pad with -inf. Lowers to TFLite's MAX_POOL_2D (after
    a PAD for explicit padding that is not "same"/"valid"-equivalent).

    Args:
        pool_size: int or (kh, kw), each >= 1.
        strides: int or (sh, sw), each >= 1; defaults to `pool_size` (non-overlapping windows).
        padding: "valid", "same", or explicit padding as in `Conv2D`; each side < pool size.

        **kwargs: base-layer arguments (`name`, `dtype`, `trainable`).

    Returns:
        Called on (batch, height, width, C), the layer returns (batch, out_h, out_w, C), each out from
        `conv_output_size`.

    Raises:
        ValueError: `pool_size` or `strides` is not an int or pair of ints >= 1, `padding` is not one of the
            forms above, explicit padding is not smaller than the pool size on every side, or (when called)
            the input is not 4-D or the window is larger than the padded input.

    Example:
        >>> import numpy as np
        >>> from kerascnn.layers import MaxPool2D
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)  # rows 0-3, 4-7, 8-11, 12-15
        >>> from keras import ops
        >>> ops.convert_to_numpy(MaxPool2D(2)(x))[0, :, :, 0].tolist()  # floor((4 - 2) / 2) + 1 = 2 per axis
        [[5.0, 7.0], [13.0, 15.0]]
    """

    def _pool(self, inputs, mode):
        return ops.max_pool(inputs, self.pool_size, self.strides, mode)

    def _pool_padded(self, inputs, pad_width):
        padded = ops.pad(inputs, pad_width, constant_values=float("-inf"))
        return ops.max_pool(padded, self.pool_size, self.strides, "valid")


@keras.saving.register_keras_serializable(package="kerascnn")
class AvgPool2D(_Pool2D):
    """Mean over each pool_size window of the input cells it covers.

    Output size per axis: floor((n + p - k) / s) + 1 (`conv_output_size` with d = 1). Padded cells are
    excluded from the average: a window that overlaps the padding divides by the number of real cells
    it covers, with "same" as with explicit padding. Lowers to TFLite's AVERAGE_POOL_2D; explicit padding
    that is neither "same"- nor "valid"-equivalent adds a PAD before it and a MUL by the constant
    (cells per window / real cells per window) after it.

    Args:
        pool_size: int or (kh, kw), each >= 1.
        strides: int or (sh, sw), each >= 1; defaults to `pool_size` (non-overlapping windows).
        padding: "valid", "same", or explicit padding as in `Conv2D`; each side < pool size.

        **kwargs: base-layer arguments (`name`, `dtype`, `trainable`).

    Returns:
        Called on (batch, height, width, C), the layer returns (batch, out_h, out_w, C), each out from
        `conv_output_size`.

    Raises:
        ValueError: `pool_size` or `strides` is not an int or pair of ints >= 1, `padding` is not one of the
            forms above, explicit padding is not smaller than the pool size on every side, or (when called)
            the input is not 4-D or the window is larger than the padded input.

    Example:
        >>> import numpy as np
        >>> from kerascnn.layers import AvgPool2D
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> from keras import ops
        >>> ops.convert_to_numpy(AvgPool2D(2)(x))[0, :, :, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
        >>> ones = np.ones((1, 4, 4, 1), "float32")
        >>> float(ops.max(AvgPool2D(3, strides=1, padding="same")(ones)))  # padded cells are not averaged in
        1.0
    """

    def _pool(self, inputs, mode):
        if mode == "same" and keras.backend.backend() == "torch":
            # Keras 3.15's PyTorch backend pads uneven "same" padding by repeating the edge values and averages
            # those repeats; pad explicitly instead, so that padded cells are excluded as on TensorFlow.
            pads = explicit_padding("same", tuple(inputs.shape[1:3]), self.pool_size, self.strides)
            return self._pool_padded(inputs, ((0, 0), *pads, (0, 0)))
        return ops.average_pool(inputs, self.pool_size, self.strides, mode)

    def _pool_padded(self, inputs, pad_width):
        # mean over the zero-padded window * (cells in the window / real cells in it) = mean of the real cells
        window_mean = ops.average_pool(ops.pad(inputs, pad_width), self.pool_size, self.strides, "valid")
        spatial = tuple(inputs.shape[1:3])
        if None not in spatial:  # a constant: TFLite gets PAD, AVERAGE_POOL_2D, MUL
            counts = [
                real_cells(n, k, s, pads)
                for n, k, s, pads in zip(spatial, self.pool_size, self.strides, pad_width[1:3])
            ]
            correction = (self.pool_size[0] * self.pool_size[1]) / np.outer(*counts)
            return window_mean * ops.convert_to_tensor(correction[None, :, :, None], dtype=self.compute_dtype)
        real = ops.pad(ops.ones_like(inputs[:1, :, :, :1]), pad_width)  # sizes known only when called
        return window_mean / ops.average_pool(real, self.pool_size, self.strides, "valid")


def real_cells(n: int, k: int, s: int, pads: tuple[int, int]) -> np.ndarray:
    """Input cells (not padding) under each window along one axis of n cells padded with pads = (before, after).

    Window i covers padded positions [i*s, i*s + k), which are input cells [i*s - before, i*s - before + k)
    clipped to [0, n).
    """
    before, after = pads
    starts = np.arange(conv_output_size(n, k, before + after, s)) * s - before
    return np.minimum(starts + k, n) - np.maximum(starts, 0)


class _GlobalPool2D(keras.layers.Layer):
    def __init__(self, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        check_image_shape(self.__class__.__name__, input_shape)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def compute_output_shape(self, input_shape):
        check_image_shape(self.__class__.__name__, input_shape)
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[3])
        return (input_shape[0], input_shape[3])

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


@keras.saving.register_keras_serializable(package="kerascnn")
class GlobalAvgPool2D(_GlobalPool2D):
    """Mean of each channel over all positions: y[c] = (1 / HW) sum_{i, j} X[i, j, c]. TFLite: MEAN.

    Args:
        keepdims: keep the spatial axes as size 1, (batch, 1, 1, C), instead of (batch, C).
        **kwargs: base-layer arguments (`name`, `dtype`, `trainable`).

    Returns:
        Called on (batch, H, W, C), the layer returns (batch, C), or (batch, 1, 1, C) with `keepdims`.

    Raises:
        ValueError: the input is not 4-D.

    Example:
        >>> import numpy as np
        >>> from kerascnn.layers import GlobalAvgPool2D
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> from keras import ops
        >>> ops.convert_to_numpy(GlobalAvgPool2D()(x)).tolist()  # (0 + 1 + ... + 15) / 16
        [[7.5]]
        >>> tuple(GlobalAvgPool2D(keepdims=True)(np.zeros((2, 7, 7, 32), "float32")).shape)
        (2, 1, 1, 32)
    """

    def call(self, inputs):
        return ops.mean(inputs, axis=(1, 2), keepdims=self.keepdims)


@keras.saving.register_keras_serializable(package="kerascnn")
class GlobalMaxPool2D(_GlobalPool2D):
    """Maximum of each channel over all positions: y[c] = max_{i, j} X[i, j, c]. TFLite: REDUCE_MAX.

    Args:
        keepdims: keep the spatial axes as size 1, (batch, 1, 1, C), instead of (batch, C).
        **kwargs: base-layer arguments (`name`, `dtype`, `trainable`).

    Returns:
        Called on (batch, H, W, C), the layer returns (batch, C), or (batch, 1, 1, C) with `keepdims`.

    Raises:
        ValueError: the input is not 4-D.

    Example:
        >>> import numpy as np
        >>> from kerascnn.layers import GlobalMaxPool2D
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> from keras import ops
        >>> ops.convert_to_numpy(GlobalMaxPool2D()(x)).tolist()
        [[15.0]]
    """

    def call(self, inputs):
        return ops.max(inputs, axis=(1, 2), keepdims=self.keepdims)
