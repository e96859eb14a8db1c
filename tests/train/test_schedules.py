"""Learning-rate schedules (--lr-decay): the warm-up, the decay to 0 at the last step, a checkpoint that loads."""

import keras
import numpy as np
import pytest

from kerascnn.train import resolve, schedules, train


def rates(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_linear_rises_then_falls_to_zero_at_the_last_step():
    schedule = schedules.schedule("linear", 0.01, warmup_steps=10, total_steps=110)
    # 0 -> peak over 10 steps, then 100 steps down to 0, and 0 after
    expected = [0.0, 0.005, 0.01, 0.0095, 0.005, 0.0001, 0.0, 0.0]
    np.testing.assert_allclose(rates(schedule, [0, 5, 10, 15, 60, 109, 110, 200]), expected, atol=1e-9)


def test_linear_without_warm_up_starts_at_the_peak():
    schedule = schedules.schedule("linear", 0.02, warmup_steps=0, total_steps=4)
    np.testing.assert_allclose(rates(schedule, range(5)), [0.02, 0.015, 0.01, 0.005, 0.0], atol=1e-9)


def test_cosine_is_keras_cosine_decay_with_the_same_ends():
    schedule = schedules.schedule("cosine", 0.01, warmup_steps=10, total_steps=110)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    # the same warm-up as linear; half-way down the cosine is at half the peak, like the line
    np.testing.assert_allclose(rates(schedule, [0, 5, 10, 60, 110]), [0, 0.005, 0.01, 0.005, 0.0], atol=1e-8)
    # and above the line before the middle
    assert float(schedule(35)) > float(schedules.schedule("linear", 0.01, 10, 110)(35)) + 1e-4


def test_linear_round_trips_through_keras_serialization():
    schedule = schedules.WarmupLinearDecay(0.003, 7, 93)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(again, schedules.WarmupLinearDecay) and again.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    "arguments, word", [((0.0, 1, 1), "peak=0.0"), ((0.1, -1, 1), "warmup_steps=-1"), ((0.1, 0, 0), "decay_steps=0")]
)
def test_bad_arguments_name_themselves(arguments, word):
    with pytest.raises(ValueError, match=word):
        schedules.WarmupLinearDecay(*arguments)


def test_unknown_decay_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="cosine or linear"):
        resolve(dict(lr_decay="step"))
    with pytest.raises(ValueError, match="cosine, linear"):
        schedules.schedule("step", 0.1, 0, 10)


def test_a_linear_run_ends_at_zero_and_resumes_from_its_checkpoint(tmp_path):
    settings = dict(model="lenet5", limit=192, batch_size=64, tensorboard=False, lr_decay="linear", warmup_epochs=0)
    out = str(tmp_path / "run")
    first = train(resolve(dict(settings, epochs=1, out=out)))
    # one epoch of 3 steps from the peak: the rate logged after it is the next step's, 3e-3 * (1 - 3/3) = 0
    assert first["history"][0]["learning_rate"] == pytest.approx(0.0, abs=1e-9)
    resumed = train(resolve(dict(settings, epochs=3, out=out, resume=True)))  # loads the checkpoint's optimizer
    # the new total of 9 steps: after epoch 2 (step 6) a third of the peak is left, 0 after the last
    assert [h["learning_rate"] for h in resumed["history"][1:]] == pytest.approx([1e-3, 0.0], abs=1e-9)
