"""Each layer converts to TFLite with builtin ops only, runs in ai-edge-litert, matches Keras, and lowers
to the expected operators (TensorFlow backend only: the converter needs TensorFlow)."""

import keras
import numpy as np
import pytest

from kerascnn import layers
from tests.helpers import random_images
from tests.tflite_utils import convert_builtins_only, op_names, run_tflite

pytest.importorskip("tensorflow")
if keras.backend.backend() != "tensorflow":
    pytest.skip("TFLite conversion runs on the TensorFlow backend", allow_module_level=True)

CASES = {
    "conv_same": (lambda: layers.Conv2D(6, 3, padding="same", activation="relu"), ["CONV_2D"]),
    "conv_explicit_same_equivalent": (lambda: layers.Conv2D(6, 3, padding=1), ["CONV_2D"]),
    "conv_explicit_stride2_same_equivalent": (lambda: layers.Conv2D(6, 3, 2, padding=((0, 1), (0, 1))), ["CONV_2D"]),
    "conv_explicit_asymmetric": (lambda: layers.Conv2D(6, 3, padding=((0, 2), (1, 0))), ["PAD", "CONV_2D"]),
    "conv_1x1_channel_mixing": (lambda: layers.Conv2D(6, 1), ["CONV_2D"]),
    "conv_grouped": (lambda: layers.Conv2D(6, 3, padding="same", groups=2), ["CONV_2D"]),
    "conv_depthwise": (lambda: layers.Conv2D(8, 3, padding="same", groups=4), ["DEPTHWISE_CONV_2D"]),
    "conv_bn_act_folded": (lambda: layers.ConvBNAct(6, 3), ["CONV_2D"]),
    "max_pool_same": (lambda: layers.MaxPool2D(3, 2, padding="same"), ["MAX_POOL_2D"]),
    "max_pool_explicit": (lambda: layers.MaxPool2D(3, 2, padding=1), ["PADV2", "MAX_POOL_2D"]),
    "avg_pool_valid": (lambda: layers.AvgPool2D(2), ["AVERAGE_POOL_2D"]),
    "avg_pool_explicit": (lambda: layers.AvgPool2D(3, 2, padding=1), ["PAD", "AVERAGE_POOL_2D", "MUL"]),
    "global_avg_pool": (lambda: layers.GlobalAvgPool2D(), ["MEAN"]),
    "global_max_pool": (lambda: layers.GlobalMaxPool2D(), ["REDUCE_MAX"]),
    "gap_head": (lambda: layers.GAPHead(5), ["CONV_2D", "MEAN", "SOFTMAX"]),
}


@pytest.mark.parametrize("name", CASES)
def test_lowers_to_builtin_ops_and_matches_keras(name):
    make_layer, expected_ops = CASES[name]
    layer = make_layer()
    inputs = keras.Input((10, 10, 4), batch_size=1)
    model = keras.Model(inputs, layer(inputs))
    if isinstance(layer, layers.ConvBNAct):  # inference-mode BN with non-trivial statistics
        layer.bn.moving_mean.assign(np.linspace(-1, 1, 6).astype("float32"))
        layer.bn.moving_variance.assign(np.linspace(0.5, 2, 6).astype("float32"))
    x = random_images((1, 10, 10, 4))

    tflite_model = convert_builtins_only(model)

    assert op_names(tflite_model) == expected_ops
    np.testing.assert_allclose(run_tflite(tflite_model, x)[0], keras.ops.convert_to_numpy(model(x)), atol=1e-5)
