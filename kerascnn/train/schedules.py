"""Learning-rate schedules: linear warm-up from 0 to the peak, then decay to 0 at the last step.

`cosine` is Keras's own `CosineDecay`; `linear` (`WarmupLinearDecay`) has no Keras counterpart with a warm-up, so it
lives here, registered so that checkpoints (which hold the optimizer and its schedule) load again.
"""

from __future__ import annotations

import keras

from kerascnn.train.config import LR_DECAYS


@keras.saving.register_keras_serializable(package="kerascnn")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(t) = peak * t / warmup for t < warmup, then peak * (1 - (t - warmup) / decay_steps), never below 0.

    Args:
        peak: the learning rate at the end of the warm-up (> 0).
        warmup_steps: steps of the linear rise from 0 (>= 0; 0 starts at the peak).
        decay_steps: steps of the linear fall from the peak to 0 (>= 1).
    """

    def __init__(self, peak: float, warmup_steps: int, decay_steps: int):
        if not peak > 0 or warmup_steps < 0 or decay_steps < 1:
            raise ValueError(
                "WarmupLinearDecay needs peak > 0, warmup_steps >= 0 and decay_steps >= 1. "
                f"Received: peak={peak}, warmup_steps={warmup_steps}, decay_steps={decay_steps}."
            )
        self.peak, self.warmup_steps, self.decay_steps = float(peak), int(warmup_steps), int(decay_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rise = step / max(self.warmup_steps, 1)
        fall = 1.0 - (step - self.warmup_steps) / self.decay_steps
        fraction = keras.ops.where(step < self.warmup_steps, rise, keras.ops.maximum(fall, 0.0))
        return self.peak * fraction

    def get_config(self):
        return dict(peak=self.peak, warmup_steps=self.warmup_steps, decay_steps=self.decay_steps)


def schedule(decay: str, peak: float, warmup_steps: int, total_steps: int):
    """The schedule named `decay` ("cosine" or "linear"): warm-up over `warmup_steps`, then the decay reaches 0
    at step `total_steps` (warmup_steps < total_steps)."""
    decay_steps = max(total_steps - warmup_steps, 1)
    if decay == "linear":
        return WarmupLinearDecay(peak, warmup_steps, decay_steps)
    if decay == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0, decay_steps=decay_steps, warmup_target=peak, warmup_steps=warmup_steps
        )
    raise ValueError(f"Unknown learning-rate decay {decay!r}: use one of {', '.join(LR_DECAYS)}.")
