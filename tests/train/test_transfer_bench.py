"""bench/transfer.py's few-shot draws. (No test asserts that fine-tuning wins: on the small cases measured it did
not, see README, Fine-tuning.)"""

import importlib.util
from pathlib import Path

import numpy as np

spec = importlib.util.spec_from_file_location("bench_transfer", Path(__file__).parents[2] / "bench" / "transfer.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_few_shot_draws_that_many_of_each_class():
    y = np.repeat(np.arange(3), 20)
    x = np.arange(60)
    picked_x, picked_y = bench.few_shot(x, y, 4, seed=1)
    assert np.bincount(picked_y).tolist() == [4, 4, 4] and len(set(picked_x)) == 12
    assert (y[picked_x] == picked_y).all()
    again, _ = bench.few_shot(x, y, 4, seed=1)
    other, _ = bench.few_shot(x, y, 4, seed=2)
    assert (again == picked_x).all() and not (other == picked_x).all()
