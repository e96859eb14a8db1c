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

DILATED = ["SPACE_TO_BATCH_ND", "CONV_2D", "BATCH_TO_SPACE_ND"]
DILATED_DEPTHWISE = ["SPACE_TO_BATCH_ND", "DEPTHWISE_CONV_2D", "BATCH_TO_SPACE_ND"]

# name: (layer factory, operators with a dynamic batch size, as kerascnn.export converts)
CASES = {
    "conv_same": (lambda: layers.Conv2D(6, 3, padding="same", activation="relu"), ["CONV_2D"]),
    "conv_explicit_same_equivalent": (lambda: layers.Conv2D(6, 3, padding=1), ["CONV_2D"]),
    "conv_explicit_stride2_same_equivalent": (lambda: layers.Conv2D(6, 3, 2, padding=((0, 1), (0, 1))), ["CONV_2D"]),
    "conv_explicit_asymmetric": (lambda: layers.Conv2D(6, 3, padding=((0, 2), (1, 0))), ["PAD", "CONV_2D"]),
    "conv_1x1_channel_mixing": (lambda: layers.Conv2D(6, 1), ["CONV_2D"]),
    "conv_one_input_channel": (lambda: layers.Conv2D(6, 3), ["CONV_2D"]),
    "conv_grouped": (lambda: layers.Conv2D(6, 3, padding="same", groups=2), ["CONV_2D"]),
    "conv_depthwise": (lambda: layers.Conv2D(8, 3, padding="same", groups=4), ["DEPTHWISE_CONV_2D"]),
    # the converter fuses SPACE_TO_BATCH_ND + CONV_2D + BATCH_TO_SPACE_ND into a dilated CONV_2D only for a
    # static batch size (see BATCH_1)
    "conv_dilated": (lambda: layers.Conv2D(6, 3, padding="same", dilation_rate=2), DILATED),
    "conv_dilated_explicit": (
        lambda: layers.Conv2D(6, 3, padding=((1, 0), (2, 1)), dilation_rate=2),
        ["PAD", *DILATED],
    ),
    "conv_depthwise_dilated": (
        lambda: layers.Conv2D(4, 3, padding="same", dilation_rate=2, groups=4),
        DILATED_DEPTHWISE,
    ),
    "conv_bn_act_folded": (lambda: layers.ConvBNAct(6, 3), ["CONV_2D"]),
    "conv_bn_act_depthwise_folded": (lambda: layers.ConvBNAct(4, 3, groups=4), ["DEPTHWISE_CONV_2D"]),
    # BN's scale folds into the kernel (no MUL); its shift stays an ADD after BATCH_TO_SPACE_ND, ReLU fused
    "conv_bn_act_dilated": (lambda: layers.ConvBNAct(6, 3, dilation_rate=2), [*DILATED, "ADD"]),
    "conv_bn_act_depthwise_dilated": (
        lambda: layers.ConvBNAct(4, 3, dilation_rate=2, groups=4),
        [*DILATED_DEPTHWISE, "ADD"],
    ),
    "max_pool_same": (lambda: layers.MaxPool2D(3, 2, padding="same"), ["MAX_POOL_2D"]),
    "max_pool_explicit": (lambda: layers.MaxPool2D(3, 2, padding=1), ["PADV2", "MAX_POOL_2D"]),
    "avg_pool_valid": (lambda: layers.AvgPool2D(2), ["AVERAGE_POOL_2D"]),
    "avg_pool_same": (lambda: layers.AvgPool2D(4, 1, padding="same"), ["AVERAGE_POOL_2D"]),
    "avg_pool_explicit": (lambda: layers.AvgPool2D(3, 2, padding=1), ["PAD", "AVERAGE_POOL_2D", "MUL"]),
    "global_avg_pool": (lambda: layers.GlobalAvgPool2D(), ["MEAN"]),
    "global_max_pool": (lambda: layers.GlobalMaxPool2D(), ["REDUCE_MAX"]),
    "gap_head": (lambda: layers.GAPHead(5), ["CONV_2D", "MEAN", "SOFTMAX"]),
}
INPUT_CHANNELS = {"conv_one_input_channel": 1}  # 4 for the others

# operators where a static batch size (keras.Input(..., batch_size=1)) changes them: one dilated convolution
BATCH_1 = {
    "conv_dilated": ["CONV_2D"],
    "conv_dilated_explicit": ["PAD", "CONV_2D"],
    "conv_depthwise_dilated": ["DEPTHWISE_CONV_2D"],
    "conv_bn_act_dilated": ["CONV_2D"],
    "conv_bn_act_depthwise_dilated": ["DEPTHWISE_CONV_2D"],
}


def check_lowering(name, batch_size, expected_ops):
    layer = CASES[name][0]()
    channels = INPUT_CHANNELS.get(name, 4)
    inputs = keras.Input((10, 10, channels), batch_size=batch_size)
    model = keras.Model(inputs, layer(inputs))
    if isinstance(layer, layers.ConvBNAct):  # inference-mode BN with non-trivial statistics
        filters = layer.conv.filters
        layer.bn.gamma.assign(np.linspace(0.5, 1.5, filters).astype("float32"))
        layer.bn.beta.assign(np.linspace(-0.5, 0.5, filters).astype("float32"))
        layer.bn.moving_mean.assign(np.linspace(-1, 1, filters).astype("float32"))
        layer.bn.moving_variance.assign(np.linspace(0.5, 2, filters).astype("float32"))
    x = random_images((1, 10, 10, channels))

    tflite_model = convert_builtins_only(model)

    assert op_names(tflite_model) == expected_ops
    np.testing.assert_allclose(run_tflite(tflite_model, x)[0], keras.ops.convert_to_numpy(model(x)), atol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_lowers_to_builtin_ops_and_matches_keras(name):
    check_lowering(name, None, CASES[name][1])


@pytest.mark.parametrize("name", BATCH_1)
def test_static_batch_size_gives_one_dilated_convolution(name):
    check_lowering(name, 1, BATCH_1[name])
