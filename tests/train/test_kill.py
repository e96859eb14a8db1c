"""A run killed with SIGKILL and resumed ends with the uninterrupted run's weights (issue 11, item 4: "test it with
a kill"). The CLI runs in a subprocess that kills itself at an exact point, so no timing decides where it dies."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from kerascnn import rundir

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
    original_write = checkpoint.atomic_write

    def atomic_write(path, data):
        original_write(path, data)
        if os.path.basename(path) == "state.json" and json.loads(data)["epoch"] == epoch:
            die()

    checkpoint.atomic_write = atomic_write
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
    output, _ = process.communicate(timeout=300)
    return process.returncode, output


def network_weights(path: Path) -> list:
    return keras.saving.load_model(path).get_weights()


# where the run dies, and the epochs its checkpoint holds then
KILLS = {
    "batch:1:3": 1,  # mid-epoch 2: 4 of its 8 steps trained
    "save:epoch-0001.keras": 1,  # half-way through writing epoch 2's checkpoint (best.keras already saved)
    "state:1": 2,  # state.json names epoch 2's checkpoint; epoch 1's file is not deleted yet
}


def test_runs_killed_with_sigkill_resume_to_the_uninterrupted_weights(tmp_path):
    """Killed mid-epoch, mid-save and between the state and the clean-up, each run resumes to the weights,
    history and files of an uninterrupted run. The runs go side by side: they share nothing but the CPU."""
    started = time.perf_counter()
    straight = tmp_path / "straight"
    killed = {kill: tmp_path / f"killed-{index}" for index, kill in enumerate(KILLS)}
    runs = [start(straight)] + [start(out, kill=kill) for kill, out in killed.items()]
    (code, output), *killed_runs = (finish(p) for p in runs)
    assert code == 0, output[-3000:]
    for (kill, out), (killed_code, killed_output) in zip(killed.items(), killed_runs):
        assert killed_code == -9, f"the run was not killed at {kill}: {killed_output[-3000:]}"
        assert state(out)["epoch"] + 1 == KILLS[kill], (kill, state(out))
    first_round = time.perf_counter() - started

    resumed = {kill: start(out, "--resume") for kill, out in killed.items()}
    straight_history = json.loads((straight / rundir.METRICS).read_text())["history"]
    for kill, process in resumed.items():
        out, (code, output) = killed[kill], finish(process)
        assert code == 0, output[-3000:]
        assert f"at epoch {KILLS[kill] + 1} (epochs 1-{KILLS[kill]} are done)" in output, output[-3000:]
        for name in (rundir.LAST_MODEL, rundir.BEST_MODEL):
            for a, b in zip(network_weights(straight / name), network_weights(out / name), strict=True):
                np.testing.assert_allclose(b, a, rtol=0, atol=1e-6, err_msg=f"{name} after a kill at {kill}")
        history = json.loads((out / rundir.METRICS).read_text())["history"]
        assert [h["epoch"] for h in history] == [0, 1, 2], kill
        for h, s in zip(history, straight_history, strict=True):
            assert h == pytest.approx(s, rel=0, abs=1e-6), kill
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        expected = sorted(str(p.relative_to(straight)) for p in straight.rglob("*") if p.is_file())
        assert files == expected, f"after a kill at {kill}"
    print(f"killed runs and the uninterrupted one: {first_round:.1f} s; resumed: {time.perf_counter() - started:.1f} s")


def state(run: Path) -> dict:
    return json.loads((run / rundir.CHECKPOINT_DIR / rundir.STATE).read_text())
