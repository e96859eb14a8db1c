"""bench/gpu_table.py (the table of bench/gpu.sh) and bench/peer.py's rounds, on made-up inputs."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_table_rows(tmp_path):
    gpu_table = load("gpu_table")
    lines = ["kerasref rc=0 wall_s=40.0", "fast rc=0 wall_s=30.5", "best rc=124 wall_s=330.0"]
    (tmp_path / "summary.txt").write_text("\n".join(lines) + "\n")
    summary = dict(params=698282, epochs=12, hit_wall_s=35.2, median_epoch_s_after_1=0.47, first_epoch_s=28.1)
    (tmp_path / "kerasref.json").write_text(json.dumps({**summary, "final_acc": 0.9412}) + "\n")
    (tmp_path / "fast").mkdir()
    metrics = dict(parameters=698282, history=[{}] * 4, test_accuracy_last=0.9405)
    (tmp_path / "fast" / "metrics.json").write_text(json.dumps({**metrics, "epoch_seconds_this_session": [9, 1, 2, 3]}))
    rows = gpu_table.table(tmp_path).splitlines()
    assert rows[2] == "| plain Keras 3, JAX (kerasref.py) | 698282 | 12 | 35.2 | 0.47 | 27.6 | 94.12 % |"
    assert rows[3] == "| kerascnn --preset fast | 698282 | 4 | 30.5 | 2.00 | 7.0 | 94.05 % |"
    assert rows[4].startswith("| best | - | - | failed (rc=124)")


def test_gpu_table_says_when_the_target_is_missed(tmp_path):
    gpu_table = load("gpu_table")
    metrics = dict(test_accuracy_last=0.93, epoch_seconds_this_session=[5, 1])
    row = gpu_table.kerascnn_row("fast-warm", metrics, 20, 0.94)
    assert row[0] == "kerascnn --preset fast (warm cache)" and row[3] == "not reached (20.0 s in all)"


def test_peer_rounds_rotate_which_model_goes_first():
    peer = load("peer")
    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def step(self, x, y):
            calls.append((self.name, x))

    times = peer.timed_rounds([Fake("a"), Fake("b"), Fake("c")], [(0, 0), (1, 1)], rounds=3, steps=2)
    firsts = [calls[i][0] for i in range(0, 18, 2)]
    assert firsts == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [x for _, x in calls[:6]] == [0, 1, 0, 1, 0, 1]  # every model steps through the same batches
    assert {name: len(t) for name, t in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert peer.quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((2.0, 3.0, 4.0))
