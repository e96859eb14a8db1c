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
    args = ["--data-dir", str(tmp_path / "train"), "--test-dir", str(tmp_path / "test"), "--image-size", "24", "24",
            "--model", "vgg", "--model-options", '{"widths": [8, 16]}', "--epochs", "2", "--batch-size", "8",
            "--input", "stream", "--no-tensorboard", "--out", str(tmp_path / "run")]
    assert cli(args) == 1  # the bad file is named before the first epoch
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
    assert cli(["--data-dir", str(tmp_path / "images"), "--model", "lenet5", "--image-size", "28", "28",
                "--epochs", "1", "--batch-size", "8", "--no-tensorboard", "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["input_path"] == "memory" and "held out" in metrics["test_split"]
    assert metrics["test_images"] == 4  # round(48 / 12): its own images, not the validation split's
    assert "input: memory" in capsys.readouterr().out
