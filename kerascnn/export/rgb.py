# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""RGB input for a model trained on grey images, at no cost: the luminance weights fold into the first convolution.

A grey-trained model sees x = (Y - mean) / std with the luminance Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601,
what Pillow's `convert("L")` computes). Normalizing each RGB channel with the same mean and std, x_c = (c - mean) /
std, and since the weights sum to 1,

    0.299 x_R + 0.587 x_G + 0.114 x_B = (Y - mean) / std = x.

The first convolution is linear in its input channels, so a kernel V (kh, kw, 1, F) on x equals the kernel
V'[..., c, :] = w_c V[..., 0, :] (kh, kw, 3, F) on (x_R, x_G, x_B): the same op, three input channels instead of
one, no added op. Zero padding stays zero in every channel (a padded zero is the same
normalized value in every channel), so the fold is exact at the borders too, and for R = G = B the RGB model sees
exactly what the grey model saw.
"""

from __future__ import annotations

import numpy as np

LUMINANCE = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights; they sum to 1


class NotFoldableError(ValueError):
    """The model's input does not feed a single ungrouped convolution whose kernel can absorb the luminance."""


def _histories(node) -> list[str]:
    """Names of the layers whose outputs a config's inbound node reads (its "keras_history" entries)."""
    if isinstance(node, dict):
        if "keras_history" in node:
            return [node["keras_history"][0]]
        return [name for value in node.values() for name in _histories(value)]
    if isinstance(node, (list, tuple)):
        return [name for value in node for name in _histories(value)]
    return []


def _first_conv(model, config: dict, input_name: str):
    """The layer that consumes the model's input and the Conv2D-like layer holding its kernel.

    Raises:
        NotFoldableError: the input feeds several layers, or a layer that is not a convolution with groups == 1.
    """
    import keras

    from kerascnn import layers

    consumers = [
        entry["config"]["name"]
        for entry in config["layers"]
        if input_name in _histories(entry.get("inbound_nodes", []))
    ]
    if len(consumers) != 1:
        raise NotFoldableError(
            f"The model's input feeds {len(consumers)} layers ({', '.join(consumers)}); the RGB fold needs it to feed "
            "one convolution. Export with --input-color native (the trained channels)."
        )
    layer = model.get_layer(consumers[0])
    conv = layer.conv if isinstance(layer, layers.ConvBNAct) else layer
    if not isinstance(conv, (layers.Conv2D, keras.layers.Conv2D)) or getattr(conv, "groups", 1) != 1:
        raise NotFoldableError(
            f"The model's first layer {layer.name!r} ({type(layer).__name__}) is not a convolution with groups=1 whose "
            "kernel can absorb the luminance weights. Export with --input-color native (the trained channels)."
        )
    return layer, conv


def first_conv(model):
    """(input name, the layer that consumes the model's one input, the Conv2D-like layer holding its kernel).

    Raises:
        NotFoldableError: not a functional model with one input, or its input feeds several layers, or a layer
            that is not a convolution with groups == 1.
    """
    import keras

    if isinstance(model, keras.Sequential) or not isinstance(model, keras.Model):
        raise NotFoldableError("The fold rebuilds functional models only (keras.Model(inputs, outputs)).")
    config = model.get_config()
    inputs = config.get("input_layers") or []
    if inputs and isinstance(inputs[0], str):  # one input: ["input_layer", 0, 0]
        inputs = [inputs]
    if len(inputs) != 1:
        raise NotFoldableError("The fold needs a functional model with one image input.")
    return (inputs[0][0], *_first_conv(model, config, inputs[0][0]))


def grey_to_rgb(model):
    """A copy of the grey-input `model` that takes RGB images normalized per channel with the grey mean and std.

    Args:
        model: a functional Keras model with input (H, W, 1) whose input feeds one convolution (kerascnn Conv2D,
            ConvBNAct or keras Conv2D, groups == 1).

    Returns:
        The same architecture with input (H, W, 3) and the first kernel V' = LUMINANCE x V (see the module docstring):
        for R = G = B its outputs equal `model`'s on the grey image.

    Raises:
        NotFoldableError: the input has other than 1 channel, or its first op is not a foldable convolution.

    Example:
        rgb = grey_to_rgb(keras.saving.load_model("runs/quick/best.keras"))   # (28, 28, 3) in, same ops
    """
    import keras

    shape = tuple(model.inputs[0].shape[1:]) if len(getattr(model, "inputs", None) or []) == 1 else ()
    if len(shape) != 3 or shape[-1] != 1:
        raise NotFoldableError(f"The RGB fold takes a grey model (input H x W x 1). Received input shape {shape}.")
    input_name, _, conv = first_conv(model)
    rgb = keras.models.clone_model(model, input_tensors=keras.Input((*shape[:2], 3), name=input_name))
    for source in model.layers:
        target = rgb.get_layer(source.name)
        for target_weight, source_weight in zip(target.weights, source.weights, strict=True):
            value = np.asarray(source_weight)
            if source_weight is conv.kernel:
                value = value * np.asarray(LUMINANCE, value.dtype)[None, None, :, None]
            target_weight.assign(value)
    return rgb
