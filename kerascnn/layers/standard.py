"""The standard Keras layers each kerascnn layer equals, and a model's twin built from them.

`standard_equivalent(layer, k)` returns (layers, weights): standard layers of the namespace `k` (`keras`,
or `tf_keras` for tensorflow-model-optimization) that compute what `layer` computes, in order, and the
weights to give them. Explicit padding becomes ZeroPadding2D + a "valid" layer; ConvBNAct becomes
Conv2D + BatchNormalization + Activation; GAPHead becomes Dropout + 1x1 Conv2D + GlobalAveragePooling2D
+ Activation.
"""

from __future__ import annotations

import keras

from kerascnn.layers.blocks import ConvBNAct
from kerascnn.layers.conv import Conv2D
from kerascnn.layers.heads import GAPHead
from kerascnn.layers.padding import resolve_padding
from kerascnn.layers.pooling import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D


class NoStandardEquivalent(ValueError):
    """A layer that standard Keras layers cannot express."""


def _activation(k, activation, name):
    serialized = keras.activations.serialize(activation)
    name_or_config = serialized if isinstance(serialized, str) else serialized.get("config", serialized)
    return k.layers.Activation(name_or_config, name=name)


def _conv(k, conv: Conv2D, spatial_shape, name):
    mode, pads = resolve_padding(conv.padding, spatial_shape, conv.kernel_size, conv.strides, conv.dilation_rate)
    out = [k.layers.ZeroPadding2D(pads, name=f"{name}_pad")] if pads is not None else []
    weights = [w.numpy() if hasattr(w, "numpy") else w for w in conv.get_weights()]
    if conv.is_depthwise:
        multiplier = conv.filters // conv.groups
        weights[0] = weights[0].reshape(*conv.kernel_size, conv.groups, multiplier)
        out.append(k.layers.DepthwiseConv2D(conv.kernel_size, conv.strides, mode, depth_multiplier=multiplier,
                                            dilation_rate=conv.dilation_rate, use_bias=conv.use_bias, name=name))
    else:
        out.append(k.layers.Conv2D(conv.filters, conv.kernel_size, conv.strides, mode,
                                   dilation_rate=conv.dilation_rate, groups=conv.groups, use_bias=conv.use_bias,
                                   name=name))
    if conv.activation is not keras.activations.linear:
        out.append(_activation(k, conv.activation, f"{name}_act"))
    return out, weights


def standard_equivalent(layer, k=keras, input_shape=None):
    """(standard layers of namespace `k`, their weights in order) computing what `layer` computes.

    Raises:
        NoStandardEquivalent: for layers without one (named in the message).
    """
    input_shape = tuple(input_shape if input_shape is not None else layer.input.shape)
    spatial = input_shape[1:3]
    name = layer.name
    if isinstance(layer, Conv2D):
        return _conv(k, layer, spatial, name)
    if isinstance(layer, ConvBNAct):
        out, weights = _conv(k, layer.conv, spatial, f"{name}_conv")
        out.append(k.layers.BatchNormalization(momentum=layer.bn_momentum, epsilon=layer.bn_epsilon, name=f"{name}_bn"))
        if layer.activation is not keras.activations.linear:
            out.append(_activation(k, layer.activation, f"{name}_act"))
        return out, weights + layer.bn.get_weights()
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        mode, pads = resolve_padding(layer.padding, spatial, layer.pool_size, layer.strides)
        if pads is not None:
            raise NoStandardEquivalent(
                f"Layer {name!r} ({type(layer).__name__} with padding {layer.padding}) has no standard equivalent: "
                "standard pooling cannot ignore explicitly padded cells. Use 'same' or 'valid' padding.")
        pool = k.layers.MaxPooling2D if isinstance(layer, MaxPool2D) else k.layers.AveragePooling2D
        return [pool(layer.pool_size, layer.strides, mode, name=name)], []
    if isinstance(layer, GlobalAvgPool2D):
        return [k.layers.GlobalAveragePooling2D(keepdims=layer.keepdims, name=name)], []
    if isinstance(layer, GlobalMaxPool2D):
        return [k.layers.GlobalMaxPooling2D(keepdims=layer.keepdims, name=name)], []
    if isinstance(layer, GAPHead):
        out, weights = _conv(k, layer.classifier, spatial, f"{name}_classifier")
        out = [k.layers.Dropout(layer.dropout, name=f"{name}_dropout"), *out,
               k.layers.GlobalAveragePooling2D(name=f"{name}_pool")]
        if layer.activation is not keras.activations.linear:
            out.append(_activation(k, layer.activation, f"{name}_act"))
        return out, weights
    raise NoStandardEquivalent(f"Layer {name!r} of type {type(layer).__name__} has no standard equivalent.")


def to_keras_builtins(model: keras.Model) -> keras.Model:
    """A Keras 3 twin of a functional kerascnn model made of standard keras.layers only, with the same
    weights (each kerascnn layer becomes a small Sequential of its standard equivalent)."""

    def clone(layer):
        if layer.__class__.__module__.startswith("kerascnn.layers"):
            parts, weights = standard_equivalent(layer)
            twin = keras.Sequential(parts, name=f"{layer.name}_standard")
            twin.build(layer.input.shape)
            twin.set_weights(weights)
            return twin
        return layer.__class__.from_config(layer.get_config())

    twin = keras.models.clone_model(model, clone_function=clone)
    for original, copy in zip(model.layers, twin.layers):
        if not original.__class__.__module__.startswith("kerascnn.layers") and original.weights:
            copy.set_weights(original.get_weights())
    return twin
