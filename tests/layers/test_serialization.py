import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from kerascnn import layers
from tests.helpers import random_images

pytestmark = pytest.mark.backend_portable


def every_layer_model():
    inputs = keras.Input((16, 16, 3))
    h = layers.Conv2D(8, 3, padding=((1, 0), (2, 1)), activation="relu", name="conv_explicit")(inputs)
    h = layers.ConvBNAct(8, 3, strides=2, name="conv_bn_act")(h)
    h = layers.Conv2D(16, 3, padding="same", groups=8, name="depthwise")(h)
    h = layers.MaxPool2D(3, 1, padding=1, name="max_pool")(h)
    h = layers.AvgPool2D(2, padding="same", name="avg_pool")(h)
    side = layers.GlobalMaxPool2D(keepdims=True, name="global_max")(h)
    h = layers.Conv2D(16, 1, name="channel_mix")(keras.ops.add(h, side))
    probs = layers.GAPHead(10, dropout=0.1, name="head")(h)
    pooled = layers.GlobalAvgPool2D(name="global_avg")(h)
    return keras.Model(inputs, [probs, pooled])


def test_keras_file_round_trip_in_a_fresh_process(tmp_path):
    model = every_layer_model()
    x = random_images((2, 16, 16, 3))
    # move BN's statistics away from their initial values so loading them is really tested
    model.get_layer("conv_bn_act").bn.moving_mean.assign(np.linspace(-1, 1, 8).astype("float32"))
    expected = [keras.ops.convert_to_numpy(y) for y in model(x)]
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, probs=expected[0], pooled=expected[1])

    script = textwrap.dedent(f"""
        import keras, numpy as np
        import kerascnn  # registers the layers
        model = keras.saving.load_model({str(tmp_path / "model.keras")!r})
        data = np.load({str(tmp_path / "data.npz")!r})
        probs, pooled = (keras.ops.convert_to_numpy(y) for y in model(data["x"]))
        np.testing.assert_array_equal(probs, data["probs"])
        np.testing.assert_array_equal(pooled, data["pooled"])
        assert type(model.get_layer("head")).__module__ == "kerascnn.layers.heads"
        print("OK", keras.backend.backend())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith(f"OK {keras.backend.backend()}")
