"""bench/layers.py times single train steps in pairs, alternating which model goes first."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("bench_layers", Path(__file__).parents[2] / "bench" / "layers.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


class FakeModel:
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def train_on_batch(self, x, y):
        self.calls.append((self.name, x))


def test_paired_steps_alternate_which_model_goes_first():
    calls = []
    models = [FakeModel("kerascnn", calls), FakeModel("keras", calls)]
    times = bench.paired_steps(models, [(0, 0), (1, 1)], steps=4)
    assert [name for name, _ in calls] == ["kerascnn", "keras", "keras", "kerascnn"] * 2
    assert [x for _, x in calls] == [0, 0, 1, 1, 0, 0, 1, 1]  # both models get the same batch in each pair
    assert {name: len(t) for name, t in times.items()} == {"kerascnn": 4, "keras": 4}


def test_quartiles():
    assert bench.quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((2.0, 3.0, 4.0))
