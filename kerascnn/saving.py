"""Loading kerascnn's `.keras` files: every class they may name is registered with Keras first.

`keras.saving.load_model` finds custom classes only once they are registered, and kerascnn registers each
class where it is defined: the layers in `kerascnn.layers`, the augmentation layer of a training
checkpoint in `kerascnn.data.augment` and its optimizer's learning-rate schedule in `kerascnn.lr_schedule`.
`register_serializables()` imports all three; `load_model` calls it. This module sits below `kerascnn.train`, which
loads models through it.
"""

from __future__ import annotations

import os


def register_serializables() -> None:
    """Imports every module that registers a Keras-serializable kerascnn class (idempotent)."""
    import kerascnn.data.augment  # noqa: F401  RandomCropFlip, in training checkpoints
    import kerascnn.layers  # noqa: F401  the layers of every network
    import kerascnn.lr_schedule  # noqa: F401  WarmupLinearDecay, in training checkpoints (--lr-decay linear)


def load_model(path: str | os.PathLike, **kwargs):
    """`keras.saving.load_model(path, **kwargs)` with kerascnn's classes registered.

    Example:
        >>> network = kerascnn.load_model("runs/quick/best.keras")
    """
    import keras

    register_serializables()
    return keras.saving.load_model(path, **kwargs)
