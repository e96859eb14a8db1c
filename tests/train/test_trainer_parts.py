"""The trainer's parts that need no training: its `Data` record, --jit-compile, the settings compared across
processes."""

import dataclasses
import types

import keras
import numpy as np
import pytest

from kerascnn.train import building, feeding, resolve, trainer
from kerascnn.train.__main__ import parser
from kerascnn.train.config import TrainConfig, flag

DATASET = types.SimpleNamespace(input_shape=(28, 28, 1), labels=[str(i) for i in range(10)])
VAL = dict(x_val=np.zeros((0, 28, 28, 1), np.uint8), y_val=np.zeros(0, int))


def test_data_is_built_by_keyword_and_holds_the_streamed_dataset_once():
    fields = dataclasses.fields(feeding.Data)
    assert all(field.kw_only for field in fields) and "stream" not in {field.name for field in fields}
    streamed = feeding.Data(dataset=DATASET, **VAL, input_path="stream", test_source="a held-out 1/12")
    assert streamed.stream is DATASET and streamed.x_train is None
    assert feeding.Data(dataset=DATASET, **VAL, test_source="the test split").stream is None  # in memory
    with pytest.raises(TypeError):
        feeding.Data(DATASET, None, None, *VAL.values(), None, None, "memory", "the test split")


def fake_gpu(monkeypatch):
    """TensorFlow reports a GPU (none is used: the model is only compiled)."""
    import tensorflow as tf

    real = tf.config.list_physical_devices

    def devices(device_type=None):
        found = list(real(device_type))
        if device_type in (None, "GPU"):
            found.append(tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU"))
        return found

    monkeypatch.setattr(tf.config, "list_physical_devices", devices)


def jit_of(setting: str, **options) -> bool:
    config = resolve(dict(model="lenet5", jit_compile=setting, **options))
    train_model, _ = building.build_model(config, feeding.Data(dataset=DATASET, **VAL, test_source=""), 10)
    return train_model.jit_compile


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="Keras's auto rule for TensorFlow on a CPU")
def test_jit_compile_auto_is_keras_own_rule(monkeypatch):
    assert jit_of("auto") is False  # TensorFlow on a CPU: off (README, Benchmarks: ~40x slower here)
    assert jit_of("on") is True and jit_of("off") is False
    fake_gpu(monkeypatch)
    assert jit_of("auto") is True
    # a layer that says XLA cannot compile it (Keras's RandomZoom): Keras's auto turns XLA off, where a rule of our
    # own ("TensorFlow on a GPU: on") would not
    monkeypatch.setattr(building, "RandomCropFlip", lambda *args, **kwargs: keras.layers.RandomZoom(0.1))
    assert jit_of("auto", augment_flip=True) is False


def test_every_flag_named_in_messages_is_the_cli_flag():
    flags = {action.dest: action.option_strings for action in parser()._actions}
    for field in dataclasses.fields(TrainConfig):
        if field.name in flags:
            assert flag(field.name) in flags[field.name], field.name


def test_the_settings_compared_across_processes_leave_out_only_what_each_process_has_its_own_of():
    config = resolve(dict(model="vgg", seed=3, coordinator="127.0.0.1:1", num_processes=2, process_id=1))
    settings = trainer.cluster_settings(config, {"epoch": 4})
    assert settings["--seed"] == 3 and settings["--model"] == "vgg"
    assert "--num-processes" not in settings  # None when taken from the environment: the rendezvous sends the count
    assert settings["--resume (epochs done)"] == 5 and settings["Keras"] == keras.__version__
    assert not {"--process-id", "--coordinator", "--startup-timeout", "--out", "--overwrite"} & set(settings)
    assert "--epochs" in settings and "--input" in settings and "--data-dir" in settings
