"""Learning-rate schedules: linear warm-up from 0 to the peak, then decay to 0 at the last step.

`cosine` is Keras's own `CosineDecay`; `linear` (`WarmupLinearDecay`) has no Keras counterpart with a warm-up: it
lives in `kerascnn.lr_schedule`, below `kerascnn.saving`, which registers it so that checkpoints (which hold the
optimizer and its schedule) load again.
"""

from __future__ import annotations

import keras

from kerascnn.lr_schedule import WarmupLinearDecay
from kerascnn.train.config import LR_DECAYS


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
