"""Explicit padding against TensorFlow's own conv with explicit paddings (TensorFlow backend only)."""

import pytest

from kerascnn import layers
from tests.helpers import assert_close, random_images

tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize(
    "padding,strides,dilation",
    [
        (1, 1, 1),
        (2, 2, 1),
        ((0, 2), (1, 2), 1),
        (((0, 2), (1, 0)), 1, 1),
        (((3, 1), (0, 2)), 2, 1),
        (((2, 2), (1, 3)), 1, 2),
    ],
)
def test_explicit_padding_matches_tf_nn_conv2d(padding, strides, dilation):
    x = random_images((2, 9, 10, 3))
    conv = layers.Conv2D(5, 3, strides=strides, padding=padding, dilation_rate=dilation, use_bias=False)
    y = conv(x)
    (top, bottom), (left, right) = conv.padding
    expected = tf.nn.conv2d(
        x,
        conv.kernel.value,
        strides=(1, *conv.strides, 1),
        padding=[[0, 0], [top, bottom], [left, right], [0, 0]],
        dilations=(1, *conv.dilation_rate, 1),
    )
    assert_close(y, expected, atol=1e-5)


def training_op_types(dtype="float32"):
    block = layers.ConvBNAct(4, 3, dtype=dtype)
    block.build((2, 6, 6, 3))
    graph = tf.function(lambda x: block(x, training=True)).get_concrete_function(tf.TensorSpec((2, 6, 6, 3))).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("setting,onednn", [("auto", True), ("auto", False), (True, False), (False, True)])
def test_conv_bn_act_trains_with_the_fused_batch_norm_kernel_where_chosen(setting, onednn, monkeypatch):
    """With `fused_batch_norm` on, the training graph of ConvBNAct holds FusedBatchNormV3 (one kernel for
    statistics and normalization) and no separate moments; "auto" chooses it when TensorFlow sees a GPU or runs its
    oneDNN CPU kernels (float32 only: a bfloat16 block keeps Keras's layer on a CPU)."""
    import keras

    from kerascnn.layers import blocks

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the fused kernel is the TensorFlow backend's")
    monkeypatch.setattr(layers.ConvBNAct, "fused_batch_norm", setting)
    monkeypatch.setattr(blocks, "onednn_enabled", lambda: onednn)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    fused = setting is True or (setting == "auto" and (gpu or onednn))
    kinds = training_op_types()
    assert ("FusedBatchNormV3" in kinds) == fused
    assert ("Mean" in kinds) == (not fused)
    if setting == "auto" and not gpu:
        assert "FusedBatchNormV3" not in training_op_types("mixed_bfloat16")


def test_onednn_is_on_in_the_tests():
    """tests/conftest.py sets TF_ENABLE_ONEDNN_OPTS=1 as `import kerascnn` does, so the default path is tested."""
    from kerascnn.layers.blocks import onednn_enabled

    assert onednn_enabled()
