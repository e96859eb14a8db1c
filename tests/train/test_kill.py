"""A run killed with SIGKILL and resumed ends with the uninterrupted run's weights (issue 11, item 4: "test it with
a kill"). The CLI runs in a subprocess that kills itself at an exact point, so no timing decides where it dies."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kerascnn import rundir, saving

ROOT = Path(__file__).resolve().parents[2]
# fashion_mnist: random crops (padding 2) and flips on; 8 steps per epoch
ARGS = [
    "--model",
    "vgg",
    "--model-options",
    '{"widths": [8, 16, 16]}',
    "--limit",
    "512",
    "--batch-size",
    "64",
    "--epochs",
    "3",
    "--no-tensorboard",
]
# Runs `python -m kerascnn.train ARGS` and, where KILL says, SIGKILLs its own process: "batch:E:B" after batch B
# of epoch E (0-based) has trained; "save:NAME" while NAME is being written (its temporary file holds the first
# half of the model's zip, as when the process dies in the middle of model.save); "state:E" right after
# state.json names epoch E's checkpoint, before the previous epoch's file is deleted.
KILLER = """
import json, os, runpy, signal, sys
import keras
from kerascnn import rundir
from kerascnn.train import checkpoint

where = os.environ.get("KILL", "")

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if where.startswith("batch:"):
    epoch, batch = (int(n) for n in where.split(":")[1:])
    original_batch_end = checkpoint.NaNGuard.on_train_batch_end

    def on_train_batch_end(self, index, logs=None):
        original_batch_end(self, index, logs)
        if (self._epoch, index) == (epoch, batch):
            die()

    checkpoint.NaNGuard.on_train_batch_end = on_train_batch_end
elif where.startswith("save:"):
    name = where.split(":", 1)[1]
    original_save = keras.Model.save

    def save(self, path, *args, **kwargs):
        original_save(self, path, *args, **kwargs)
        if os.path.basename(path) == ".partial-" + name:
            size = os.path.getsize(path)
            with open(path, "r+b") as file:
                file.truncate(size // 2)
            die()

    keras.Model.save = save
elif where.startswith("state:"):
    epoch = int(where.split(":")[1])
    original_write = rundir.atomic_write  # Run.write_state writes state.json with it

    def atomic_write(path, data):
        original_write(path, data)
        if os.path.basename(path) == "state.json" and json.loads(data)["epoch"] == epoch:
            die()

    rundir.atomic_write = atomic_write
sys.argv = ["kerascnn.train", *sys.argv[1:]]
runpy.run_module("kerascnn.train", run_name="__main__", alter_sys=True)
"""


def start(out: Path, *extra: str, kill: str = "") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", KILLER, *ARGS, "--out", str(out), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "KILL": kill, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def finish(process: subprocess.Popen) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode, output


def network_weights(path: Path) -> list:
    return saving.load_model(path).get_weights()  # kerascnn's classes registered, whatever ran before


# where the run dies, one process after another (each resuming the last); the epochs its checkpoint holds then;
# the file the kill leaves behind in checkpoint/ (the resumed run must clean it up)
KILLS = [
    ("batch:1:3", 1, None),  # mid-epoch 2: 4 of its 8 steps trained
    ("save:epoch-0001.keras", 1, ".partial-epoch-0001.keras"),  # resumed, killed half-way through epoch 2's save
    ("state:1", 2, "epoch-0000.keras"),  # resumed, killed once state.json names epoch 2's file, before the clean-up
]


def test_run_killed_with_sigkill_resumes_to_the_uninterrupted_weights(tmp_path):
    """One run killed three times (mid-epoch, mid-save, between the state and the clean-up), resumed after
    each kill, ends with the weights, history and files of an uninterrupted run."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    uninterrupted = start(straight)  # side by side with the first killed process: they share nothing but the CPU
    try:
        for index, (kill, done, leftover) in enumerate(KILLS):
            code, output = finish(start(killed, *(["--resume"] if index else []), kill=kill))
            assert code == -9, f"the run was not killed at {kill}: {output[-3000:]}"
            if index:
                assert f"at epoch {KILLS[index - 1][1] + 1} " in output, output[-3000:]
            assert state(killed)["epoch"] + 1 == done, (kill, state(killed))
            assert leftover is None or (killed / rundir.CHECKPOINT_DIR / leftover).exists(), kill
        code, output = finish(start(killed, "--resume"))
        assert code == 0 and "at epoch 3 (epochs 1-2 are done)" in output, output[-3000:]
        code, output = finish(uninterrupted)
        assert code == 0, output[-3000:]
    finally:
        uninterrupted.kill()  # a no-op once it has ended
        uninterrupted.communicate()

    for name in (rundir.LAST_MODEL, rundir.BEST_MODEL):
        for a, b in zip(network_weights(straight / name), network_weights(killed / name), strict=True):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-6, err_msg=name)
    history, straight_history = (
        json.loads((run / rundir.METRICS).read_text())["history"] for run in (killed, straight)
    )
    assert [h["epoch"] for h in history] == [0, 1, 2]
    for h, s in zip(history, straight_history, strict=True):
        assert h == pytest.approx(s, rel=0, abs=1e-6)
    files, expected = (
        sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()) for run in (killed, straight)
    )
    assert files == expected  # no temporary file, no stale checkpoint


def state(run: Path) -> dict:
    return json.loads((run / rundir.CHECKPOINT_DIR / rundir.STATE).read_text())
