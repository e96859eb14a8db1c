"""`WarmupLinearDecay`, the learning-rate schedule of `--lr-decay linear` (`kerascnn.train.schedules` chooses it).

A training checkpoint holds its optimizer and so this schedule: the class is registered with Keras, and sits below
`kerascnn.saving` (which imports it before loading) and `kerascnn.train` (which builds it).
"""

from __future__ import annotations

import keras


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
