"""Short training runs through the real code path: kerascnn.train.train and the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from kerascnn import models
from kerascnn.train import resolve, train
from kerascnn.train.__main__ import main as cli

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(limit=256, epochs=1, batch_size=64, tensorboard=False)


# mobilenetv2: its runs through train() are tests/train/test_finetune.py's and test_finetuned_mobilenetv2.py's
@pytest.mark.parametrize("name", [name for name in models.names() if name != "mobilenetv2"])
def test_one_short_run_per_model(name, tmp_path):
    metrics = train(resolve(dict(SMALL, model=name, out=str(tmp_path / name))))
    assert metrics["epochs"] == 1 and 0.0 <= metrics["test_accuracy"] <= 1.0
    run = tmp_path / name
    for file in ("best.keras", "last.keras", "metrics.json", "config.yaml", "labels.txt", "dataset.json"):
        assert (run / file).exists(), file
    assert json.loads((run / "dataset.json").read_text())["labels"][0] == "T-shirt/top"
    model = keras.saving.load_model(run / "last.keras")
    assert model.name == name and model.output_shape == (None, 10)


def test_learns_on_a_small_subset(small_vgg_run):
    # 256 steps, enough for batch norm's running averages (momentum 0.99) to follow the weights
    _, metrics = small_vgg_run
    assert metrics["test_accuracy"] > 0.6  # chance is 0.1
    history = metrics["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[0]["learning_rate"] > history[-1]["learning_rate"]  # cosine decay


def test_tensorboard_has_the_named_summaries(tmp_path):
    import matplotlib
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # stands in for a notebook's inline backend, which the summaries must not switch
    try:
        train(resolve(dict(SMALL, model="mobilenet", epochs=2, out=str(tmp_path / "run"), tensorboard=True)))
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(backend)
    tags = {}
    for directory in (tmp_path / "run" / "tb").rglob("*"):
        if directory.is_dir() and any(f.name.startswith("events.") for f in directory.iterdir()):
            accumulator = EventAccumulator(str(directory), size_guidance={"tensors": 0, "images": 0}).Reload()
            for kind, names in accumulator.Tags().items():
                if isinstance(names, list):
                    tags.setdefault(kind, set()).update(names)
    scalars = tags.get("tensors", set()) | tags.get("scalars", set())
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= scalars
    assert any(name.endswith("/histogram") or "kernel" in name for name in scalars | tags.get("histograms", set()))
    assert {"confusion_matrix", "misclassified", "class_activation_maps"} <= scalars | tags.get("images", set())


def run_cli(args, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "kerascnn.train", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def cli_in_process(args, capsys) -> tuple[int, str]:
    """(exit status, stderr) of python -m kerascnn.train ARGS, run by its main in this process: a subprocess would
    spend most of its time importing TensorFlow (tests/train/test_cli_startup.py starts the real command)."""
    try:
        status = cli(args)
    except SystemExit as stop:  # argparse's errors
        status = stop.code
    return status, capsys.readouterr().err


def test_resume_refuses_other_settings(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli(["--model", "lenet5", "--limit", "128", "--epochs", "1", "--no-tensorboard", "--out", out]) == 0
    assert cli(["--model", "lenet5", "--limit", "128", "--epochs", "1", "--no-tensorboard", "--out", out]) == 2
    assert "already holds a kerascnn run" in capsys.readouterr().err
    assert (
        cli(["--model", "lenet5", "--limit", "128", "--lr", "0.1", "--no-tensorboard", "--out", out, "--resume"]) == 2
    )
    assert "lr: 0.003 -> 0.1" in capsys.readouterr().err


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli(
        [
            "--model",
            "lenet5",
            "--limit",
            "512",
            "--batch-size",
            "64",
            "--epochs",
            "3",
            "--lr",
            "1e12",
            "--warmup-epochs",
            "0",
            "--no-tensorboard",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "the loss became nan" in err and "Lower --lr" in err
    assert not (out / "last.keras").exists()


def test_image_folder_through_the_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for label, name in enumerate(["dark", "light"]):
        (tmp_path / "images" / name).mkdir(parents=True)
        for index in range(24):
            base = 40 if label == 0 else 200
            pixels = np.clip(base + rng.normal(0, 20, (28, 28, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{index}.jpg")
    status, err = cli_in_process(
        [
            "--data-dir",
            str(tmp_path / "images"),
            "--model",
            "lenet5",
            "--epochs",
            "5",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--validation-fraction",
            "0.25",
            "--out",
            str(tmp_path / "run"),
        ],
        capsys,
    )
    assert status == 0, err[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == "images" and metrics["test_accuracy"] >= 0.9
    assert (tmp_path / "run" / "labels.txt").read_text().split() == ["dark", "light"]


def test_corrupt_image_in_folder_is_named(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / "images" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / name / "ok.png")
    (tmp_path / "images" / "b" / "bad.jpg").write_bytes(b"not a jpeg")
    status, err = cli_in_process(["--data-dir", str(tmp_path / "images"), "--out", str(tmp_path / "run")], capsys)
    assert status == 2 and "cannot be decoded" in err and "bad.jpg" in err


def test_images_too_small_for_the_model(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for index in range(4):
            Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "images" / name / f"{index}.png")
    status, err = cli_in_process(
        ["--data-dir", str(tmp_path / "images"), "--model", "lenet5", "--out", str(tmp_path / "run")], capsys
    )
    assert status == 2
    assert "'lenet5' takes images of at least 28x28 pixels; input_shape=(6, 6, 1) is too small" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "resnet50"], "Unknown model 'resnet50'"),
        (["--dataset", "no_such_dataset"], "Cannot load dataset 'no_such_dataset'"),
        (["--preset", "slow"], "invalid choice: 'slow'"),
        (["--epochs", "0"], "--epochs and --batch-size must be >= 1"),
    ],
)
def test_bad_arguments(tmp_path, args, message, capsys):
    status, err = cli_in_process([*args, "--out", str(tmp_path / "run"), "--no-tensorboard", "--limit", "64"], capsys)
    assert status == 2 and message in err, err[-2000:]


@pytest.mark.parametrize("backend", ["jax"])
def test_other_backend_trains(tmp_path, backend):
    done = run_cli(
        [
            "--model",
            "mobilenet",
            "--limit",
            "128",
            "--batch-size",
            "64",
            "--epochs",
            "1",
            "--no-tensorboard",
            "--out",
            str(tmp_path / "run"),
        ],
        env={"KERAS_BACKEND": backend},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["backend"] == backend


@pytest.mark.parametrize(
    "backend,env",
    [
        ("tensorflow", {}),
        ("jax", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}),
    ],
)
def test_distribute_over_two_cpu_devices(tmp_path, backend, env):
    script = (
        "import sys, keras\n"
        "if keras.backend.backend() == 'tensorflow':\n"
        "    import tensorflow as tf\n"
        "    cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "from kerascnn.train.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "--model",
            "mobilenet",
            "--limit",
            "256",
            "--batch-size",
            "64",
            "--epochs",
            "1",
            "--distribute",
            "--no-tensorboard",
            "--out",
            str(tmp_path / "run"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": backend, **env},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicas: 2" in done.stdout
    # metrics.json names the backend that trained
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["backend"] == backend
