"""The record-recipe flags: random erasing, the weights' moving average (--ema), flip test-time augmentation,
--checkpoint-every, --keep, JAX's compilation cache."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

import kerascnn
from kerascnn import rundir
from kerascnn.train import resolve, train
from kerascnn.train.checkpoint import NaNGuard, ResumableCheckpoint
from kerascnn.train.evaluation import flip_tta_accuracy
from kerascnn.train.feeding import load_data
from kerascnn.train.trainer import compile_cache_dir, enable_compile_cache
from tests.helpers import raises_on_command_line

TINY = dict(model="lenet5", limit=192, batch_size=64, tensorboard=False)
# the --ema runs: a net with batch norms, whose statistics the averaged weights get from a sample of their own
EMA_NET = dict(TINY, model="vgg", model_options=dict(widths=(4, 8, 16)))


class Killed(Exception):
    pass


def die_at(monkeypatch, epoch, before_save):
    """Makes ResumableCheckpoint raise Killed at the end of `epoch`, before or after it saves."""
    save = ResumableCheckpoint.on_epoch_end

    def patched(self, e, logs=None):
        if e == epoch and before_save:
            raise Killed
        save(self, e, logs)
        if e == epoch:
            raise Killed

    monkeypatch.setattr(ResumableCheckpoint, "on_epoch_end", patched)


def weights(path):
    return kerascnn.load_model(path).get_weights()


def values(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def assert_same_weights(a, b):
    for x, y in zip(weights(a), weights(b)):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    """(config, run directory, metrics) of 2 epochs with the moving average, random erasing and flip TTA."""
    out = tmp_path_factory.mktemp("ema") / "run"
    config = resolve(dict(EMA_NET, epochs=2, ema=0.9, augment_erase=0.5, tta_flip=True, out=str(out)))
    return config, out, train(config)


def test_ema_is_validated_saved_and_tested_while_training_goes_on_from_the_raw_weights(ema_run):
    config, out, metrics = ema_run
    [checkpoint] = (out / rundir.CHECKPOINT_DIR).glob("epoch-*.keras")
    train_model = kerascnn.load_model(checkpoint)
    assert train_model.get_layer("erase").rate == 0.5  # random erasing is in the training model
    network = train_model.get_layer(ResumableCheckpoint.load_state(out)["network"])
    raw = values(network.trainable_weights)
    raw_statistics = values(network.non_trainable_weights)
    train_model.optimizer.finalize_variable_values(train_model.trainable_weights)
    averaged = values(network.trainable_weights)
    last = kerascnn.load_model(out / rundir.LAST_MODEL)
    assert max(np.abs(a - b).max() for a, b in zip(raw, averaged)) > 1e-3  # the checkpoint holds the raw weights
    for a, b in zip(averaged, values(last.trainable_weights)):  # last.keras is the moving average
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # ... with batch-norm statistics of its own (the checkpoint keeps the raw weights' statistics)
    assert len(raw_statistics) == 12  # 6 ConvBNAct: moving mean and variance
    assert min(np.abs(a - b).max() for a, b in zip(raw_statistics, values(last.non_trainable_weights))) > 1e-4
    # the validation figures of the last epoch are the moving average's
    data = load_data(config)
    model = kerascnn.load_model(out / rundir.LAST_MODEL)
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    loss, _ = model.evaluate(data.dataset.normalize(data.x_val), np.eye(10)[data.y_val], verbose=0)
    assert metrics["history"][-1]["val_loss"] == pytest.approx(loss, abs=1e-4)
    if metrics["best_epoch"] == 2:
        assert_same_weights(out / rundir.BEST_MODEL, out / rundir.LAST_MODEL)


def test_flip_tta_is_reported_beside_the_single_view_figure(ema_run):
    config, out, metrics = ema_run
    data = load_data(config)
    batches = [(data.dataset.normalize(data.x_test), np.eye(10)[data.y_test])]
    expected = flip_tta_accuracy(kerascnn.load_model(out / rundir.LAST_MODEL), batches)
    assert metrics["test_accuracy_tta_last"] == pytest.approx(expected, abs=1e-5)
    assert {"test_accuracy_tta", "test_accuracy_tta_best", "test_accuracy"} <= set(metrics)
    assert json.loads((out / rundir.METRICS).read_text())["test_accuracy_tta"] == metrics["test_accuracy_tta"]


def test_flip_tta_decides_on_the_sum_of_both_views():
    class LeftColumn:
        """Class 1 when the image's left column is bright, else 0; confidence from its brightness."""

        def predict_on_batch(self, images):
            left = images[:, :, 0, 0].mean(axis=1)
            return np.stack([1 - left, left], axis=1)

    images = np.zeros((2, 3, 3, 1), np.float32)
    images[0, :, 0], images[0, :, 2] = 0.6, 0.0  # left 0.6 (class 1), right 0.0: sum 0.6 + 0.0 vs 0.4 + 1.0
    images[1, :, 0], images[1, :, 2] = 0.6, 0.5  # sum 0.6 + 0.5 = 1.1 vs 0.4 + 0.5 = 0.9: class 1
    labels = np.eye(2)[[0, 1]]
    assert flip_tta_accuracy(LeftColumn(), [(images, labels)]) == 1.0
    assert flip_tta_accuracy(LeftColumn(), [(images, labels[::-1])]) == 0.0


