"""Loading kerascnn's `.keras` files: every class they may name is registered with Keras first.

`keras.saving.load_model` finds custom classes only once they are registered, and kerascnn registers each
class where it is defined: the layers in `kerascnn.layers`, the augmentation layer of a training
checkpoint in `kerascnn.data.augment` and its optimizer's learning-rate schedule in `kerascnn.lr_schedule`.
`register_serializables()` imports all three; `load_model` calls it. This module sits below `kerascnn.train`, which
loads models through it.
"""

from __future__ import annotations

import os
from pathlib import Path

from kerascnn import rundir
from kerascnn.rundir import Run


def register_serializables() -> None:
    """Imports every module that registers a Keras-serializable kerascnn class (idempotent)."""
    import kerascnn.data.augment  # noqa: F401  RandomCropFlip, in training checkpoints
    import kerascnn.layers  # noqa: F401  the layers of every network
    import kerascnn.lr_schedule  # noqa: F401  WarmupLinearDecay, in training checkpoints (--lr-decay linear)


def load_model(path: str | os.PathLike, **kwargs):
    """`keras.saving.load_model(path, **kwargs)` with kerascnn's classes registered. `path` is a .keras file, or a
    run directory: its model (`kerascnn.rundir.Run.model_file`, the file fine-tuning and export take too).

    Raises:
        FileNotFoundError: `path` is a folder that holds no run's model.

    Example:
        >>> network = kerascnn.load_model("runs/quick")  # runs/quick/best.keras
    """
    import keras

    if Path(path).is_dir():
        model_file = Run(path).model_file()
        if model_file is None:
            raise FileNotFoundError(
                f"{path} holds no {rundir.BEST_MODEL} or {rundir.LAST_MODEL}: give a finished kerascnn run or a "
                ".keras file."
            )
        path = model_file
    register_serializables()
    return keras.saving.load_model(path, **kwargs)
