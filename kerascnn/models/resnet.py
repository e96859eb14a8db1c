"""A small ResNet (He et al., 2016): basic residual blocks in stages of doubling width."""

import keras

from kerascnn import layers
from kerascnn.models.registry import register


def basic_block(h, filters, strides, name):
    """y = relu(BN(conv(relu(BN(conv(x))))) + shortcut(x)); the shortcut is a strided 1x1 ConvBNAct
    when the shape changes, the identity otherwise."""
    shortcut = h
    if strides != 1 or h.shape[-1] != filters:
        shortcut = layers.ConvBNAct(filters, 1, strides=strides, activation=None, name=f"{name}_shortcut")(h)
    h = layers.ConvBNAct(filters, 3, strides=strides, name=f"{name}_conv1")(h)
    h = layers.ConvBNAct(filters, 3, activation=None, name=f"{name}_conv2")(h)
    return keras.layers.Activation("relu", name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([h, shortcut]))


@register("resnet")
def resnet(input_shape, num_classes, width=32, depth=(2, 2, 2), dropout=0.0):
    """A 3x3 ConvBNAct stem, then one stage per entry of `depth` (that many basic blocks, width
    `width * 2**stage`, stride 2 from the second stage on), then the GAP head.

    698,282 parameters with the defaults for 28x28x1 and 10 classes. Demonstrates residual
    connections, which let deep stacks of ConvBNAct train, and strided convolutions for downsampling.
    """
    inputs = keras.Input(input_shape)
    h = layers.ConvBNAct(width, 3, name="stem")(inputs)
    for stage, blocks in enumerate(depth):
        for index in range(blocks):
            strides = 2 if stage > 0 and index == 0 else 1
            h = basic_block(h, width * 2**stage, strides, name=f"stage{stage + 1}_block{index + 1}")
    outputs = layers.GAPHead(num_classes, dropout=dropout, dtype="float32", name="head")(h)
    return keras.Model(inputs, outputs, name="resnet")
