"""A depthwise-separable edge net in the style of MobileNet (Howard et al., 2017)."""

import keras

from kerascnn import layers
from kerascnn.models.registry import register

# (pointwise filters, depthwise stride) per block
DEFAULT_BLOCKS = ((32, 1), (64, 2), (96, 1), (128, 2), (160, 1), (160, 1))


@register("mobilenet")
def mobilenet(input_shape, num_classes, width_multiplier=1.0, blocks=DEFAULT_BLOCKS, dropout=0.1):
    """A 3x3 ConvBNAct stem, then depthwise-separable blocks — a 3x3 depthwise ConvBNAct (groups equal
    to the channels) followed by a 1x1 ConvBNAct that mixes the channels — then the GAP head.

    77,898 parameters with the defaults for 28x28x1 and 10 classes. Demonstrates how splitting a
    3x3 convolution into a per-channel spatial filter and a 1x1 channel mix cuts parameters and
    multiply-adds by about 8x, and exports to TFLite DEPTHWISE_CONV_2D + CONV_2D pairs.
    """

    def scaled(filters):
        return max(8, int(round(filters * width_multiplier / 8)) * 8)

    inputs = keras.Input(input_shape)
    h = layers.ConvBNAct(scaled(16), 3, name="stem")(inputs)
    for index, (filters, strides) in enumerate(blocks, start=1):
        channels = h.shape[-1]
        h = layers.ConvBNAct(channels, 3, strides=strides, groups=channels, name=f"block{index}_depthwise")(h)
        h = layers.ConvBNAct(scaled(filters), 1, name=f"block{index}_pointwise")(h)
    outputs = layers.GAPHead(num_classes, dropout=dropout, dtype="float32", name="head")(h)
    return keras.Model(inputs, outputs, name="mobilenet")