def test_ema_run_resumed_ends_with_the_uninterrupted_weights(tmp_path, monkeypatch):
    settings = dict(EMA_NET, epochs=2, ema=0.9, augment_erase=0.5)
    train(resolve(dict(settings, out=str(tmp_path / "straight"))))
    die_at(monkeypatch, 0, before_save=False)
    with pytest.raises(Killed):
        train(resolve(dict(settings, out=str(tmp_path / "resumed"))))
    monkeypatch.undo()
    train(resolve(dict(settings, out=str(tmp_path / "resumed"), resume=True)))
    assert_same_weights(tmp_path / "straight" / rundir.LAST_MODEL, tmp_path / "resumed" / rundir.LAST_MODEL)


def test_checkpoint_every_n_epochs_keeps_the_last_and_resumes(tmp_path, monkeypatch):
    settings = dict(TINY, epochs=3, checkpoint_every=2)
    straight = train(resolve(dict(settings, out=str(tmp_path / "straight"))))
    assert straight["epochs"] == 3 and len(straight["history"]) == 3  # the last epoch (3, not a multiple) is saved

    die_at(monkeypatch, 1, before_save=True)  # killed at the end of epoch 2: epoch 1 was not checkpointed
    with pytest.raises(Killed):
        train(resolve(dict(settings, out=str(tmp_path / "early"))))
    assert not (tmp_path / "early" / rundir.CHECKPOINT_DIR / rundir.STATE).exists()
    assert (tmp_path / "early" / rundir.BEST_MODEL).exists()  # best.keras is saved at every improvement

    monkeypatch.undo()
    die_at(monkeypatch, 2, before_save=True)  # killed at the end of epoch 3: resumes from epoch 2
    with pytest.raises(Killed):
        train(resolve(dict(settings, out=str(tmp_path / "resumed"))))
    state = ResumableCheckpoint.load_state(tmp_path / "resumed")
    assert state["epoch"] == 1 and [h["epoch"] for h in state["history"]] == [0, 1]
    assert [p.name for p in (tmp_path / "resumed" / rundir.CHECKPOINT_DIR).glob("*.keras")] == ["epoch-0001.keras"]
    monkeypatch.undo()
    resumed = train(resolve(dict(settings, out=str(tmp_path / "resumed"), resume=True)))
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2]
    assert_same_weights(tmp_path / "straight" / rundir.LAST_MODEL, tmp_path / "resumed" / rundir.LAST_MODEL)


