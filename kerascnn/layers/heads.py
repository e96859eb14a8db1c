"""GAPHead: the global-average-pooling classifier head, one feature map per class and no dense layer."""

from __future__ import annotations

import keras

from kerascnn.layers.conv import Conv2D
from kerascnn.layers.padding import is_int
from kerascnn.layers.pooling import GlobalAvgPool2D


@keras.saving.register_keras_serializable(package="kerascnn")
class GAPHead(keras.layers.Layer):
    """1x1 convolution to one map per class, global average pooling, then the activation.

    With features X of shape (H, W, C), the 1x1 convolution gives class maps M[i, j, c] = u[c] +
    sum_k X[i, j, k] V[k, c], and the class score is their mean: z[c] = (1 / HW) sum_{i, j} M[i, j, c].
    There is no dense layer: each map M[..., c] is a confidence map for class c, which is what class
    activation maps show. `class_maps(features)` returns M.

    Args:
        num_classes: number of classes (maps), an int >= 1.
        dropout: dropout rate on the features before the 1x1 convolution, in [0, 1).
        activation: applied to z; "softmax" for probabilities, None for logits.
        kernel_initializer, kernel_regularizer: for the 1x1 convolution's kernel.
        **kwargs: base-layer arguments (`name`, `dtype`, `trainable`).

    Returns:
        Called on features (batch, H, W, C), the layer returns (batch, num_classes), probabilities with
        "softmax" and logits with None.

    Raises:
        ValueError: `num_classes` is not an int >= 1, `dropout` is not in [0, 1), or the input is not 4-D
            with known channels.

    Example:
        >>> import numpy as np
        >>> from kerascnn.layers import GAPHead
        >>> head = GAPHead(10)
        >>> features = np.ones((2, 7, 7, 32), "float32")
        >>> tuple(head(features).shape), tuple(head.class_maps(features).shape)
        ((2, 10), (2, 7, 7, 10))
        >>> from keras import ops
        >>> round(float(ops.sum(head(features)[0])), 5)  # softmax: each row sums to 1
        1.0
        >>> head.count_params()  # 32 * 10 weights + 10 biases, no dense layer
        330
    """

    def __init__(
        self,
        num_classes,
        dropout=0.0,
        activation="softmax",
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not is_int(num_classes) or num_classes < 1:
            raise ValueError(f"`num_classes` must be an int >= 1. Received: num_classes={num_classes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.num_classes = int(num_classes)
        self.dropout = float(dropout)
        self.activation = keras.activations.get(activation)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")
        self.classifier = Conv2D(
            self.num_classes,
            1,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            dtype=self.dtype_policy,
            name="classifier",
        )
        self.pool = GlobalAvgPool2D(dtype=self.dtype_policy, name="pool")

    def build(self, input_shape):
        self.classifier.build(input_shape)

    def class_maps(self, features, training=False):
        """The per-class maps M, shape (batch, H, W, num_classes), before pooling and activation.

        M[i, j, c] = u[c] + sum_k X[i, j, k] V[k, c]: the 1x1 convolution of the (dropped-out, in training)
        features. Their spatial mean is the class score z[c] that `call` activates. Builds the layer on first use.

        Args:
            features: (batch, H, W, C) features, what the head receives (`kerascnn.models.head_features`).
            training: apply the dropout (training mode).

        Returns:
            The class maps, (batch, H, W, num_classes).
        """
        if not self.built:
            self.build(features.shape)
        return self.classifier(self.dropout_layer(features, training=training))

    def call(self, inputs, training=None):
        return self.activation(self.pool(self.class_maps(inputs, training=training)))

    def compute_output_shape(self, input_shape):
        return self.pool.compute_output_shape(self.classifier.compute_output_shape(input_shape))

    def get_config(self):
        classifier = self.classifier.get_config()
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": classifier["kernel_initializer"],
            "kernel_regularizer": classifier["kernel_regularizer"],
        }
