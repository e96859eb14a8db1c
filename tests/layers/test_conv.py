import itertools

import keras
import numpy as np
import pytest

from kerascnn import layers
from kerascnn.layers import conv_output_size
from tests.helpers import assert_close, copy_weights, random_images
from tests.oracle import corr2d

pytestmark = pytest.mark.backend_portable


def conv_pair(in_shape, **kwargs):
    """Our Conv2D and keras.layers.Conv2D with the same arguments and weights, both built."""
    ours = layers.Conv2D(**kwargs)
    ours.build(in_shape)
    ours.bias.assign(np.random.default_rng(1).standard_normal(ours.bias.shape).astype("float32"))
    reference = keras.layers.Conv2D(**kwargs)
    reference.build(in_shape)
    copy_weights(ours, reference)
    return ours, reference


@pytest.mark.parametrize(
    "padding,strides,dilation,groups,kernel",
    [
        ("same", 1, 1, 1, 3),
        ("valid", 1, 1, 1, 3),
        ("same", 2, 1, 1, 3),
        ("valid", 2, 1, 1, (3, 2)),
        ("same", (1, 2), 1, 1, 4),
        ("same", 1, 2, 1, 3),
        ("valid", 1, (2, 3), 1, 3),
        ("same", 1, 1, 2, 3),
        ("valid", 2, 1, 4, 3),
        ("same", 1, 1, 1, 1),
        ("same", 1, 2, 4, 3),  # depthwise (groups == C) with dilation
        ("valid", 1, (3, 2), 4, 3),
    ],
)
def test_matches_keras_conv2d(padding, strides, dilation, groups, kernel):
    x = random_images((2, 11, 10, 4))
    ours, reference = conv_pair(
        x.shape, filters=8, kernel_size=kernel, strides=strides, padding=padding, dilation_rate=dilation, groups=groups
    )
    assert_close(ours(x), reference(x), atol=1e-5)


@pytest.mark.parametrize("multiplier,strides,padding", [(1, 1, "same"), (2, 2, "valid"), (3, 1, ((1, 0), (2, 1)))])
def test_depthwise_matches_keras_depthwise_conv2d(multiplier, strides, padding):
    x = random_images((2, 9, 9, 4))
    ours = layers.Conv2D(4 * multiplier, 3, strides=strides, padding=padding, groups=4)
    ours.build(x.shape)
    assert ours.is_depthwise
    pads = padding if not isinstance(padding, str) else ((0, 0), (0, 0))
    reference = keras.layers.DepthwiseConv2D(
        3, strides=strides, depth_multiplier=multiplier, padding=padding if isinstance(padding, str) else "valid"
    )
    reference.build((2, 9 + sum(pads[0]), 9 + sum(pads[1]), 4))
    kernel, bias = ours.get_weights()
    reference.set_weights([kernel.reshape(3, 3, 4, multiplier), bias])
    assert_close(ours(x), reference(np.pad(x, ((0, 0), *pads, (0, 0)))), atol=1e-5)


@pytest.mark.parametrize(
    "padding,strides,dilation,groups",
    [
        (1, 1, 1, 1),
        (2, 2, 1, 1),
        ((1, 2), (2, 1), 1, 2),
        (((0, 2), (1, 0)), 1, 1, 1),
        (((2, 1), (0, 3)), 2, 1, 4),
        (((1, 1), (3, 3)), 1, 3, 1),
        (((1, 1), (1, 1)), 1, 1, 1),  # "same"-equivalent: runs as "same"
        (((0, 1), (0, 1)), 2, 1, 1),  # TensorFlow's "same" for stride 2 on an even size
        (((2, 0), (1, 2)), 1, 2, 4),  # depthwise with dilation and asymmetric padding
    ],
)
def test_explicit_padding_matches_the_loop_oracle(padding, strides, dilation, groups):
    x = random_images((2, 8, 8, 4))
    conv = layers.Conv2D(8, 3, strides=strides, padding=padding, dilation_rate=dilation, groups=groups)
    y = conv(x)
    kernel, bias = conv.get_weights()
    expected = corr2d(x, kernel, bias, conv.strides, conv.padding, conv.dilation_rate, groups)
    assert_close(y, expected, atol=1e-5)


def test_bias_is_added_before_the_activation():
    x = random_images((2, 6, 6, 3))
    conv = layers.Conv2D(4, 3, padding=1, activation="relu", bias_initializer=keras.initializers.Constant(-0.5))
    y = conv(x)
    kernel, bias = conv.get_weights()
    expected = np.maximum(corr2d(x, kernel, bias, pads=((1, 1), (1, 1))), 0.0)  # relu(X * V + u)
    assert_close(y, expected, atol=1e-5)


@pytest.mark.parametrize(
    "channels,filters,groups,depthwise",
    [
        (1, 8, 1, False),  # one input channel: kernel (3, 3, 1, 8) but groups == 1, an ordinary convolution
        (4, 8, 2, False),  # grouped, 2 channels per group
        (4, 8, 4, True),
        (4, 4, 4, True),
    ],
)
def test_is_depthwise_means_one_channel_per_group(channels, filters, groups, depthwise):
    conv = layers.Conv2D(filters, 3, groups=groups)
    conv.build((1, 8, 8, channels))
    assert conv.is_depthwise is depthwise


