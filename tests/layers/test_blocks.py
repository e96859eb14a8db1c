import keras
import numpy as np
import pytest

from kerascnn import layers
from tests.helpers import assert_close, random_images
from tests.oracle import corr2d

pytestmark = pytest.mark.backend_portable


# the fused kernel is TensorFlow's: on the other backends ConvBNAct always computes with Keras's layer
FUSED = [False, True] if keras.backend.backend() == "tensorflow" else [False]


@pytest.fixture(params=FUSED, ids=["keras", "fused"][: len(FUSED)])
def fused(request, monkeypatch):
    """Each training test runs with Keras's BatchNormalization and, on TensorFlow, with its fused kernel forced on
    (which "auto" picks depends on the machine: tests/layers/test_tf_reference.py)."""
    monkeypatch.setattr(layers.ConvBNAct, "fused_batch_norm", request.param)
    return request.param


def reference_block(x_shape, filters, **conv_kwargs):
    inputs = keras.Input(x_shape[1:])
    h = keras.layers.Conv2D(filters, 3, use_bias=False, **conv_kwargs)(inputs)
    h = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)(h)
    return keras.Model(inputs, keras.layers.ReLU()(h))


@pytest.mark.parametrize(
    "conv_kwargs",
    [
        dict(padding="same"),
        dict(padding="valid", strides=2),
        dict(padding="same", groups=4),
        dict(padding="same", dilation_rate=2),
        dict(padding="valid", dilation_rate=2, groups=4),
    ],
)
def test_matches_conv_bn_relu_in_training_and_inference(conv_kwargs, fused):
    x = random_images((4, 8, 8, 4))
    block = layers.ConvBNAct(8, 3, bn_momentum=0.9, **conv_kwargs)
    block.build(x.shape)
    # non-trivial BN state so inference mode is really tested
    rng = np.random.default_rng(2)
    block.bn.gamma.assign(rng.uniform(0.5, 2, 8).astype("float32"))
    block.bn.beta.assign(rng.standard_normal(8).astype("float32"))
    block.bn.moving_mean.assign(rng.standard_normal(8).astype("float32"))
    block.bn.moving_variance.assign(rng.uniform(0.5, 2, 8).astype("float32"))
    reference = reference_block(x.shape, 8, **conv_kwargs)
    reference.set_weights(block.get_weights())

    assert_close(block(x, training=False), reference(x, training=False), atol=1e-5)
    assert_close(block(x, training=True), reference(x, training=True), atol=1e-5)
    # the training call updated the moving statistics the same way
    for ours, theirs in zip(block.get_weights(), reference.get_weights()):
        assert_close(ours, theirs, atol=1e-5)
    assert not np.allclose(keras.ops.convert_to_numpy(block.bn.moving_mean), 0.0)


def with_bn_state(block, seed=3):
    rng = np.random.default_rng(seed)
    filters = block.conv.filters
    block.bn.gamma.assign(rng.uniform(0.5, 2, filters).astype("float32"))
    block.bn.beta.assign(rng.standard_normal(filters).astype("float32"))
    block.bn.moving_mean.assign(rng.standard_normal(filters).astype("float32"))
    block.bn.moving_variance.assign(rng.uniform(0.5, 2, filters).astype("float32"))
    return block


def test_inference_is_bn_folded_into_the_convolution():
    x = random_images((2, 7, 7, 3))
    block = layers.ConvBNAct(5, 3, activation=None)
    block.build(x.shape)
    with_bn_state(block)
    kernel, gamma, beta, mean, variance = block.get_weights()
    scale = gamma / np.sqrt(variance + block.bn_epsilon)
    expected = corr2d(x, kernel * scale, beta - mean * scale, pads=((1, 1), (1, 1)))
    assert_close(block(x), expected, atol=1e-5)
    assert_close(block.folded_conv(x), expected, atol=1e-5)


def test_frozen_bn_uses_the_running_statistics_in_training(fused):
    x = random_images((4, 6, 6, 2))
    block = layers.ConvBNAct(3, 3)
    block.build(x.shape)
    with_bn_state(block)
    block.bn.trainable = False
    before = block.get_weights()
    assert_close(block(x, training=True), block(x, training=False), atol=1e-6)
    for ours, theirs in zip(block.get_weights(), before):
        assert_close(ours, theirs, atol=0)


def test_mixed_precision_inference_follows_float32():
    x = random_images((2, 8, 8, 3))
    block = layers.ConvBNAct(4, 3, dilation_rate=2)
    block.build(x.shape)
    with_bn_state(block)
    mixed = layers.ConvBNAct(4, 3, dilation_rate=2, dtype="mixed_bfloat16")
    mixed.build(x.shape)
    mixed.set_weights(block.get_weights())
    y = mixed(x)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert_close(keras.ops.cast(y, "float32"), block(x), atol=0.1)


