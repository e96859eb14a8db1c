"""Network in Network (Lin et al., 2013): mlpconv blocks of 1x1 convolutions and a GAP head."""

import keras

from kerascnn import layers
from kerascnn.models.registry import register


def mlpconv(h, filters, kernel_size, name):
    """A kxk convolution followed by two 1x1 convolutions: a small MLP slid over every position."""
    h = layers.ConvBNAct(filters, kernel_size, name=f"{name}_conv{kernel_size}x{kernel_size}")(h)
    h = layers.ConvBNAct(filters, 1, name=f"{name}_mix1")(h)
    return layers.ConvBNAct(filters, 1, name=f"{name}_mix2")(h)


@register("nin")
def nin(input_shape, num_classes, widths=(48, 96, 128), dropout=0.3):
    """Three mlpconv blocks (5x5, 5x5, 3x3 kernels) with max pooling and dropout between them, then the
    GAP head: a 1x1 convolution to one map per class, averaged — no dense layer at all.

    287,354 parameters with the default widths for 28x28x1 and 10 classes. Demonstrates 1x1
    convolutions as per-pixel channel mixing, and the head whose maps are class confidence maps.
    """
    inputs = keras.Input(input_shape)
    h = inputs
    for index, (filters, kernel_size) in enumerate(zip(widths, (5, 5, 3))):
        h = mlpconv(h, filters, kernel_size, name=f"block{index + 1}")
        if index < len(widths) - 1:
            h = layers.MaxPool2D(3, 2, padding="same", name=f"block{index + 1}_pool")(h)
            h = keras.layers.Dropout(dropout, name=f"block{index + 1}_dropout")(h)
    outputs = layers.GAPHead(num_classes, dtype="float32", name="head")(h)
    return keras.Model(inputs, outputs, name="nin")
