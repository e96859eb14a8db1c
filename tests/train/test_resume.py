"""Resuming and checkpoints: nothing lost, nothing wrong (issue 11, "Work lost or wrong results")."""

import json
import subprocess
import sys
import types
from pathlib import Path

import keras
import numpy as np
import pytest

from kerascnn import rundir
from kerascnn.train import feeding, resolve, train
from kerascnn.train.__main__ import main as cli
from kerascnn.train.batches import DeviceEpochBatches, EpochBatches, TFEpochBatches
from kerascnn.train.checkpoint import CheckpointError, NaNGuard, ResumableCheckpoint, checkpoint_path

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(model="lenet5", limit=192, batch_size=64, tensorboard=False)


def weights(path):
    return keras.saving.load_model(path).get_weights()


def test_resume_without_augmentation(tmp_path):
    out = str(tmp_path / "run")
    train(resolve(dict(TINY, epochs=1, augment_padding=0, augment_flip=False, out=out)))
    metrics = train(resolve(dict(TINY, epochs=2, augment_padding=0, augment_flip=False, out=out, resume=True)))
    assert [h["epoch"] for h in metrics["history"]] == [0, 1]


def test_checkpoint_loads_after_import_kerascnn(tmp_path):
    out = tmp_path / "run"
    train(resolve(dict(TINY, epochs=1, out=str(out))))  # fashion_mnist: crop and flip on, RandomCropFlip inside
    [checkpoint] = (out / rundir.CHECKPOINT_DIR).glob("epoch-*.keras")
    # one fresh process: `import kerascnn` registers the classes for keras.saving, and kerascnn.load_model loads too
    script = (
        f"import keras, kerascnn; print(keras.saving.load_model({str(checkpoint)!r}).get_layer('augment')); "
        f"print(kerascnn.load_model({str(checkpoint)!r}).get_layer('augment'))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.count("RandomCropFlip") == 2, done.stderr[-2000:]


def test_resumed_run_ends_with_the_uninterrupted_weights(tmp_path, monkeypatch):
    """Crops, flips and batch order depend only on (seed, epoch): stop after epoch 2, resume, same weights."""
    settings = dict(
        model="vgg", model_options=dict(widths=(8, 16, 32)), limit=256, batch_size=32, epochs=3, tensorboard=False
    )
    train(resolve(dict(settings, out=str(tmp_path / "straight"))))

    class Killed(Exception):
        pass

    save = ResumableCheckpoint.on_epoch_end

    def save_then_die(self, epoch, logs=None):
        save(self, epoch, logs)
        if epoch == 1:
            raise Killed

    monkeypatch.setattr(ResumableCheckpoint, "on_epoch_end", save_then_die)
    with pytest.raises(Killed):
        train(resolve(dict(settings, out=str(tmp_path / "resumed"))))
    monkeypatch.undo()
    train(resolve(dict(settings, out=str(tmp_path / "resumed"), resume=True)))
    for a, b in zip(
        weights(tmp_path / "straight" / rundir.LAST_MODEL), weights(tmp_path / "resumed" / rundir.LAST_MODEL)
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_batches_depend_only_on_seed_and_epoch():
    images, labels = np.arange(10, dtype=np.float32)[:, None], np.arange(10) % 2
    first = EpochBatches(images, labels, 2, 4, seed=3)
    first.on_epoch_end()
    resumed = EpochBatches(images, labels, 2, 4, seed=3, epoch=1)
    assert len(first) == 3
    for index in range(3):
        np.testing.assert_array_equal(first[index][0], resumed[index][0])
    order = np.concatenate([first[i][0][:, 0] for i in range(3)])
    assert sorted(order) == list(range(10)) and list(order) != list(range(10))
    assert not np.array_equal(
        order, np.concatenate([EpochBatches(images, labels, 2, 4, 3)[i][0][:, 0] for i in range(3)])
    )


def test_tensorflow_batches_are_the_epoch_batches(tmp_path):
    """TFEpochBatches (the TensorFlow backend's in-memory input) gives EpochBatches' batches, the last one smaller,
    for whichever epoch its callback was told; fit runs through each epoch's batches and no further, also with
    several steps per execution (5 steps by 3 per call: an epoch that ran on into the next one would take 6)."""
    images, labels = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1), np.arange(10) % 3
    reference = EpochBatches(images, labels, 3, 4, seed=5, epoch=2)
    batches = TFEpochBatches(images, labels, 3, 4, seed=5)
    for epoch in (2, 3):
        batches.on_epoch_begin(epoch)
        got = [(x.numpy(), y.numpy()) for x, y in batches.dataset]
        assert [len(x) for x, _ in got] == [4, 4, 2]
        for index, (x, y) in enumerate(got):
            np.testing.assert_array_equal(x, reference[index][0])
            np.testing.assert_array_equal(y, reference[index][1])
        reference.on_epoch_end()

    seen = []
    inputs = keras.Input((1, 1, 1))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    model.compile("sgd", "categorical_crossentropy", steps_per_execution=3)
    images = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1)
    batches = TFEpochBatches(images, np.arange(20) % 3, 3, 4, seed=5)

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(int(model.optimizer.iterations.numpy()))

    model.fit(batches.dataset, epochs=2, callbacks=[batches, Count()], verbose=0)
    assert seen == [5, 10]