def test_conv_has_no_bias_and_bn_owns_scale_and_shift():
    block = layers.ConvBNAct(6, 3, name="block")
    block.build((None, 8, 8, 3))
    shapes = {w.path: tuple(w.shape) for w in block.weights}
    assert shapes == {
        "block/conv/kernel": (3, 3, 3, 6),
        "block/bn/gamma": (6,),
        "block/bn/beta": (6,),
        "block/bn/moving_mean": (6,),
        "block/bn/moving_variance": (6,),
    }


def test_activation_comes_after_bn():
    x = random_images((4, 6, 6, 2))
    linear = layers.ConvBNAct(3, 3, activation=None)
    y = keras.ops.convert_to_numpy(linear(x, training=True))
    assert y.min() < 0  # BN output is centred, so without activation it has negatives
    relu = layers.ConvBNAct(3, 3)
    relu.build(x.shape)
    relu.set_weights(linear.get_weights())
    assert_close(relu(x, training=True), np.maximum(y, 0), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(bn_momentum=1.0), "bn_momentum"),
        (dict(bn_epsilon=0), "bn_epsilon"),
        (dict(groups=3), "groups"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.ConvBNAct(8, 3, **kwargs)


def test_config_round_trip():
    block = layers.ConvBNAct(
        8, 3, strides=2, padding=((1, 0), (1, 0)), groups=2, activation="swish", bn_momentum=0.9, bn_epsilon=1e-5
    )
    clone = layers.ConvBNAct.from_config(block.get_config())
    assert clone.get_config() == block.get_config()


@pytest.mark.parametrize("conv_kwargs", [dict(padding="same"), dict(padding="valid", strides=2, groups=4)])
def test_training_steps_match_keras_batch_normalization(conv_kwargs, fused):
    """Three compiled SGD steps (graph mode on TensorFlow, where BN is the fused kernel): the gradients reach the
    same kernel, gamma and beta, and the moving statistics follow Keras's BatchNormalization (biased variance)."""
    x = random_images((6, 8, 8, 4))
    y = random_images((6, 8, 8, 8) if conv_kwargs.get("strides", 1) == 1 else (6, 3, 3, 8), seed=1)
    inputs = keras.Input(x.shape[1:])
    ours = keras.Model(inputs, layers.ConvBNAct(8, 3, bn_momentum=0.9, **conv_kwargs)(inputs))
    reference = reference_block(x.shape, 8, **conv_kwargs)
    reference.set_weights(ours.get_weights())
    for model in (ours, reference):
        model.compile(keras.optimizers.SGD(0.5), "mse")
        for step in range(3):
            model.train_on_batch(x[step:], y[step:])
    for a, b in zip(ours.get_weights(), reference.get_weights()):
        assert_close(a, b, atol=2e-5)
    moving_variance = keras.ops.convert_to_numpy(ours.layers[1].bn.moving_variance)
    assert not np.allclose(moving_variance, 1.0)


def test_small_epsilon_matches_keras(fused):
    """Epsilons below the fused kernel's minimum (1.001e-5) still normalize with the epsilon asked for."""
    x = random_images((4, 6, 6, 2)) * 1e-3  # variance ~1e-6: epsilon matters
    block = layers.ConvBNAct(3, 3, activation=None, bn_epsilon=1e-7)
    block.build(x.shape)
    reference = keras.layers.BatchNormalization(epsilon=1e-7)
    h = block.conv(x)
    reference.build(h.shape)
    assert_close(block(x, training=True), reference(h, training=True), atol=1e-4)


def test_mixed_precision_training_follows_float32(fused):
    x = random_images((4, 8, 8, 3))
    block = layers.ConvBNAct(4, 3, bn_momentum=0.5)
    block.build(x.shape)
    with_bn_state(block)
    mixed = layers.ConvBNAct(4, 3, bn_momentum=0.5, dtype="mixed_bfloat16")
    mixed.build(x.shape)
    mixed.set_weights(block.get_weights())
    y = mixed(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert_close(keras.ops.cast(y, "float32"), block(x, training=True), atol=0.1)
    assert keras.backend.standardize_dtype(mixed.bn.moving_variance.dtype) == "float32"
    for ours, theirs in zip(mixed.get_weights(), block.get_weights()):  # the moving statistics moved alike
        assert_close(ours, theirs, atol=0.05)
