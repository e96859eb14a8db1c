"""The training CLI on image folders through kerascnn.data.stream: input path, image size, bad files, and a
test split that is never the validation split."""

import json

import numpy as np
from PIL import Image

from kerascnn.train.__main__ import main as cli
from tests.data.test_stream import write_images


def tinted_folder(root, per_class=16, size=(20, 16)):
    """Two classes of dark and light noise: learnable in one epoch."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(["dark", "light"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            base = 40 if label == 0 else 200
            pixels = np.clip(base + rng.normal(0, 20, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")


def test_streamed_folder_with_test_dir_image_size_and_a_skipped_file(tmp_path, capsys):
    tinted_folder(tmp_path / "train")
    tinted_folder(tmp_path / "test", per_class=5, size=(30, 30))
    (tmp_path / "train" / "dark" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    args = [
        "--data-dir",
        str(tmp_path / "train"),
        "--test-dir",
        str(tmp_path / "test"),
        "--image-size",
        "24",
        "24",
        "--model",
        "vgg",
        "--model-options",
        '{"widths": [8, 16]}',
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--input",
        "stream",
        "--keep",
        "best",  # a validation split this small keeps the last epoch without it
        "--no-tensorboard",
        "--out",
        str(tmp_path / "run"),
    ]
    assert cli(args) == 2  # the bad file is named before the first epoch
    err = capsys.readouterr().err
    assert "broken.png" in err and "--skip-bad-images" in err and not (tmp_path / "run").exists()
    assert cli([*args, "--skip-bad-images"]) == 0
    out = capsys.readouterr().out
    assert "Skipped 1 image file(s)" in out and "input: stream" in out
    assert "on the test folder" in out and "chosen by validation accuracy" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["input_path"] == "stream" and metrics["skipped_images"] == 1 and len(metrics["history"]) == 2
    assert metrics["test_images"] == 10 and "test folder" in metrics["test_split"]
    assert json.loads((tmp_path / "run" / "dataset.json").read_text())["input_shape"] == [24, 24, 3]


def test_small_folder_is_held_out_in_memory_and_labelled(tmp_path, capsys):
    write_images(tmp_path / "images", classes=("a", "b"), per_class=24, size=(12, 12))
    assert (
        cli(
            [
                "--data-dir",
                str(tmp_path / "images"),
                "--model",
                "lenet5",
                "--image-size",
                "28",
                "28",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--no-tensorboard",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["input_path"] == "memory" and "held out" in metrics["test_split"]
    assert metrics["test_images"] == 4  # round(48 / 12): its own images, not the validation split's
    assert "input: memory" in capsys.readouterr().out


def test_streamed_run_killed_after_an_epoch_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    """Each streamed epoch's order depends only on (seed, epoch): stop after epoch 1 of 2, resume, same weights."""
    import keras
    import pytest

    from kerascnn.train.checkpoint import ResumableCheckpoint

    tinted_folder(tmp_path / "images", per_class=10)
    common = [
        "--data-dir",
        str(tmp_path / "images"),
        "--model",
        "vgg",
        "--model-options",
        '{"widths": [8, 16]}',
        "--batch-size",
        "8",
        "--epochs",
        "2",
        "--input",
        "stream",
        "--no-tensorboard",
    ]
    assert cli([*common, "--out", str(tmp_path / "whole")]) == 0

    class Killed(Exception):
        pass

    save = ResumableCheckpoint.on_epoch_end

    def save_then_die(self, epoch, logs=None):
        save(self, epoch, logs)
        raise Killed

    monkeypatch.setattr(ResumableCheckpoint, "on_epoch_end", save_then_die)
    with pytest.raises(Killed):
        cli([*common, "--out", str(tmp_path / "parts")])
    monkeypatch.undo()
    assert cli(["--out", str(tmp_path / "parts"), "--resume"]) == 0
    whole, parts = (keras.saving.load_model(tmp_path / run / "last.keras") for run in ("whole", "parts"))
    for a, b in zip(whole.get_weights(), parts.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def _one_line_error(capsys, argv, code):
    assert cli(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


TINY_FOLDER_RUN = ["--model", "lenet5", "--epochs", "1", "--batch-size", "8", "--no-tensorboard"]


def test_out_inside_data_dir_is_refused_and_nothing_is_written(tmp_path, capsys):
    write_images(tmp_path / "photos", classes=("a", "b"), per_class=4)
    out = tmp_path / "photos" / "runs" / "a"
    err = _one_line_error(capsys, ["--data-dir", str(tmp_path / "photos"), *TINY_FOLDER_RUN, "--out", str(out)], 2)
    assert "--out" in err and "inside --data-dir" in err and not (tmp_path / "photos" / "runs").exists()


def test_a_folder_name_that_cannot_be_a_label_is_refused_at_training(tmp_path, capsys):
    write_images(tmp_path / "photos", classes=("a", "b\nc"), per_class=4)
    err = _one_line_error(
        capsys, ["--data-dir", str(tmp_path / "photos"), *TINY_FOLDER_RUN, "--out", str(tmp_path / "run")], 2
    )
    assert "cannot be a label" in err and "b\\nc" in err and not (tmp_path / "run").exists()


def test_an_image_size_that_cannot_fit_in_memory_is_a_one_line_error(tmp_path, capsys):
    write_images(tmp_path / "photos", classes=("a", "b"), per_class=4)
    argv = ["--data-dir", str(tmp_path / "photos"), "--image-size", "10000", "10000", *TINY_FOLDER_RUN]
    err = _one_line_error(capsys, [*argv, "--batch-size", "128", "--out", str(tmp_path / "run")], 2)
    assert "--image-size 10000 10000" in err and "153.6 GB" in err and "ResourceExhausted" not in err


def test_limit_on_a_folder_trains_on_every_class(tmp_path):
    from tests.data.test_folder import undecodable_png

    write_images(tmp_path / "photos", classes=("a", "b", "c"), per_class=12)
    undecodable_png(tmp_path / "photos" / "c" / "broken.png")  # passes the header check
    argv = ["--data-dir", str(tmp_path / "photos"), *TINY_FOLDER_RUN, "--limit", "9", "--skip-bad-images"]
    argv += ["--image-size", "28", "28"]
    assert cli([*argv, "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["skipped_images"] == 1  # dropped and counted
    recorded = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert recorded["spec"]["limit"] == 9 and recorded["skipped"] == [str(tmp_path / "photos" / "c" / "broken.png")]
    from kerascnn.data import DataSpec, open

    data = open(DataSpec.from_run(recorded, {}), recorded=recorded)
    assert np.bincount(data.limited(9, 0).splits["train"].labels).tolist() == [3, 3, 3]
