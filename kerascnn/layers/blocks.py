"""ConvBNAct: convolution, batch normalization, activation, in the order the CNN note gives."""

from __future__ import annotations

import functools

import keras
from keras import ops

from kerascnn.layers.conv import Conv2D

# the smallest epsilon TensorFlow's fused batch norm takes (it raises smaller ones to this)
FUSED_MIN_EPSILON = 1.001e-5


@functools.cache
def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels: TF_ENABLE_ONEDNN_OPTS when TensorFlow was imported, else its
    default for the CPU (on with AVX-512; `import kerascnn` sets the variable to 1 unless it is set)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


@keras.saving.register_keras_serializable(package="kerascnn")
class ConvBNAct(keras.layers.Layer):
    """Conv2D without bias, then per-channel batch normalization, then the activation.

    BN comes after the convolution and before the nonlinearity. For each channel c it normalises with
    the batch statistics in training (running averages in inference) and applies its own learnt scale
    and shift: y = gamma[c] * (h - mean[c]) / sqrt(var[c] + epsilon) + beta[c]. The shift beta plays the
    role of the convolution's bias, which is why the convolution has none.

    In inference (and whenever BN is frozen) the block computes the same function with BN folded into
    the convolution: with scale[c] = gamma[c] / sqrt(var[c] + epsilon),

        BN(X * V)[c] = (X * (V[..., c] * scale[c]))[c] + (beta[c] - mean[c] * scale[c]),

    one convolution with a scaled kernel plus a shift. The TFLite converter turns the scaled kernel into
    constant weights, so the exported block is one CONV_2D (DEPTHWISE_CONV_2D) with the activation fused.
    A dilated convolution converted with a dynamic batch size keeps SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND
    around its CONV_2D: BN's scale is still in the weights, and its shift is one ADD with the activation
    fused (folding BN only after the convolution would leave a MUL there).

    Args:
        filters, kernel_size, strides, padding, dilation_rate, groups: as in `kerascnn.layers.Conv2D`
            (padding defaults to "same" here).
        activation: by name or callable, applied after BN; None for none.
        bn_momentum: running-average momentum of BN, in [0, 1).
        bn_epsilon: the epsilon added to the variance, > 0.
        kernel_initializer, kernel_regularizer: for the convolution's kernel.
        **kwargs: base-layer arguments (`name`, `dtype`, `trainable`).

    Returns:
        Called on (batch, height, width, C), the layer returns (batch, out_h, out_w, filters), sizes as
        `kerascnn.layers.Conv2D` gives them. `training=True` normalises with the batch statistics and
        updates the running averages; otherwise it runs the folded convolution.

    Raises:
        ValueError: `bn_momentum` is not in [0, 1), `bn_epsilon` is not > 0, or a convolution argument or
            the input shape is invalid (as for `kerascnn.layers.Conv2D`).

    Example:
        >>> import numpy as np
        >>> from kerascnn.layers import ConvBNAct
        >>> block = ConvBNAct(16, 3, strides=2)  # padding "same": ceil(28 / 2) = 14
        >>> tuple(block(np.zeros((2, 28, 28, 3), "float32")).shape)
        (2, 14, 14, 16)
        >>> [weight.name for weight in block.weights]  # no conv bias: BN's beta is the shift
        ['kernel', 'gamma', 'beta', 'moving_mean', 'moving_variance']
    """

    #: TensorFlow's fused batch-norm kernel in training (`batch_norm_train`): "auto" uses it when TensorFlow sees a
    #: GPU (cuDNN's fused kernel) or runs its oneDNN CPU kernels, for float32 (on this project's 2-core AVX2 CPU it
    #: made the quick VGG's train step 16 % shorter there, and was no faster with Eigen's kernels: README
    #: Benchmarks); True wherever the backend is TensorFlow, False never.
    fused_batch_norm = "auto"

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        dilation_rate=1,
        groups=1,
        activation="relu",
        bn_momentum=0.99,
        bn_epsilon=1e-3,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= bn_momentum < 1.0:
            raise ValueError(f"`bn_momentum` must be in [0, 1). Received: bn_momentum={bn_momentum!r}")
        if not bn_epsilon > 0.0:
            raise ValueError(f"`bn_epsilon` must be > 0. Received: bn_epsilon={bn_epsilon!r}")
        self.conv = Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
            groups=groups,
            use_bias=False,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            dtype=self.dtype_policy,
            name="conv",
        )
        self.bn = keras.layers.BatchNormalization(
            momentum=bn_momentum, epsilon=bn_epsilon, dtype=self.dtype_policy, name="bn"
        )
        self.activation = keras.activations.get(activation)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        if training and self.bn.trainable:  # batch statistics, and the running averages are updated
            return self.activation(self.batch_norm_train(self.conv(inputs)))
        return self.activation(self.folded_conv(inputs))

    def batch_norm_train(self, h):
        """BN of `h` with its batch statistics, and the running averages updated, as Keras's BatchNormalization
        computes them: per channel, mean m and biased variance v = mean((h - m)^2) over batch and space,
        y = gamma * (h - m) / sqrt(v + epsilon) + beta, moving_mean <- momentum * moving_mean + (1 - momentum) * m,
        and the same for moving_variance with v.

        With `fused_batch_norm` on (TensorFlow backend) this is one fused kernel (`FusedBatchNormV3`: statistics
        and normalization in one pass, its gradient in one more) instead of Keras's separate moments,
        normalization and their gradients. That kernel returns the unbiased variance v * n / (n - 1), n the values
        per channel, which is turned back into v for the running average. Otherwise, on other backends, and for
        epsilons below the kernel's minimum 1.001e-5, Keras's layer computes it.

        Args:
            h: the convolution's output, (batch, height, width, filters).

        Returns:
            The normalized `h`, same shape, before the activation.
        """
        if not self._fused_here() or self.bn.epsilon < FUSED_MIN_EPSILON:
            return self.bn(h, training=True)
        import tensorflow as tf

        bn = self.bn
        outputs, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
            h,
            ops.cast(bn.gamma, "float32"),
            ops.cast(bn.beta, "float32"),
            epsilon=bn.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        shape = tf.shape(h)
        n = ops.cast(shape[0] * shape[1] * shape[2], "float32")
        variance = unbiased * (n - 1.0) / ops.maximum(n, 1.0)
        mean, variance = tf.stop_gradient(mean), tf.stop_gradient(variance)
        bn.moving_mean.assign(bn.moving_mean * bn.momentum + mean * (1.0 - bn.momentum))
        bn.moving_variance.assign(bn.moving_variance * bn.momentum + variance * (1.0 - bn.momentum))
        return outputs

    def _fused_here(self) -> bool:
        if keras.backend.backend() != "tensorflow" or not self.fused_batch_norm:
            return False
        if self.fused_batch_norm == "auto":
            import tensorflow as tf

            gpu = bool(tf.config.list_physical_devices("GPU"))
            return gpu or (onednn_enabled() and self.compute_dtype == "float32")
        return True

    def folded_conv(self, inputs):
        """BN(X * V) with the running statistics, as one convolution: X * (V * scale) + (beta - mean * scale).

        Args:
            inputs: (batch, height, width, C) images.

        Returns:
            (batch, out_h, out_w, filters), before the activation; equal to BN in inference mode up to float
            rounding.
        """
        bn = self.bn
        scale = ops.cast(bn.gamma, "float32") * ops.rsqrt(ops.cast(bn.moving_variance, "float32") + bn.epsilon)
        shift = ops.cast(bn.beta, "float32") - ops.cast(bn.moving_mean, "float32") * scale
        kernel = ops.cast(self.conv.kernel, "float32") * scale  # scale broadcasts over the filters axis
        outputs = self.conv.convolve(inputs, ops.cast(kernel, self.compute_dtype))
        return ops.add(outputs, ops.cast(shift, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        conv = self.conv.get_config()
        return {
            **super().get_config(),
            **{key: conv[key] for key in ("filters", "kernel_size", "strides", "padding", "dilation_rate", "groups")},
            "activation": keras.activations.serialize(self.activation),
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "kernel_initializer": conv["kernel_initializer"],
            "kernel_regularizer": conv["kernel_regularizer"],
        }
