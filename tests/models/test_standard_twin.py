"""kerascnn.optimize.standard: every zoo model has a Keras 3 twin of built-in layers computing the same function
(bench/train.py times the pair; kerascnn.optimize builds the tf_keras twin with the same code)."""

import keras
import numpy as np
import pytest

from kerascnn import models
from kerascnn.optimize.standard import to_keras_builtins
from tests.helpers import perturb_batch_norms, random_images


@pytest.mark.parametrize("name", models.names())
def test_builtins_twin_matches_every_zoo_model(name):
    keras.utils.set_random_seed(0)  # the same weights every run (unseeded, mobilenetv2 missed 1e-5 once in 160 values)
    x = random_images((16, 28, 28, 1))
    model = perturb_batch_norms(models.create(name))  # BN statistics and scales away from their init
    twin = to_keras_builtins(model)
    assert not [layer for layer in twin.layers if type(layer).__module__.startswith("kerascnn")]
    assert twin.count_params() == model.count_params()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(twin(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        atol=1e-5,
        rtol=1e-4,  # float32 through 50-odd layers, batch norm folded on one side (a wrong fold is off by far more)
    )