@pytest.mark.parametrize("backend,kind", [("jax", DeviceEpochBatches), ("torch", EpochBatches)])
def test_in_memory_batches_per_backend_are_the_epoch_batches(backend, kind, monkeypatch):
    """JAX gets the images uploaded once and each batch gathered on the device (jax.Array), PyTorch the NumPy
    batches; both are EpochBatches' batches for the epoch the run starts at, and then the next."""
    import jax

    images, labels = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1), np.arange(10) % 3
    data = types.SimpleNamespace(stream=None, x_train=images, y_train=labels, num_classes=3, held={},
                                 x_val=images[:0], y_val=labels[:0],
                                 dataset=types.SimpleNamespace(mean=[0.0], std=[1.0]))  # fmt: skip
    monkeypatch.setattr(feeding.keras.backend, "backend", lambda: backend)
    config = resolve(dict(TINY, batch_size=4, seed=5))
    batches, validation, steps, callbacks = feeding.fit_inputs(config, data, 4, 3, 2)  # from epoch 2
    assert type(batches) is kind and (validation, steps, callbacks) == (None, None, [])
    reference = EpochBatches(images, labels, 3, 4, seed=5, epoch=2)
    for _ in range(2):
        assert len(batches) == len(reference) == 3
        for index in range(3):
            x, y = batches[index]
            assert isinstance(x, jax.Array) == (backend == "jax")
            np.testing.assert_array_equal(np.asarray(x), reference[index][0])
            np.testing.assert_array_equal(np.asarray(y), reference[index][1])
        batches.on_epoch_end(), reference.on_epoch_end()


def test_resume_with_more_epochs_extends_the_schedule(tmp_path):
    out = str(tmp_path / "run")
    train(resolve(dict(TINY, epochs=1, out=out)))
    metrics = train(resolve(dict(TINY, epochs=3, out=out, resume=True)))
    # cosine decay over 3 epochs: at the end of epoch 2 the rate is still about a quarter of the peak
    assert metrics["history"][1]["learning_rate"] > 0.1 * 3e-3


def _tiny_checkpoint(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    guard = NaNGuard()
    checkpoint = ResumableCheckpoint(tmp_path, model, guard)
    checkpoint.set_model(model)
    return model, guard, checkpoint


def test_checkpoint_with_non_finite_weights_is_never_written(tmp_path):
    model, guard, checkpoint = _tiny_checkpoint(tmp_path)
    checkpoint.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0, "val_accuracy": 0.5})
    kernel = model.layers[0].kernel
    kernel.assign(np.full(kernel.shape, np.inf, np.float32))
    checkpoint.on_epoch_end(1, {"loss": 1.0, "val_loss": 1.0, "val_accuracy": 0.9})
    assert guard.triggered["epoch"] == 1 and model.stop_training
    state = json.loads((tmp_path / rundir.CHECKPOINT_DIR / rundir.STATE).read_text())
    assert state["file"] == "epoch-0000.keras" and state["best_epoch"] == 0
    for path in (tmp_path / rundir.BEST_MODEL, tmp_path / rundir.CHECKPOINT_DIR / state["file"]):
        assert all(np.isfinite(w).all() for w in weights(path))
    assert not (tmp_path / rundir.CHECKPOINT_DIR / "epoch-0001.keras").exists()


def test_checkpoint_with_nan_validation_loss_is_not_kept(tmp_path):
    _, guard, checkpoint = _tiny_checkpoint(tmp_path)
    checkpoint.on_epoch_end(0, {"loss": 1e30, "val_loss": float("nan"), "val_accuracy": 0.1})
    assert guard.triggered and "val_loss" in guard.triggered["what"]
    assert not (tmp_path / rundir.BEST_MODEL).exists()
    assert not list((tmp_path / rundir.CHECKPOINT_DIR).iterdir())


