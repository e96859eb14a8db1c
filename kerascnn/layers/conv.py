"""Conv2D: cross-correlation with a learnt kernel, plus a bias (the CNN note's H = u + X * V)."""

from __future__ import annotations

import keras
from keras import ops

from kerascnn.layers.padding import (
    check_image_shape,
    is_int,
    normalize_padding,
    normalize_tuple,
    output_spatial_shape,
    resolve_padding,
)


@keras.saving.register_keras_serializable(package="kerascnn")
class Conv2D(keras.layers.Layer):
    """2-D cross-correlation, channels last.

    For output channel c at position (i, j), with stride s, dilation d and the input X already padded:

        H[i, j, c] = u[c] + sum_{a, b, k} V[a, b, k, c] * X[s*i + d*a, s*j + d*b, g(c)*C/G + k]

    where the kernel V has shape (kh, kw, C/G, filters), G = `groups` and g(c) is the group of c. The
    kernel is not flipped: this is cross-correlation, which deep-learning libraries call convolution.
    Each spatial output size is floor((n + p - d*(k-1) - 1) / s) + 1 (`conv_output_size`), with p the
    total padding on that axis.

    A 1x1 kernel looks at one pixel at a time: it mixes channels, a per-pixel fully connected layer
    (the note's channel-mixing layer, as in Network in Network). `groups == C` is a depthwise
    convolution (one filter set per input channel) and lowers to TFLite's DEPTHWISE_CONV_2D.

    Args:
        filters: number of output channels, an int >= 1 divisible by `groups`.
        kernel_size: int or (kh, kw), each >= 1.
        strides: int or (sh, sw), each >= 1.
        padding: "valid" (none), "same" (TensorFlow's rule: ceil(n/s) outputs, the odd cell at the
            bottom/right), an int p (p zeros on every side), a pair (ph, pw) or
            ((top, bottom), (left, right)), each >= 0. Explicit padding equal to what "valid" or
            "same" does for the input shape uses that mode, so TFLite gets one CONV_2D and no PAD.
        dilation_rate: int or (dh, dw), each >= 1; cannot be combined with strides > 1.
        groups: int >= 1 dividing both the input channels and `filters`.
        use_bias: whether to add the learnt bias u.
        activation: activation applied to H, by name or callable; None for none.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer: as in Keras.
        **kwargs: base-layer arguments (`name`, `dtype`, `trainable`).

    Returns:
        Called on images of shape (batch, height, width, C), the layer returns (batch, out_h, out_w,
        filters), each out from `conv_output_size`.

    Raises:
        ValueError: at construction, `filters` or `groups` is not an int >= 1, `filters` is not divisible by
            `groups`, `kernel_size`, `strides` or `dilation_rate` is not an int or pair of ints >= 1, strides
            > 1 are combined with dilation > 1, or `padding` is not one of the forms above. When built, the
            input is not 4-D, its channels are unknown or not divisible by `groups`, or the (dilated)
            kernel is larger than the padded input.

    Example:
        >>> import numpy as np
        >>> from kerascnn.layers import Conv2D
        >>> images = np.zeros((2, 28, 28, 3), "float32")
        >>> tuple(Conv2D(4, 5)(images).shape)  # floor((28 + 0 - 5) / 1) + 1 = 24
        (2, 24, 24, 4)
        >>> tuple(Conv2D(8, 3, strides=2, padding="same")(images).shape)  # ceil(28 / 2) = 14
        (2, 14, 14, 8)
        >>> depthwise = Conv2D(3, 3, padding=1, groups=3)  # one 3x3 filter per input channel
        >>> tuple(depthwise(images).shape), tuple(depthwise.kernel.shape)
        ((2, 28, 28, 3), (3, 3, 1, 3))
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        dilation_rate=1,
        groups=1,
        use_bias=True,
        activation=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not is_int(filters) or filters < 1:
            raise ValueError(f"`filters` must be an int >= 1. Received: filters={filters!r}")
        if not is_int(groups) or groups < 1:
            raise ValueError(f"`groups` must be an int >= 1. Received: groups={groups!r}")
        if filters % groups:
            raise ValueError(f"`filters` must be divisible by `groups`. Received: filters={filters}, groups={groups}")
        self.filters = int(filters)
        self.groups = int(groups)
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size")
        self.strides = normalize_tuple(strides, "strides")
        self.dilation_rate = normalize_tuple(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "`strides` > 1 cannot be combined with `dilation_rate` > 1 (TensorFlow's convolution "
                f"does not support it). Received: strides={strides!r}, dilation_rate={dilation_rate!r}"
            )
        self.padding = normalize_padding(padding)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        check_image_shape(self.__class__.__name__, input_shape)
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"{self.__class__.__name__} needs a known number of input channels. "
                f"Received input with shape {tuple(input_shape)}"
            )
        if channels % self.groups:
            raise ValueError(
                f"The input channels must be divisible by `groups`. Received: {channels} input channels, "
                f"groups={self.groups}"
            )
        self.compute_output_shape(input_shape)  # raises if the window does not fit
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
            )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    @property
    def is_depthwise(self) -> bool:
        """True when every input channel is its own group (groups == input channels > 1)."""
        return self.groups > 1 and self.kernel.shape[2] == 1

    def convolve(self, inputs, kernel):
        """X * kernel with this layer's padding, strides, dilation and groups; no bias, no activation.

        `call` passes its own kernel; `ConvBNAct` passes the kernel with batch norm folded in.

        Args:
            inputs: (batch, height, width, C) images.
            kernel: a kernel of this layer's kernel shape (kh, kw, C/groups, filters).

        Returns:
            (batch, out_h, out_w, filters), each out = floor((n + p - d*(k-1) - 1) / s) + 1.
        """
        mode, pads = resolve_padding(
            self.padding, tuple(inputs.shape[1:3]), self.kernel_size, self.strides, self.dilation_rate
        )
        if pads is not None:
            inputs = ops.pad(inputs, ((0, 0), pads[0], pads[1], (0, 0)))
        if self.is_depthwise:
            # (kh, kw, 1, C*m) -> (kh, kw, C, m): output channel c*m + j belongs to input channel c.
            kernel = ops.reshape(kernel, (*self.kernel_size, self.groups, self.filters // self.groups))
            return ops.depthwise_conv(inputs, kernel, self.strides, mode, dilation_rate=self.dilation_rate)
        return ops.conv(inputs, kernel, self.strides, mode, dilation_rate=self.dilation_rate)

    def call(self, inputs):
        outputs = self.convolve(inputs, self.kernel)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        check_image_shape(self.__class__.__name__, input_shape)
        height, width = output_spatial_shape(
            self.padding, tuple(input_shape[1:3]), self.kernel_size, self.strides, self.dilation_rate
        )
        return (input_shape[0], height, width, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }
