"""Whole-model rewrites: a kerascnn model's twin of standard layers (Keras 3 built-ins, or tf_keras for
tensorflow-model-optimization), and QAT and pruning through that tf_keras twin."""

from kerascnn.optimize.legacy import tf_keras_and_tfmot
from kerascnn.optimize.standard import NoStandardEquivalent, standard_twin, to_keras_builtins
from kerascnn.optimize.tfmot_tuning import prune, quantization_aware, sparsity_per_layer
from kerascnn.optimize.twin import TwinMismatch, check_twin, to_tf_keras

__all__ = [
    "NoStandardEquivalent",
    "TwinMismatch",
    "check_twin",
    "prune",
    "quantization_aware",
    "sparsity_per_layer",
    "standard_twin",
    "tf_keras_and_tfmot",
    "to_keras_builtins",
    "to_tf_keras",
]