def test_nan_in_the_first_epoch_says_no_checkpoint_exists(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli(
        [
            "--model",
            "lenet5",
            "--limit",
            "256",
            "--batch-size",
            "64",
            "--epochs",
            "2",
            "--lr",
            "inf",
            "--no-tensorboard",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no checkpoint was saved" in err and "last good checkpoint" not in err
    assert not (out / rundir.BEST_MODEL).exists() and not (out / rundir.LAST_MODEL).exists()


@pytest.mark.parametrize("name", ["../../other/checkpoint/epoch-0000.keras", "/etc/passwd", "..", "", 3])
def test_state_names_only_files_inside_the_checkpoint_folder(tmp_path, name):
    with pytest.raises(CheckpointError, match="state.json"):
        checkpoint_path(tmp_path, name, tmp_path / "checkpoint" / "state.json")


def test_resume_never_loads_or_deletes_another_runs_checkpoint(tmp_path, capsys):
    other, run = tmp_path / "other", tmp_path / "run"
    for out in (other, run):
        train(resolve(dict(TINY, epochs=1, out=str(out))))
    state_file = run / rundir.CHECKPOINT_DIR / rundir.STATE
    state = json.loads(state_file.read_text())
    state["file"] = "../../other/checkpoint/epoch-0000.keras"
    state_file.write_text(json.dumps(state))
    code = cli(
        [
            "--model",
            "lenet5",
            "--limit",
            "192",
            "--batch-size",
            "64",
            "--epochs",
            "2",
            "--no-tensorboard",
            "--out",
            str(run),
            "--resume",
        ]
    )
    assert code != 0 and "not a file name inside" in capsys.readouterr().err
    assert (other / rundir.CHECKPOINT_DIR / "epoch-0000.keras").exists()


def test_empty_validation_split_trains_and_keeps_the_last_epoch_as_best(tmp_path):
    out = tmp_path / "run"
    metrics = train(
        resolve(dict(TINY, epochs=2, validation_fraction=0, tensorboard=True, early_stopping=1, out=str(out)))
    )
    assert metrics["epochs"] == 2 and metrics["best_epoch"] == 2 and "test_accuracy" in metrics
    assert (out / rundir.BEST_MODEL).exists()


def test_four_image_folder_has_no_validation_or_test_images(tmp_path):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for index in range(2):
            Image.fromarray(np.full((28, 28), 60 * index, np.uint8)).save(tmp_path / "images" / name / f"{index}.png")
    metrics = train(
        resolve(
            dict(
                model="lenet5",
                epochs=1,
                batch_size=2,
                data_dir=str(tmp_path / "images"),
                model_options=dict(),
                out=str(tmp_path / "run"),
            )
        )
    )
    assert metrics["epochs"] == 1 and "test_accuracy" not in metrics


def test_atomic_save_model_never_leaves_a_half_written_file(tmp_path):
    from kerascnn.train.checkpoint import atomic_save_model

    class Crashes:
        def save(self, path):
            Path(path).write_bytes(b"half a zip")
            raise OSError("disk full")

    target = tmp_path / "best.keras"
    target.write_bytes(b"the previous model")
    with pytest.raises(OSError, match="disk full"):
        atomic_save_model(Crashes(), target)
    assert target.read_bytes() == b"the previous model" and list(tmp_path.iterdir()) == [target]


def test_previous_checkpoint_is_kept_until_state_names_the_new_one(tmp_path, monkeypatch):
    from kerascnn import rundir as module  # Run.write_state writes state.json

    _, _, checkpoint = _tiny_checkpoint(tmp_path)
    checkpoint.on_epoch_end(0, {"loss": 1.0})

    def crash(*args, **kwargs):
        raise OSError("killed while writing state.json")

    monkeypatch.setattr(module, "atomic_write", crash)
    with pytest.raises(OSError):
        checkpoint.on_epoch_end(1, {"loss": 0.5})
    state = ResumableCheckpoint.load_state(tmp_path)  # still names an existing file
    assert state["file"] == "epoch-0000.keras" and (tmp_path / rundir.CHECKPOINT_DIR / state["file"]).exists()


def test_the_epoch_early_stopping_ends_on_is_checkpointed_whatever_the_cadence(tmp_path):
    """--early-stopping with --checkpoint-every 5: the epoch training stops on is saved, or a resume would redo it."""
    network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)], name="net")
    checkpoint = ResumableCheckpoint(tmp_path, network, NaNGuard(), every=5)
    checkpoint.set_model(network)
    checkpoint.set_params({"epochs": 10})
    network.stop_training = False  # fit sets it
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    assert ResumableCheckpoint.load_state(tmp_path) is None  # epoch 1 of 10, every 5: not saved
    network.stop_training = True  # as EarlyStopping sets it, before the checkpoint's turn
    checkpoint.on_epoch_end(1, {"loss": 1.0})
    assert ResumableCheckpoint.load_state(tmp_path)["epoch"] == 1
