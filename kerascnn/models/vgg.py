"""A small VGG: stacks of 3x3 ConvBNAct with max pooling, widths doubling as the maps halve."""

import keras

from kerascnn import layers
from kerascnn.models.registry import register


@register("vgg")
def vgg(input_shape, num_classes, widths=(32, 64, 128), convs_per_block=2, dropout=0.2):
    """Blocks of `convs_per_block` 3x3 ConvBNAct ("same") then a 2x2 max pool, then the GAP head.

    289,066 parameters with the defaults for 28x28x1 and 10 classes. Demonstrates stacking small
    kernels (two 3x3 see 5x5 with fewer weights), batch norm between convolution and activation, and
    pooling that halves the maps while the channels double.
    """
    inputs = keras.Input(input_shape)
    h = inputs
    for block, filters in enumerate(widths, start=1):
        for index in range(1, convs_per_block + 1):
            h = layers.ConvBNAct(filters, 3, name=f"block{block}_conv{index}")(h)
        h = layers.MaxPool2D(2, padding="same", name=f"block{block}_pool")(h)
    outputs = layers.GAPHead(num_classes, dropout=dropout, dtype="float32", name="head")(h)
    return keras.Model(inputs, outputs, name="vgg")
