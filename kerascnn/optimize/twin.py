"""The tf_keras twin of a kerascnn model: the same function, from standard Keras 2 layers, for tfmot.

Each kerascnn layer declares its standard equivalent (`kerascnn.layers.standard.standard_equivalent`):
explicit padding becomes ZeroPadding2D + a "valid" Conv2D, ConvBNAct becomes Conv2D + BatchNormalization
+ Activation, GAPHead becomes Dropout + 1x1 Conv2D + GlobalAveragePooling2D + Activation. The twin is one
flat functional model (tfmot rejects nested models), rebuilt from the original's functional config, with
the weights copied and the outputs checked against the original.
"""

from __future__ import annotations

import numpy as np

from kerascnn.layers.standard import NoStandardEquivalent, standard_equivalent
from kerascnn.optimize.legacy import tf_keras_and_tfmot


class TwinMismatch(ValueError):
    """The twin's outputs differ from the original model's."""


def _builtin_equivalent(layer, k):
    """A tf_keras copy of a standard Keras 3 layer (those the zoo uses beside kerascnn layers)."""
    import keras

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
    raise NoStandardEquivalent(f"Layer {name!r} of type {kind} has no tf_keras equivalent in kerascnn.optimize; "
                               "build the model from kerascnn.layers and Dense/Flatten/Dropout/Activation/Add.")


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


def to_tf_keras(model, check_inputs: np.ndarray | None = None, atol: float = 1e-4):
    """Builds the tf_keras twin of the functional Keras 3 `model` and checks it.

    Args:
        model: a functional kerascnn model (Keras 3).
        check_inputs: inputs to compare the two on (real images, normalized); by default 8 random ones.
        atol: the largest absolute difference of outputs allowed.

    Returns:
        A tf_keras.Model with the same weights, computing the same function.

    Raises:
        NoStandardEquivalent: a layer has no standard equivalent (named in the message).
        TwinMismatch: the outputs differ by more than `atol`.
    """
    k, _ = tf_keras_and_tfmot()
    config = model.get_config()
    if "layers" not in config or "input_layers" not in config:
        raise ValueError(f"Model {model.name!r} is not a functional model; to_tf_keras needs keras.Model(inputs, "
                         "outputs) built from kerascnn.layers.")
    tensors = {}
    for layer_config in config["layers"]:
        name = layer_config["name"]
        layer = model.get_layer(name)
        if layer_config["class_name"] == "InputLayer":
            tensors[(name, 0, 0)] = k.Input(shape=tuple(layer.batch_shape[1:]), name=name)
            continue
        if len(layer_config["inbound_nodes"]) != 1:
            raise ValueError(f"Layer {name!r} is called {len(layer_config['inbound_nodes'])} times; to_tf_keras "
                             "supports layers called once (no shared layers).")
        node = layer_config["inbound_nodes"][0]
        args = node["args"][0]
        inputs = ([_tensor_of(tensors, t) for t in args] if isinstance(args, (list, tuple))
                  else _tensor_of(tensors, args))
        if layer.__class__.__module__.startswith("kerascnn.layers"):
            parts, weights = standard_equivalent(layer, k)
        else:
            parts, weights = _builtin_equivalent(layer, k), layer.get_weights()
        tensors[(name, 0, 0)] = _apply(parts, list(weights), inputs)

    def outputs_of(entries):
        entries = entries if isinstance(entries[0], (list, tuple)) else [entries]
        return [tensors[tuple(entry)] for entry in entries]

    inputs, outputs = outputs_of(config["input_layers"]), outputs_of(config["output_layers"])
    twin = k.Model(inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs,
                   name=model.name)
    check_twin(model, twin, check_inputs, atol)
    return twin


def check_twin(model, twin, inputs: np.ndarray | None = None, atol: float = 1e-4) -> float:
    """The largest absolute difference between the two models' outputs on `inputs`; raises TwinMismatch
    above `atol`."""
    if inputs is None:
        inputs = np.random.default_rng(0).normal(size=(8, *model.input_shape[1:])).astype("float32")
    import keras

    expected = keras.ops.convert_to_numpy(model(inputs, training=False)).astype(np.float32)
    got = np.asarray(twin(inputs, training=False), np.float32)
    difference = float(np.max(np.abs(expected - got)))
    if not difference <= atol:
        raise TwinMismatch(f"The tf_keras twin of {model.name!r} differs from it by {difference:.3g} (allowed "
                           f"{atol:g}): a layer's standard equivalent does not compute what the layer does.")
    return difference
