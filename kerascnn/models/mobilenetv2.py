"""MobileNetV2 (Sandler et al., 2018) from kerascnn layers, laid out so `keras.applications.MobileNetV2`'s
weights (ImageNet's included) copy into it by layer name (`kerascnn.models.keras_weights`), and torchvision's
`mobilenet_v2` state dict by its names (`kerascnn.models.torch_weights`, with torch's padding and epsilon)."""

from __future__ import annotations

import keras

from kerascnn import layers
from kerascnn.models.registry import OptionError, register

# (expansion t, output channels c, repeats n, first stride s) per stage, the paper's Table 2 as Keras builds it
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# Keras's batch norm settings for MobileNetV2 (the ImageNet weights were trained with them)
BN = dict(bn_momentum=0.999, bn_epsilon=1e-3)
LAYOUTS = ("keras", "torchvision")


def make_divisible(value: float, divisor: int = 8) -> int:
    """The channel count nearest to `value` that is a multiple of `divisor`, never below 90 % of `value`
    (Keras's and the paper's `_make_divisible`)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _block(h, expansion, filters, stride, alpha, block_id, bn, padding):
    """Inverted residual: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection, plus the input
    when the shapes agree. Block 0 has no expansion; Keras names its layers "expanded_conv_*"."""
    in_channels = h.shape[-1]
    out_channels = make_divisible(int(filters * alpha))
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    x = h
    if block_id:
        x = layers.ConvBNAct(expansion * in_channels, 1, activation="relu6", name=f"{prefix}expand", **bn)(x)
    channels = x.shape[-1]
    # Keras pads a strided depthwise conv with ZeroPadding2D(correct_pad(x, 3)) then uses "valid": that is
    # (0, 1) on an even axis and (1, 1) on an odd one, exactly TensorFlow's "same" rule for kernel 3, stride 2
    # (total padding max((ceil(n/2) - 1) * 2 + 3 - n, 0), the odd cell at the bottom/right), so "same" here
    # computes the same function at every size and exports as one DEPTHWISE_CONV_2D without a PAD. torchvision
    # pads (1, 1) at every size (`padding` 1): on an even axis at stride 2 that is a PAD, then "valid".
    x = layers.ConvBNAct(
        channels,
        3,
        strides=stride,
        padding=padding,
        groups=channels,
        activation="relu6",
        name=f"{prefix}depthwise",
        **bn,
    )(x)
    x = layers.ConvBNAct(out_channels, 1, activation=None, name=f"{prefix}project", **bn)(x)
    if in_channels == out_channels and stride == 1:
        x = keras.layers.Add(name=f"{prefix}add")([h, x])
    return x


@register("mobilenetv2")
def mobilenetv2(input_shape, num_classes, alpha=1.0, weights=None, dropout=0.0, layout=None):
    """MobileNetV2: a strided 3x3 ReLU6 stem, 17 inverted-residual blocks, a 1x1 conv to 1280 channels, then
    the GAP head.

    The head is Keras's GlobalAveragePooling2D + Dense(num_classes) in kerascnn's form: a 1x1 convolution to
    one map per class, then the global average. Both are linear, so mean_ij(X_ij) W + b = mean_ij(X_ij W + b):
    Keras's Dense kernel (C, N) is the 1x1 kernel (1, 1, C, N). Every convolution is a `ConvBNAct` (BN
    epsilon 1e-3, momentum 0.999 as Keras's), depthwise ones with groups equal to the channels.

    2,270,218 parameters with alpha 1.0 for 28x28x1 and 10 classes; 3,538,984 for ImageNet (224x224x3, 1000).

    Args:
        input_shape: (H, W, C); H and W may be None. Pretrained weights need C == 3 (RGB).
        num_classes: outputs of the head.
        alpha: width multiplier of every block's channels (0.35, 0.5, 0.75, 1.0, 1.3, 1.4 have ImageNet
            weights), > 0.
        weights: None (random), "imagenet" (Keras's file, downloaded and cached by `keras.utils.get_file`),
            the path of a `keras.applications.MobileNetV2` weights file (the applications .h5, a
            `.weights.h5` or a `.keras`), or of torchvision's `mobilenet_v2` state dict (a `.pth`: needs torch,
            the `torch-weights` extra; scripts/setup-weights installs the ImageNet one offline). The head is
            copied when the file has one with `num_classes` outputs, else it stays random (fine-tuning).
        dropout: dropout rate before the head's 1x1 convolution.
        layout: "keras" (BN epsilon 1e-3, momentum 0.999; "same" padding: Keras's correct_pad) or "torchvision"
            (epsilon 1e-5, momentum 0.9; every 3x3 convolution padded by 1 on each side, as torch's
            `padding=1`). None: "torchvision" for a .pth file, else "keras".

    Raises:
        OptionError (a ValueError): alpha <= 0, an unknown layout, pretrained weights with C != 3, a .pth with the
            keras layout or without torch, or weights that do not fit (the message names the file and the layer).
    """
    from kerascnn.models import torch_weights

    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        raise OptionError(f"`alpha` must be a number > 0. Received: alpha={alpha!r}")
    torch_file = torch_weights.is_torch_file(weights)
    layout = layout or ("torchvision" if torch_file else "keras")
    if layout not in LAYOUTS:
        raise OptionError(f"`layout` must be one of {', '.join(LAYOUTS)}. Received: layout={layout!r}")
    if torch_file and layout != "torchvision":
        raise OptionError(f"weights={str(weights)!r} is torchvision's: use layout='torchvision' (or leave it out).")
    bn, padding = (torch_weights.TORCH_BN, 1) if layout == "torchvision" else (BN, "same")
    inputs = keras.Input(input_shape)
    h = layers.ConvBNAct(
        make_divisible(32 * alpha), 3, strides=2, padding=padding, activation="relu6", name="Conv1", **bn
    )(inputs)
    block_id = 0
    for expansion, filters, repeats, first_stride in STAGES:
        for index in range(repeats):
            h = _block(h, expansion, filters, first_stride if index == 0 else 1, alpha, block_id, bn, padding)
            block_id += 1
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280  # the paper does not thin the last conv
    h = layers.ConvBNAct(last, 1, activation="relu6", name="Conv_1", **bn)(h)
    outputs = layers.GAPHead(num_classes, dropout=dropout, dtype="float32", name="predictions")(h)
    model = keras.Model(inputs, outputs, name=f"mobilenetv2_{float(alpha):0.2f}")
    if torch_file:
        torch_weights.load_torchvision_weights(model, weights)
    elif weights is not None:
        from kerascnn.models.keras_weights import load_mobilenetv2_weights

        load_mobilenetv2_weights(model, weights, alpha)
    return model
