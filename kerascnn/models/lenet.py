"""LeNet-5: convolution and pooling, then fully connected layers, as in LeCun et al. (1998)."""

import keras

from kerascnn import layers
from kerascnn.models.registry import register


@register("lenet5")
def lenet5(input_shape, num_classes, activation="relu"):
    """C1 6@5x5 (padding 2) -> S2 avg pool -> C3 16@5x5 -> S4 avg pool -> C5 120@5x5 -> F6 84 -> classes.

    61,706 parameters for 28x28x1 and 10 classes. Demonstrates the note's basics: local receptive
    fields with shared weights, pooling to shrink the maps, and — by contrast with the GAP head — the
    dense layers that hold most of its parameters (C5 alone, a 5x5 convolution on 5x5 maps, has 48K).
    `activation` is "relu" by default; "sigmoid" gives the original's behaviour. Any fixed size from 28x28 up
    (C5 needs 5x5 maps); no variable (None) size, because F6 is a dense layer on the flattened maps.
    """
    if None in input_shape[:2]:
        raise ValueError(
            f"lenet5 flattens its last feature maps into dense layers, so it needs a fixed height and "
            f"width. Received: input_shape={input_shape!r}. Give a fixed size, or use a model with a "
            "GAP head for variable sizes."
        )
    inputs = keras.Input(input_shape)
    h = layers.Conv2D(6, 5, padding=2, activation=activation, name="c1")(inputs)
    h = layers.AvgPool2D(2, name="s2")(h)
    h = layers.Conv2D(16, 5, activation=activation, name="c3")(h)
    h = layers.AvgPool2D(2, name="s4")(h)
    h = layers.Conv2D(120, 5, activation=activation, name="c5")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(84, activation=activation, name="f6")(h)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="output")(h)
    return keras.Model(inputs, outputs, name="lenet5")