@pytest.mark.parametrize("keep_last,kept", [(False, 0), (True, 1)])
def test_keep_last_saves_the_last_epoch_as_the_model_though_validation_fell(tmp_path, keep_last, kept):
    network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="dense")], name="net")
    checkpoint = ResumableCheckpoint(tmp_path, network, NaNGuard(), keep_last=keep_last)
    network.stop_training = False  # as model.fit sets it
    checkpoint.set_model(network)
    checkpoint.set_params({"epochs": 2})
    for epoch, val_accuracy in enumerate([0.9, 0.8]):  # the second epoch validates worse
        network.get_layer("dense").kernel.assign(np.full((2, 1), epoch + 1.0, np.float32))
        checkpoint.on_epoch_end(epoch, {"loss": 1.0, "val_accuracy": val_accuracy})
    model = keras.saving.load_model(tmp_path / rundir.BEST_MODEL)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("dense").kernel), kept + 1.0)
    assert checkpoint.state["best_epoch"] == kept
    assert checkpoint.state["best_val_accuracy"] == [0.9, 0.8][kept]


def test_keep_last_run_tests_and_reports_its_last_epoch(tmp_path, capsys):
    from kerascnn.train.__main__ import main

    out = tmp_path / "run"
    args = ["--model", "lenet5", "--limit", "192", "--batch-size", "64", "--epochs", "2", "--no-tensorboard"]
    assert main([*args, "--keep", "last", "--out", str(out)]) == 0
    metrics = json.loads((out / rundir.METRICS).read_text())
    assert metrics["kept"] == "last" and metrics["best_epoch"] == 2
    assert metrics["best_val_accuracy"] == metrics["history"][-1]["val_accuracy"]
    assert metrics["test_accuracy"] == metrics["test_accuracy_last"]
    assert_same_weights(out / rundir.BEST_MODEL, out / rundir.LAST_MODEL)
    assert "(the last epoch, kept by --keep last; validation accuracy" in capsys.readouterr().out


def test_quick_preset_keeps_its_last_epoch_and_the_default_its_best():
    assert resolve(dict(preset="quick")).keep == "last"
    assert resolve({}).keep is None and resolve(dict(preset="best")).keep is None  # best, or last: small_data


def test_compile_cache_folder(tmp_path):
    assert compile_cache_dir("off", {"JAX_COMPILATION_CACHE_DIR": "/x"}) is None
    assert compile_cache_dir(str(tmp_path), {"JAX_COMPILATION_CACHE_DIR": "/x"}) == tmp_path
    assert compile_cache_dir(None, {"JAX_COMPILATION_CACHE_DIR": "/x"}) == Path("/x")
    assert compile_cache_dir(None, {}) == Path.home() / ".cache" / "kerascnn" / "jax"
    if keras.backend.backend() != "jax":
        assert enable_compile_cache(str(tmp_path / "cache")) is None  # only JAX compiles ahead like this
        assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "values,match",
    [
        (dict(augment_erase=1.5), "--augment-erase"),
        (dict(ema=1.0), "--ema"),
        (dict(checkpoint_every=0), "--checkpoint-every"),
        (dict(keep="first"), "--keep must be best or last"),
        (dict(keep="last", early_stopping=3), "Use --keep best with --early-stopping"),
    ],
)
def test_bad_recipe_values_are_named(values, match):
    with raises_on_command_line(match):
        resolve(values)


def test_steps_per_execution_trains_the_same_weights(tmp_path):
    """Several steps per call into the compiled function: the same batches, the same augmentation draws."""
    settings = dict(TINY, epochs=2, limit=320)  # 5 steps per epoch: the last call of an epoch holds 2 of 3
    train(resolve(dict(settings, out=str(tmp_path / "one"))))
    metrics = train(resolve(dict(settings, steps_per_execution=3, out=str(tmp_path / "three"))))
    assert len(metrics["history"]) == 2
    assert_same_weights(tmp_path / "one" / rundir.LAST_MODEL, tmp_path / "three" / rundir.LAST_MODEL)


