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
    """A layer that standard Keras layers cannot express; the message names it.

    Raised by `standard_twin`, `to_keras_builtins` and `to_tf_keras`: for MaxPool2D or AvgPool2D with explicit
    padding that is neither "same" nor "valid" (standard pooling cannot leave padded cells out), and for layers
    other than kerascnn's and Dense, Flatten, Dropout, Activation, ReLU, Concatenate, Add and Multiply.

    Example:
        >>> import keras
        >>> from kerascnn.layers import MaxPool2D
        >>> from kerascnn.optimize import to_keras_builtins
        >>> inputs = keras.Input((8, 8, 1))
        >>> to_keras_builtins(keras.Model(inputs, MaxPool2D(3, strides=2, padding=1)(inputs)))
        Traceback (most recent call last):
        ...
        kerascnn.optimize.standard.NoStandardEquivalent: Layer 'max_pool2d...' (MaxPool2D with padding ...
    """


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
        out.append(
            k.layers.DepthwiseConv2D(
                conv.kernel_size,
                conv.strides,
                mode,
                depth_multiplier=multiplier,
                dilation_rate=conv.dilation_rate,
                use_bias=conv.use_bias,
                name=name,
            )
        )
    else:
        out.append(
            k.layers.Conv2D(
                conv.filters,
                conv.kernel_size,
                conv.strides,
                mode,
                dilation_rate=conv.dilation_rate,
                groups=conv.groups,
                use_bias=conv.use_bias,
                name=name,
            )
        )
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
                "standard pooling cannot ignore explicitly padded cells. Use 'same' or 'valid' padding."
            )
        pool = k.layers.MaxPooling2D if isinstance(layer, MaxPool2D) else k.layers.AveragePooling2D
        return [pool(layer.pool_size, layer.strides, mode, name=name)], []
    if isinstance(layer, GlobalAvgPool2D):
        return [k.layers.GlobalAveragePooling2D(keepdims=layer.keepdims, name=name)], []
    if isinstance(layer, GlobalMaxPool2D):
        return [k.layers.GlobalMaxPooling2D(keepdims=layer.keepdims, name=name)], []
    if isinstance(layer, GAPHead):
        out, weights = _conv(k, layer.classifier, spatial, f"{name}_classifier")
        out = [
            k.layers.Dropout(layer.dropout, name=f"{name}_dropout"),
            *out,
            k.layers.GlobalAveragePooling2D(name=f"{name}_pool"),
        ]
        if layer.activation is not keras.activations.linear:
            out.append(_activation(k, layer.activation, f"{name}_act"))
        return out, weights
    raise NoStandardEquivalent(f"Layer {name!r} of type {type(layer).__name__} has no standard equivalent.")


def _builtin_equivalent(layer, k):
    """A copy in namespace `k` of a standard Keras 3 layer (those the zoo uses beside kerascnn layers)."""
    name, kind = layer.name, type(layer).__name__
    if kind == "Dense":
        activation = keras.activations.serialize(layer.activation)
        return [k.layers.Dense(layer.units, activation=activation, use_bias=layer.use_bias, name=name)]
    if kind == "Flatten":
        return [k.layers.Flatten(name=name)]
    if kind == "Dropout":
        return [k.layers.Dropout(layer.rate, name=name)]
    if kind == "Activation":
        return [k.layers.Activation(keras.activations.serialize(layer.activation), name=name)]
    if kind == "ReLU":
        return [k.layers.ReLU(layer.max_value, layer.negative_slope, layer.threshold, name=name)]
    if kind == "Concatenate":
        return [k.layers.Concatenate(axis=layer.axis, name=name)]
    if kind in ("Add", "Multiply"):
        return [getattr(k.layers, kind)(name=name)]
    raise NoStandardEquivalent(
        f"Layer {name!r} of type {kind} has no standard equivalent in kerascnn; "
        "build the model from kerascnn.layers and Dense/Flatten/Dropout/Activation/Add."
    )


def _tensor_of(tensors: dict, serialized: dict):
    """The twin's tensor for a serialized Keras tensor: keras_history is (layer name, node, output index)."""
    return tensors[tuple(serialized["config"]["keras_history"])]


