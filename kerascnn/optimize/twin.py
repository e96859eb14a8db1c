"""The tf_keras twin of a kerascnn model: the same function, from standard Keras 2 layers, for tfmot.

Each kerascnn layer declares its standard equivalent (`kerascnn.optimize.standard.standard_equivalent`):
explicit padding becomes ZeroPadding2D + a "valid" Conv2D, ConvBNAct becomes Conv2D + BatchNormalization
+ Activation, GAPHead becomes Dropout + 1x1 Conv2D + GlobalAveragePooling2D + Activation. The twin is one
flat functional model (tfmot rejects nested models), rebuilt by `standard_twin` from the original's
functional config, with the weights copied and the outputs checked against the original.
"""

from __future__ import annotations

import numpy as np

from kerascnn.optimize.legacy import tf_keras_and_tfmot
from kerascnn.optimize.standard import standard_twin


class TwinMismatch(ValueError):
    """The twin's outputs differ from the original model's by more than the tolerance.

    Raised by `check_twin` and `to_tf_keras`; the message gives the largest difference. A ValueError.

    Example:
        >>> from kerascnn.models import create
        >>> from kerascnn.optimize import check_twin, to_keras_builtins
        >>> model = create("vgg", (8, 8, 1), 3, widths=(4,))
        >>> check_twin(model, to_keras_builtins(create("vgg", (8, 8, 1), 3, widths=(4,))))  # other weights
        Traceback (most recent call last):
        ...
        kerascnn.optimize.twin.TwinMismatch: The tf_keras twin of 'vgg...' differs from it by ...
    """


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
        ValueError: `model` is not functional, or calls a layer more than once.
        ImportError: tensorflow-model-optimization or tf-keras is not installed.

    Example:
        >>> from kerascnn.models import create
        >>> from kerascnn.optimize import to_tf_keras
        >>> model = create("vgg", (8, 8, 1), 3, widths=(4,))
        >>> twin = to_tf_keras(model)  # checked on 8 random images: outputs within atol
        >>> type(twin).__module__.split(".")[0], twin.count_params() == model.count_params()
        ('tf_keras', True)
    """
    k, _ = tf_keras_and_tfmot()
    twin = standard_twin(model, k)
    check_twin(model, twin, check_inputs, atol)
    return twin


def check_twin(model, twin, inputs: np.ndarray | None = None, atol: float = 1e-4) -> float:
    """The largest absolute difference between the two models' outputs on `inputs`, max abs(model(x) - twin(x)),
    both run in inference mode (batch norm on its running statistics, no dropout).

    Args:
        model: the original Keras 3 model.
        twin: its twin (Keras 3 or tf_keras), with one input of the same shape.
        inputs: the inputs to run (normalized images); by default 8 seeded standard-normal ones of the model's
            input shape.
        atol: the largest difference allowed.

    Returns:
        The largest absolute difference, a float <= `atol`.

    Raises:
        TwinMismatch: the difference is above `atol` (or not a number).

    Example:
        >>> from kerascnn.models import create
        >>> from kerascnn.optimize import check_twin, to_keras_builtins
        >>> model = create("vgg", (8, 8, 1), 3, widths=(4,))
        >>> check_twin(model, to_keras_builtins(model)) <= 1e-4
        True
    """
    if inputs is None:
        inputs = np.random.default_rng(0).normal(size=(8, *model.input_shape[1:])).astype("float32")
    import keras

    expected = keras.ops.convert_to_numpy(model(inputs, training=False)).astype(np.float32)
    got = np.asarray(twin(inputs, training=False), np.float32)
    difference = float(np.max(np.abs(expected - got)))
    if not difference <= atol:
        raise TwinMismatch(
            f"The tf_keras twin of {model.name!r} differs from it by {difference:.3g} (allowed "
            f"{atol:g}): a layer's standard equivalent does not compute what the layer does."
        )
    return difference
