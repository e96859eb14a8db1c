"""QAT and pruning of kerascnn models through tensorflow-model-optimization, via a tf_keras twin."""

from kerascnn.optimize.legacy import tf_keras_and_tfmot
from kerascnn.optimize.tfmot_tuning import prune, quantization_aware, sparsity_per_layer
from kerascnn.optimize.twin import TwinMismatch, check_twin, to_tf_keras

__all__ = ["TwinMismatch", "check_twin", "prune", "quantization_aware", "sparsity_per_layer", "tf_keras_and_tfmot",
           "to_tf_keras"]
