"""Small helpers shared by the tests."""

import numpy as np


def random_images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def copy_weights(source, target):
    """Gives `target` the weights of `source` (same shapes, same order)."""
    target.set_weights(source.get_weights())


def assert_close(actual, expected, atol=1e-5):
    """assert_allclose for tensors of any backend (converted to NumPy first)."""
    import keras

    np.testing.assert_allclose(keras.ops.convert_to_numpy(actual), keras.ops.convert_to_numpy(expected), atol=atol)


def copy_run(run_dir, root):
    """A copy of the run directory `run_dir` as `root / "run"` (shared runs stay unchanged)."""
    import shutil

    shutil.copytree(run_dir, root / "run")
    return root / "run"
