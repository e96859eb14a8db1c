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


@pytest.mark.parametrize("setting", ["auto", True, False])
def test_conv_bn_act_trains_with_the_fused_batch_norm_kernel_where_chosen(setting, monkeypatch):
    """With `fused_batch_norm` on, the training graph of ConvBNAct holds FusedBatchNormV3 (one kernel for
    statistics and normalization) and no separate moments; "auto" chooses it only when TensorFlow sees a GPU."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the fused kernel is the TensorFlow backend's")
    monkeypatch.setattr(layers.ConvBNAct, "fused_batch_norm", setting)
    block = layers.ConvBNAct(4, 3)
    block.build((2, 6, 6, 3))
    graph = tf.function(lambda x: block(x, training=True)).get_concrete_function(tf.TensorSpec((2, 6, 6, 3))).graph
    kinds = {op.type for op in graph.get_operations()}
    fused = setting is True or (setting == "auto" and bool(tf.config.list_physical_devices("GPU")))
    assert ("FusedBatchNormV3" in kinds) == fused
    assert ("Mean" in kinds) == (not fused)
