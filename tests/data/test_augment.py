import keras
import numpy as np
import pytest

from kerascnn.data import RandomCropFlip, RandomErasing
from tests.helpers import random_images

pytestmark = pytest.mark.backend_portable


def candidates(image, padding, flip):
    """Every crop of the zero-padded image (and its mirror) that RandomCropFlip may return."""
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    h, w = image.shape[:2]
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[dy : dy + h, dx : dx + w]
            yield crop
            if flip:
                yield crop[:, ::-1]


@pytest.mark.parametrize("padding,flip", [(2, True), (3, False), (0, True)])
def test_each_output_is_a_padded_crop_or_its_mirror(padding, flip):
    x = random_images((8, 10, 9, 2))
    y = keras.ops.convert_to_numpy(RandomCropFlip(padding, flip, seed=1)(x, training=True))
    assert y.shape == x.shape
    for image, out in zip(x, y):
        assert any(np.array_equal(out, c) for c in candidates(image, padding, flip))
    assert not np.array_equal(y, x)  # something moved


def test_identity_outside_training():
    x = random_images((4, 8, 8, 1))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(RandomCropFlip(2)(x)), x)


# XLA compiles the train step on TensorFlow and JAX; PyTorch's jit_compile would be torch.compile (about 25 s of
# compilation per test here), which kerascnn's trainer never picks itself ("auto" is off there): the PyTorch pass
# runs the same fit eagerly
XLA = keras.backend.backend() != "torch"


def test_compiles_inside_a_jitted_train_step():
    """The layer allows XLA (Keras's random preprocessing layers turn jit_compile off)."""
    inputs = keras.Input((8, 8, 1))
    h = RandomCropFlip(2, seed=0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(h)))
    model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=XLA)
    assert model.jit_compile == XLA
    history = model.fit(random_images((8, 8, 8, 1)), np.arange(8) % 2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_bad_padding():
    with pytest.raises(ValueError, match="padding"):
        RandomCropFlip(-1)


def erased_rectangle(image, out):
    """(rows, cols) slices of the one rectangle where `out` is 0 and `image` is not, None when they are equal;
    fails unless `out` equals `image` everywhere else."""
    changed = np.any(out != image, axis=-1)
    if not changed.any():
        return None
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    assert np.all(out[box] == 0.0)
    outside = out.copy()
    outside[box] = image[box]
    np.testing.assert_array_equal(outside, image)
    return box


def test_random_erasing_zeroes_one_rectangle_of_the_asked_size():
    x = random_images((64, 20, 16, 2)) + 10.0  # no zeros of its own
    y = keras.ops.convert_to_numpy(RandomErasing(1.0, scale=(0.1, 0.3), ratio=(0.5, 2.0), seed=3)(x, training=True))
    shapes = set()
    for image, out in zip(x, y):
        rows, cols = erased_rectangle(image, out)
        h, w = rows.stop - rows.start, cols.stop - cols.start
        # rounding each side moves the area by at most one row and one column
        assert 0.1 * 320 - h - w - 1 <= h * w <= 0.3 * 320 + h + w + 1
        assert 0.5 * w - 1 <= h <= 2.0 * w + 1
        shapes.add((rows.start, cols.start, h, w))
    assert len(shapes) > 30  # positions and sizes vary from image to image


def test_random_erasing_rate_and_seed():
    x = random_images((400, 8, 8, 1)) + 10.0
    layer = RandomErasing(0.3, seed=5)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    erased = np.mean([erased_rectangle(i, o) is not None for i, o in zip(x, y)])
    assert 0.2 < erased < 0.4
    again = keras.ops.convert_to_numpy(RandomErasing(0.3, seed=5)(x, training=True))
    np.testing.assert_array_equal(y, again)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)  # identity outside training
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(RandomErasing(0.0)(x, training=True)), x)


def test_random_erasing_compiles_with_xla_and_round_trips():
    inputs = keras.Input((8, 8, 1))
    h = RandomErasing(0.5, seed=0)(RandomCropFlip(2, seed=0)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(h)))
    model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=XLA)
    history = model.fit(random_images((8, 8, 8, 1)), np.arange(8) % 2, epochs=1, verbose=0)
    assert model.jit_compile == XLA and np.isfinite(history.history["loss"][0])
    layer = RandomErasing(0.4, scale=(0.05, 0.2), ratio=(0.5, 2.0), value=1.0, seed=7)
    assert RandomErasing.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize(
    "kwargs,match", [(dict(rate=1.5), "rate"), (dict(scale=(0.5, 0.2)), "scale"), (dict(ratio=(0, 1)), "ratio")]
)
def test_random_erasing_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomErasing(**kwargs)


def test_random_erasing_draws_the_left_edge_apart_from_the_top_edge():
    """Square images and square rectangles: the top and left edges range over the same positions, so an edge that
    reused the other's draw would put every rectangle on the diagonal."""
    x = random_images((64, 16, 16, 1)) + 10.0
    y = keras.ops.convert_to_numpy(RandomErasing(1.0, scale=(0.05, 0.2), ratio=(1.0, 1.0), seed=4)(x, training=True))
    boxes = [erased_rectangle(image, out) for image, out in zip(x, y)]
    on_diagonal = np.mean([rows.start == cols.start for rows, cols in boxes])
    assert on_diagonal < 0.5  # independent edges: about 1 / (16 - side + 1) of them