def test_update_batch_norms_sets_the_average_of_the_batch_statistics():
    """Each trainable batch norm, nested or not, ends with the average over the batches (4, 4, 2 images), weighted
    by their images, of its batch mean and biased batch variance; a frozen one keeps its statistics, and the
    momenta are put back."""
    from kerascnn.layers import ConvBNAct
    from kerascnn.train.ema import update_batch_norms

    inner = keras.Sequential([keras.Input((5, 5, 2)), ConvBNAct(3, 3, name="cba")], name="inner")
    plain, frozen = keras.layers.BatchNormalization(name="plain"), keras.layers.BatchNormalization(name="frozen")
    model = keras.Sequential([keras.Input((5, 5, 2)), inner, plain, frozen])
    frozen.trainable = False
    images = (np.random.default_rng(0).normal(size=(10, 5, 5, 2)) * 3 + 1).astype("float32")
    images[8:] += 4  # the short last batch stands apart: weighting it like a full one would move the average
    batches = [images[:4], images[4:8], images[8:]]
    cba = inner.get_layer("cba")
    convolved = [keras.ops.convert_to_numpy(cba.conv(b)) for b in batches]
    activated = [np.maximum(0, (h - h.mean((0, 1, 2))) / np.sqrt(h.var((0, 1, 2)) + cba.bn.epsilon)) for h in convolved]
    update_batch_norms(model, images, batch_size=4)
    sizes = [4, 4, 2]
    for norm, outputs in ((cba.bn, convolved), (plain, activated)):
        mean = np.average([h.mean((0, 1, 2)) for h in outputs], axis=0, weights=sizes)
        variance = np.average([h.var((0, 1, 2)) for h in outputs], axis=0, weights=sizes)
        np.testing.assert_allclose(norm.moving_mean, mean, atol=1e-4)
        np.testing.assert_allclose(norm.moving_variance, variance, rtol=1e-3)
    np.testing.assert_array_equal(frozen.moving_mean, np.zeros(3))
    assert (cba.bn.momentum, plain.momentum, frozen.momentum) == (0.99, 0.99, 0.99)


def test_averaged_weights_hold_the_averages_inside_and_every_variable_back_after():
    from kerascnn.layers import ConvBNAct
    from kerascnn.train.ema import averaged_weights

    model = keras.Sequential(
        [keras.Input((6, 6, 1)), ConvBNAct(4, 3), keras.layers.Dropout(0.5), keras.layers.Flatten()]
    )
    model.add(keras.layers.Dense(2))
    model.compile(keras.optimizers.AdamW(1e-2, use_ema=True, ema_momentum=0.5), "mse")
    x = np.random.default_rng(1).normal(size=(16, 6, 6, 1)).astype("float32")
    for _ in range(3):  # train_on_batch, unlike fit, leaves the raw weights in the model
        model.train_on_batch(x, np.ones((16, 2)))
    before = values(model.variables)
    with averaged_weights(model, x, batch_size=8):
        inside = values(model.variables)
    after = values(model.variables)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)  # weights, moving statistics and seed states, bit for bit
    changed = [not np.array_equal(a, b) for a, b in zip(before, inside)]
    assert sum(changed) >= 4  # inside: the averaged kernel, gamma, beta and the sample's moving statistics


@pytest.mark.parametrize("pipeline", ["memory", "stream"])
def test_batch_norm_images_are_a_seeded_sample_as_the_training_model_takes_them(pipeline):
    from kerascnn.train.feeding import batch_norm_images

    config = resolve(dict(TINY, ema=0.9, input_pipeline=pipeline, out="unused"))
    data = load_data(config)
    images = batch_norm_images(config, data)
    assert images.shape == (192, 28, 28, 1)  # all 192 (fewer than BATCH_NORM_IMAGES)
    images = images[:]  # in memory normalized as it is read (NormalizedImages)
    # in memory the uint8 training pixels, which the batches normalize
    in_order = data.dataset.normalize(data.x_train) if pipeline == "memory" else data.dataset.arrays("train")[0]
    assert not np.array_equal(images, in_order)  # shuffled: a folder's files come class by class
    rows = lambda a: np.sort(a.reshape(len(a), -1), axis=0)  # noqa: E731
    np.testing.assert_array_equal(rows(images), rows(in_order))  # the same images
    if pipeline == "memory":  # the normalized arrays, a sample without repeats
        assert images.dtype == np.float32 and len(np.unique(images.reshape(192, -1), axis=0)) == 192
    else:  # uint8 pixels: the streamed training model normalizes them
        assert images.dtype == np.uint8
    assert batch_norm_images(resolve(dict(TINY, out="unused")), data) is None  # without --ema
