import itertools

import keras
import numpy as np
import pytest

from kerascnn import layers
from kerascnn.layers import conv_output_size
from kerascnn.layers.padding import explicit_padding
from kerascnn.layers.pooling import real_cells
from tests.helpers import assert_close, random_images
from tests.oracle import pool2d

pytestmark = pytest.mark.backend_portable

POOLS = {"max": (layers.MaxPool2D, keras.layers.MaxPooling2D), "avg": (layers.AvgPool2D, keras.layers.AveragePooling2D)}


@pytest.mark.parametrize("mode", POOLS)
@pytest.mark.parametrize(
    "pool_size,strides,padding",
    [
        (2, None, "valid"),
        (3, 2, "valid"),
        (3, 2, "same"),
        ((2, 3), (1, 2), "same"),
        (3, 1, "same"),
    ],
)
def test_matches_keras_pooling(mode, pool_size, strides, padding):
    ours, reference = POOLS[mode]
    x = random_images((2, 9, 8, 3))
    pool = ours(pool_size, strides, padding)
    if mode == "avg" and padding == "same" and keras.backend.backend() == "torch":
        # Keras's PyTorch backend averages repeated edge values for uneven padding; use TensorFlow's rule.
        pads = explicit_padding("same", x.shape[1:3], pool.pool_size, pool.strides)
        expected = pool2d(x, pool.pool_size, pool.strides, pads, mode)
    else:
        expected = reference(pool_size, strides, padding)(x)
    assert_close(pool(x), expected, atol=1e-5)


@pytest.mark.parametrize("mode", POOLS)
@pytest.mark.parametrize(
    "pool_size,strides,padding",
    [
        (3, 2, 1),
        (3, 1, ((0, 2), (1, 0))),
        ((2, 3), 2, (1, 2)),
        (3, 3, ((2, 0), (0, 2))),
        (3, 1, 1),
    ],
)
def test_padded_cells_never_win_and_are_not_averaged(mode, pool_size, strides, padding):
    # all-negative input: a zero-padded max or a mean counting padded zeros would differ from the oracle
    x = -np.abs(random_images((2, 7, 8, 3))) - 1.0
    pool = POOLS[mode][0](pool_size, strides, padding)
    expected = pool2d(
        x, pool.pool_size, pool.strides, pool.padding if not isinstance(pool.padding, str) else ((0, 0), (0, 0)), mode
    )
    assert_close(pool(x), expected, atol=1e-5)


@pytest.mark.parametrize("mode", POOLS)
@pytest.mark.parametrize(
    "pool_size,strides,pads",
    [
        (3, 2, ((0, 1), (0, 1))),  # TensorFlow's "same" for these shapes: the odd cell after
        (4, 1, ((1, 2), (1, 2))),
        (3, 1, ((1, 1), (1, 1))),
    ],
)
def test_same_padding_excludes_padded_cells(mode, pool_size, strides, pads):
    x = -np.abs(random_images((1, 8, 8, 2))) - 1.0
    expected = pool2d(x, (pool_size,) * 2, (strides,) * 2, pads, mode)
    assert_close(POOLS[mode][0](pool_size, strides, "same")(x), expected, atol=1e-5)


@pytest.mark.parametrize("mode", POOLS)
@pytest.mark.parametrize(
    "n,k,p,s", [(n, k, p, s) for n, k, p, s in itertools.product((5, 8), (1, 2, 3), (0, 1, 2), (1, 2, 3)) if p < k]
)
def test_output_shape_is_the_formula_symbolic_and_eager(mode, n, k, p, s):
    pool = POOLS[mode][0](k, s, p)
    symbolic = pool(keras.Input((n, n + 2, 2)))
    eager = pool(random_images((1, n, n + 2, 2)))
    assert tuple(symbolic.shape) == (None, conv_output_size(n, k, 2 * p, s), conv_output_size(n + 2, k, 2 * p, s), 2)
    assert tuple(eager.shape) == (1, *symbolic.shape[1:])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(pool_size=0), "pool_size"),
        (dict(pool_size=2, strides=0), "strides"),
        (dict(pool_size=2, padding=-1), "padding"),
        (dict(pool_size=2, padding=2), "smaller than `pool_size`"),
    ],
)
@pytest.mark.parametrize("mode", POOLS)
def test_bad_arguments_are_named(mode, kwargs, match):
    with pytest.raises(ValueError, match=match):
        POOLS[mode][0](**kwargs)


def test_window_larger_than_input():
    with pytest.raises(ValueError, match="does not fit"):
        layers.MaxPool2D(3)(keras.Input((2, 8, 1)))


@pytest.mark.parametrize("layer", [layers.MaxPool2D(2), layers.GlobalAvgPool2D(), layers.GlobalMaxPool2D()])
def test_input_must_be_4d(layer):
    with pytest.raises(ValueError, match="4-D input"):
        layer(keras.Input((8, 8)))


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pools_match_keras(keepdims):
    x = random_images((2, 5, 7, 3))
    assert_close(
        layers.GlobalAvgPool2D(keepdims)(x), keras.layers.GlobalAveragePooling2D(keepdims=keepdims)(x), atol=1e-6
    )
    assert_close(layers.GlobalMaxPool2D(keepdims)(x), keras.layers.GlobalMaxPooling2D(keepdims=keepdims)(x), atol=1e-6)
    symbolic = layers.GlobalAvgPool2D(keepdims)(keras.Input((5, 7, 3)))
    assert tuple(symbolic.shape) == ((None, 1, 1, 3) if keepdims else (None, 3))


def test_config_round_trip():
    for pool in (
        layers.MaxPool2D(3, 2, ((0, 1), (2, 1))),
        layers.AvgPool2D(2, padding="same"),
        layers.GlobalMaxPool2D(keepdims=True),
    ):
        assert type(pool).from_config(pool.get_config()).get_config() == pool.get_config()


@pytest.mark.parametrize("n,k,s,pads", [(7, 3, 2, (1, 1)), (8, 3, 1, (0, 2)), (5, 4, 3, (3, 2)), (6, 2, 2, (0, 0))])
def test_real_cells_counts_each_window(n, k, s, pads):
    padded = np.pad(np.ones(n), pads)
    expected = [padded[start : start + k].sum() for start in range(0, len(padded) - k + 1, s)]
    np.testing.assert_array_equal(real_cells(n, k, s, pads), expected)


def test_explicit_padding_with_unknown_sizes_still_excludes_padded_cells():
    # traced with unknown height and width, the real-cell counts are computed in the graph, not as a constant
    if keras.backend.backend() != "tensorflow":
        pytest.skip("traces a tf.function with unknown spatial sizes")
    import tensorflow as tf

    pool = layers.AvgPool2D(3, 2, padding=1)
    traced = tf.function(pool, input_signature=[tf.TensorSpec((None, None, None, 2), tf.float32)])
    x = -np.abs(random_images((1, 7, 8, 2))) - 1.0
    assert_close(traced(x), pool2d(x, (3, 3), (2, 2), ((1, 1), (1, 1)), "avg"), atol=1e-5)
