"""Fine-tuning (`--init-from`, `--weights`): weights in, new head, two phases, normalization and resume."""

import json
import shutil

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

from kerascnn import rundir
from kerascnn.layers import ConvBNAct, GAPHead
from kerascnn.train import finetune, resolve, train
from kerascnn.train.__main__ import main as cli
from kerascnn.train.checkpoint import ResumableCheckpoint
from tests.helpers import copy_run, raises_on_command_line


def write_folder(root, classes=3, per_class=12, size=28, channels=1, seed=0):
    """An image folder of `classes` sub-folders; each class is a brightness band plus noise, so it is learnable."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(60 * c + 40 + rng.normal(0, 25, (size, size, channels)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(root / f"class{c}" / f"{i}.png")
    return root


def layer_weights(path):
    model = keras.saving.load_model(path)
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}, model


def backbone_of(weights_by_layer, head):
    return {name: w for name, w in weights_by_layer.items() if name != head}


def assert_equal_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for x, y in zip(a[name], b[name]):
            np.testing.assert_array_equal(x, y, err_msg=name)


FOLDER_RUN = dict(batch_size=12, tensorboard=False, validation_fraction=0.0, test_fraction=0.25, augment_padding=0)


def test_init_from_a_run_freezes_the_backbone_then_trains_it_with_bn_frozen(small_vgg_run, tmp_path):
    """Phase 1 (head only) leaves every backbone weight and BN statistic as the source run had it; phase 2 changes
    the convolutions but not the batch norms; the head is new (3 classes, not 10); normalization and the weights'
    origin are written to the new run."""
    source_dir, _ = small_vgg_run
    folder = write_folder(tmp_path / "photos")
    source, _ = layer_weights(source_dir / rundir.BEST_MODEL)
    head = "head"  # vgg's GAPHead

    out1 = tmp_path / "phase1"
    assert cli(["--data-dir", str(folder), "--init-from", str(source_dir), "--epochs", "1", "--freeze-epochs", "1",
                "--out", str(out1), "--batch-size", "12", "--no-tensorboard", "--validation-fraction", "0",
                "--augment-padding", "0"]) == 0  # fmt: skip
    tuned, model = layer_weights(out1 / rundir.LAST_MODEL)
    assert isinstance(model.get_layer(head), GAPHead) and model.output_shape == (None, 3)
    assert_equal_weights(backbone_of(tuned, head), backbone_of(source, head))
    config = yaml.safe_load((out1 / rundir.CONFIG).read_text())
    assert config["init_from"] == str(source_dir) and config["model"] == "vgg"  # the source run's model
    assert config["model_options"] == yaml.safe_load((source_dir / rundir.CONFIG).read_text())["model_options"]
    meta = json.loads((out1 / rundir.DATASET).read_text())
    source_normalization = json.loads((source_dir / rundir.DATASET).read_text())["normalization"]
    assert {k: meta["normalization"][k] for k in ("mean", "std")} == {
        k: source_normalization[k] for k in ("mean", "std")
    }
    assert meta["normalization"]["from"] == f"kerascnn model: {source_dir / rundir.BEST_MODEL}"
    assert meta["labels"] == ["class0", "class1", "class2"]

    out2 = tmp_path / "phase2"
    train(resolve(dict(FOLDER_RUN, data_dir=str(folder), init_from=str(source_dir), model="vgg",
                       model_options=config["model_options"], epochs=2, freeze_epochs=1, out=str(out2))))  # fmt: skip
    tuned2, model2 = layer_weights(out2 / rundir.LAST_MODEL)
    convs = [layer for layer in model2.layers if isinstance(layer, ConvBNAct)]
    source_model = keras.saving.load_model(source_dir / rundir.BEST_MODEL)
    changed = 0
    for layer in convs:
        other = source_model.get_layer(layer.name)
        for ours, theirs in zip(layer.bn.weights, other.bn.weights):  # gamma, beta, moving mean and variance
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=layer.name)
        changed += not np.array_equal(layer.conv.kernel.numpy(), other.conv.kernel.numpy())
    assert changed == len(convs)  # phase 2 trained every convolution


def test_a_run_with_the_same_labels_keeps_its_head(small_vgg_run):
    source_dir, _ = small_vgg_run
    source = finetune.weight_source(str(source_dir), None, "vgg")
    config = resolve(dict(model="vgg", model_options=yaml.safe_load((source_dir / rundir.CONFIG).read_text())[
        "model_options"]))  # fmt: skip
    kept = finetune.build_network(config, source, (28, 28, 1), source.labels)
    new = finetune.build_network(config, source, (28, 28, 1), [*source.labels[:9], "other"])
    reference = keras.saving.load_model(source_dir / rundir.BEST_MODEL)
    for w, r in zip(kept.get_layer("head").get_weights(), reference.get_layer("head").get_weights()):
        np.testing.assert_array_equal(w, r)
    assert not np.array_equal(new.get_layer("head").get_weights()[0], reference.get_layer("head").get_weights()[0])


def test_resume_across_the_phase_boundary_gives_the_uninterrupted_weights(small_vgg_run, tmp_path, monkeypatch, caplog):
    """Killed right after phase 1's last epoch (its checkpoint holds the head-only optimizer), resumed: phase 2
    starts with a fresh optimizer either way, and the run ends with the weights of one never stopped. Three small
    fine-tuned runs in one process log no tf.function "retracing" warning (`trainer.deliberate_traces`)."""
    source_dir = copy_run(small_vgg_run[0], tmp_path / "source")  # deleted before the resume, as in issue 35
    folder = write_folder(tmp_path / "photos")
    options = yaml.safe_load((source_dir / rundir.CONFIG).read_text())["model_options"]
    settings = dict(FOLDER_RUN, data_dir=str(folder), init_from=str(source_dir), model="vgg", model_options=options,
                    epochs=3, freeze_epochs=1)  # fmt: skip
    train(resolve(dict(settings, out=str(tmp_path / "straight"))))

    class Killed(Exception):
        pass

    save = ResumableCheckpoint.on_epoch_end

    def save_then_die(self, epoch, logs=None):
        save(self, epoch, logs)
        if epoch == 0:
            raise Killed

    monkeypatch.setattr(ResumableCheckpoint, "on_epoch_end", save_then_die)
    with pytest.raises(Killed):
        train(resolve(dict(settings, out=str(tmp_path / "resumed"))))
    monkeypatch.undo()
    shutil.rmtree(source_dir)  # the resumed run's weights are its checkpoint's: the source was needed only to start
    assert cli(["--out", str(tmp_path / "resumed"), "--resume"]) == 0
    metrics = json.loads((tmp_path / "resumed" / rundir.METRICS).read_text())
    assert [h["epoch"] for h in metrics["history"]] == [0, 1, 2]
    assert "retracing" not in caplog.text
    straight, _ = layer_weights(tmp_path / "straight" / rundir.LAST_MODEL)
    resumed, _ = layer_weights(tmp_path / "resumed" / rundir.LAST_MODEL)
    for name in straight:
        for a, b in zip(straight[name], resumed[name]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=name)


def test_keras_mobilenetv2_weights_file_and_imagenet_normalization(tmp_path):
    """--weights FILE with --model mobilenetv2: the backbone is the file's, the inputs get (x - 128) / 127.5."""
    folder = write_folder(tmp_path / "photos", size=32, channels=3, per_class=6)
    reference = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=False)
    reference.save(tmp_path / "keras_mobilenetv2.h5")
    out = tmp_path / "run"
    train(resolve(dict(FOLDER_RUN, data_dir=str(folder), model="mobilenetv2", model_options=dict(alpha=0.35),
                       weights=str(tmp_path / "keras_mobilenetv2.h5"), epochs=1, freeze_epochs=1,
                       out=str(out))))  # fmt: skip
    meta = json.loads((out / rundir.DATASET).read_text())
    assert meta["normalization"]["mean"] == [128.0] * 3 and meta["normalization"]["std"] == [127.5] * 3
    assert yaml.safe_load((out / rundir.CONFIG).read_text())["weights"] == str(tmp_path / "keras_mobilenetv2.h5")
    model = keras.saving.load_model(out / rundir.LAST_MODEL)
    assert model.name == "mobilenetv2_0.35"  # the registry name and the width, as Keras names its MobileNetV2
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    features = keras.Model(model.input, model.get_layer("predictions").input)
    np.testing.assert_allclose(features(x), reference(x), atol=1e-5)  # phase 1 left the backbone as loaded
    (tmp_path / "keras_mobilenetv2.h5").rename(tmp_path / "moved.h5")  # a resumed run needs the file no more
    assert cli(["--out", str(out), "--resume", "--epochs", "2"]) == 0
    assert json.loads((out / rundir.METRICS).read_text())["epochs"] == 2
    assert json.loads((out / rundir.DATASET).read_text())["normalization"]["from"] == meta["normalization"]["from"]


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--weights", "imagenet", "--model", "vgg"], "--weights loads keras.applications weights"),
        (["--init-from", "NOWHERE"], "--init-from NOWHERE: not a run directory or a .keras file"),
        (["--init-from", "x.keras", "--weights", "imagenet", "--model", "mobilenetv2"], "not both"),
        (["--weights", "missing.h5", "--model", "mobilenetv2"], "--weights missing.h5: no such file"),
        (["--init-from", "RUN", "--epochs", "2", "--freeze-epochs", "3"], "--freeze-epochs 3 is more than --epochs 2"),
    ],
)
def test_bad_fine_tuning_flags_exit_2_and_write_nothing(flags, match, tmp_path, capsys):
    (tmp_path / "RUN").mkdir()
    (tmp_path / "RUN" / rundir.BEST_MODEL).write_bytes(b"")
    flags = [str(tmp_path / f) if f in ("RUN",) else f for f in flags]
    out = tmp_path / "out"
    assert cli([*flags, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
    assert match in error
    assert not out.exists()


def test_imagenet_offline_with_an_empty_keras_cache_exits_2_in_seconds(tmp_path):
    """--weights imagenet, nothing in $KERAS_HOME and no network (a proxy that refuses): one line naming the file
    and saying to pass a local one, exit 2, no run directory."""
    import os
    import subprocess
    import sys

    folder = write_folder(tmp_path / "photos", size=32, channels=3, per_class=4)
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras_home"), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9"}  # fmt: skip
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "kerascnn.train", "--data-dir", str(folder), "--model", "mobilenetv2",
         "--model-options", '{"alpha": 0.35}', "--weights", "imagenet", "--out", str(out), "--no-tensorboard"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5" in line
    assert "pass a local weights file (weights=PATH, --weights PATH)" in line
    assert "--weights .weights/mobilenet_v2-b0353104.pth" in line  # the offline recipe, torchvision's file named
    assert not out.exists()


def test_a_default_freeze_epochs_is_clamped_to_epochs_and_an_explicit_one_refused():
    """`--init-from RUN --epochs 1` is a valid command: the default --freeze-epochs 2 becomes 1."""
    assert resolve(dict(init_from="RUN", epochs=1)).freeze_epochs == 1
    assert resolve(dict(init_from="RUN", epochs=5)).freeze_epochs == 2
    # no init source, no phase 1: the setting stays put, so `--resume --epochs 3` after `--epochs 1` is the same run
    assert resolve(dict(epochs=1)).freeze_epochs == 2
    with raises_on_command_line("--freeze-epochs 2 is more than --epochs 1"):
        resolve(dict(init_from="RUN", epochs=1, freeze_epochs=2))


def test_phase_2_runs_at_a_tenth_of_the_learning_rate_unless_finetune_lr_is_given():
    config = resolve(dict(init_from="RUN", epochs=5, freeze_epochs=2, lr=0.004, warmup_epochs=1.0))
    head, rest = finetune.phase_config(config, head_only=True), finetune.phase_config(config, head_only=False)
    assert (head.epochs, head.lr, head.warmup_epochs) == (2, 0.004, 1.0)
    assert (rest.epochs, rest.lr, rest.warmup_epochs) == (3, pytest.approx(0.0004), 0.0)
    assert finetune.phase_config(resolve(dict(init_from="RUN", epochs=5, finetune_lr=0.002)), False).lr == 0.002