def _apply(parts, weights, inputs):
    """Calls `parts` in order on `inputs`, then gives them `weights` (in the same order)."""
    outputs = inputs
    for part in parts:
        outputs = part(outputs)
    for part in parts:
        count = len(part.weights)
        if count:
            part.set_weights(weights[:count])
            weights = weights[count:]
    return outputs


def standard_twin(model, k=keras):
    """One flat functional model of namespace `k` (`keras`, or `tf_keras`) made of standard layers only,
    computing what the functional kerascnn `model` computes, with its weights. It is rebuilt from
    `model.get_config()`: each layer's inbound tensors (keras_history: layer name, node, output index) are
    fed to the layer's standard equivalent.

    Args:
        model: a functional Keras 3 model of kerascnn layers and the standard layers the zoo uses, each layer
            called once.
        k: the namespace whose layers the twin is built from: `keras` (Keras 3), or the `tf_keras` module from
            `tf_keras_and_tfmot()`.

    Returns:
        `k.Model` with the same inputs, outputs and weights; the twin is not checked (`check_twin` does that).

    Raises:
        NoStandardEquivalent: a layer has none (named in the message).
        ValueError: `model` is not functional, or calls a layer more than once.

    Example:
        >>> from kerascnn.models import create
        >>> from kerascnn.optimize import standard_twin
        >>> twin = standard_twin(create("vgg", (8, 8, 1), 3, widths=(4,)))  # ConvBNAct -> Conv2D, BN, Activation
        >>> [type(layer).__name__ for layer in twin.layers[1:4]]
        ['Conv2D', 'BatchNormalization', 'Activation']
    """
    config = model.get_config()
    if "layers" not in config or "input_layers" not in config:
        raise ValueError(
            f"Model {model.name!r} is not a functional model; standard_twin needs keras.Model(inputs, "
            "outputs) built from kerascnn.layers."
        )
    tensors = {}
    for layer_config in config["layers"]:
        name = layer_config["name"]
        layer = model.get_layer(name)
        if layer_config["class_name"] == "InputLayer":
            tensors[(name, 0, 0)] = k.Input(shape=tuple(layer.batch_shape[1:]), name=name)
            continue
        if len(layer_config["inbound_nodes"]) != 1:
            raise ValueError(
                f"Layer {name!r} is called {len(layer_config['inbound_nodes'])} times; standard_twin "
                "supports layers called once (no shared layers)."
            )
        node = layer_config["inbound_nodes"][0]
        args = node["args"][0]
        inputs = (
            [_tensor_of(tensors, t) for t in args] if isinstance(args, (list, tuple)) else _tensor_of(tensors, args)
        )
        if layer.__class__.__module__.startswith("kerascnn.layers"):
            parts, weights = standard_equivalent(layer, k)
        else:
            parts, weights = _builtin_equivalent(layer, k), layer.get_weights()
        tensors[(name, 0, 0)] = _apply(parts, list(weights), inputs)

    def outputs_of(entries):
        entries = entries if isinstance(entries[0], (list, tuple)) else [entries]
        return [tensors[tuple(entry)] for entry in entries]

    inputs, outputs = outputs_of(config["input_layers"]), outputs_of(config["output_layers"])
    return k.Model(
        inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name
    )


def to_keras_builtins(model: keras.Model) -> keras.Model:
    """The Keras 3 twin of a functional kerascnn model, made of keras.layers built-ins only (bench/train.py
    times the two side by side): `standard_twin(model, keras)`.

    Args:
        model: a functional Keras 3 model built from kerascnn layers.

    Returns:
        A `keras.Model` of built-in layers with the same weights (not checked; `check_twin` does that).

    Raises:
        NoStandardEquivalent: a layer has no built-in equivalent (named in the message).
        ValueError: `model` is not functional, or calls a layer more than once.

    Example:
        >>> from kerascnn.models import create
        >>> from kerascnn.optimize import check_twin, to_keras_builtins
        >>> model = create("vgg", (8, 8, 1), 3, widths=(4,))
        >>> builtins = to_keras_builtins(model)
        >>> sorted({type(layer).__module__.split(".")[0] for layer in builtins.layers})
        ['keras']
        >>> check_twin(model, builtins) < 1e-5  # batch norm unfolded: equal up to float rounding
        True
    """
    return standard_twin(model, keras)