def test_one_by_one_kernel_mixes_channels_per_pixel():
    x = random_images((2, 5, 6, 3))
    conv = layers.Conv2D(4, 1)
    y = keras.ops.convert_to_numpy(conv(x))
    kernel, bias = conv.get_weights()
    assert_close(y, x @ kernel[0, 0] + bias, atol=1e-5)


SHAPE_GRID = [
    (n, k, p, s, d)
    for n, k, p, s, d in itertools.product((5, 8), (1, 2, 3), (0, 1, 2), (1, 2, 3), (1, 2))
    if not (s > 1 and d > 1) and n + 2 * p >= d * (k - 1) + 1
]


@pytest.mark.parametrize("n,k,p,s,d", SHAPE_GRID)
def test_output_shape_is_the_formula_symbolic_and_eager(n, k, p, s, d):
    expected = conv_output_size(n, k, 2 * p, s, d)
    conv = layers.Conv2D(3, k, strides=s, padding=p, dilation_rate=d)
    symbolic = conv(keras.Input((n, n + 1, 2)))
    eager = conv(random_images((1, n, n + 1, 2)))
    assert tuple(symbolic.shape) == (None, expected, conv_output_size(n + 1, k, 2 * p, s, d), 3)
    assert tuple(eager.shape) == (1, *symbolic.shape[1:])
    assert conv.compute_output_shape((1, n, n + 1, 2)) == tuple(eager.shape)


@pytest.mark.parametrize(
    "padding,strides,dilation",
    [
        (((0, 2), (1, 0)), 1, 1),
        (((3, 0), (0, 1)), 2, 1),
        (((1, 2), (2, 0)), 1, 2),
    ],
)
def test_asymmetric_padding_output_shape_symbolic_and_eager(padding, strides, dilation):
    (top, bottom), (left, right) = padding
    conv = layers.Conv2D(3, 3, strides=strides, padding=padding, dilation_rate=dilation)
    expected = (
        conv_output_size(9, 3, top + bottom, strides, dilation),
        conv_output_size(8, 3, left + right, strides, dilation),
    )
    assert tuple(conv(keras.Input((9, 8, 2))).shape) == (None, *expected, 3)
    assert tuple(conv(random_images((1, 9, 8, 2))).shape) == (1, *expected, 3)


@pytest.mark.parametrize("n,s", [(7, 1), (8, 2), (9, 2), (10, 3)])
def test_same_padding_gives_ceil_n_over_s(n, s):
    y = layers.Conv2D(2, 3, strides=s, padding="same")(random_images((1, n, n, 1)))
    assert y.shape[1] == -(-n // s)


def test_shift_of_the_input_shifts_the_output():
    """Translation equivariance: away from the borders, conv(shift(x)) == shift(conv(x))."""
    x = random_images((1, 16, 16, 3))
    conv = layers.Conv2D(5, 3, padding="same")
    shift = (3, -2)
    y = keras.ops.convert_to_numpy(conv(x))
    y_shifted_input = keras.ops.convert_to_numpy(conv(np.roll(x, shift, axis=(1, 2))))
    expected = np.roll(y, shift, axis=(1, 2))
    inner = (slice(None), slice(5, -5), slice(5, -5))  # border cells see the wrap-around and the padding
    assert_close(y_shifted_input[inner], expected[inner], atol=1e-5)
    assert not np.allclose(y_shifted_input, y, atol=1e-3)  # the output really moved


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(filters=0, kernel_size=3), "filters"),
        (dict(filters=4, kernel_size=0), "kernel_size"),
        (dict(filters=4, kernel_size=(3, -1)), "kernel_size"),
        (dict(filters=4, kernel_size=3, strides=0), "strides"),
        (dict(filters=4, kernel_size=3, dilation_rate=0), "dilation_rate"),
        (dict(filters=4, kernel_size=3, padding=-1), "padding"),
        (dict(filters=4, kernel_size=3, padding="full"), "padding"),
        (dict(filters=4, kernel_size=3, groups=0), "groups"),
        (dict(filters=6, kernel_size=3, groups=4), "divisible by `groups`"),
        (dict(filters=4, kernel_size=3, strides=2, dilation_rate=2), "dilation_rate"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.Conv2D(**kwargs)


def test_input_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match="input channels must be divisible by `groups`.*groups=2"):
        layers.Conv2D(4, 3, groups=2)(random_images((1, 8, 8, 3)))


def test_window_larger_than_padded_input():
    with pytest.raises(ValueError, match="does not fit"):
        layers.Conv2D(4, 5, padding=1)(random_images((1, 2, 8, 3)))


@pytest.mark.parametrize("shape", [(8, 8, 3), (1, 1, 8, 8, 3)])
def test_input_must_be_4d(shape):
    with pytest.raises(ValueError, match="4-D input"):
        layers.Conv2D(4, 3)(keras.Input(shape[1:], batch_size=shape[0]) if len(shape) == 5 else np.zeros(shape))


def test_config_round_trip():
    conv = layers.Conv2D(
        6,
        (3, 2),
        strides=(2, 1),
        padding=((0, 1), (2, 1)),
        groups=2,
        use_bias=False,
        activation="relu",
        kernel_regularizer="l2",
        name="c",
    )
    clone = layers.Conv2D.from_config(conv.get_config())
    assert clone.get_config() == conv.get_config()
    assert clone.padding == ((0, 1), (2, 1))
