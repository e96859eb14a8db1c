"""Training: `python -m kerascnn.train`, or `train(resolve({...}))` from Python."""

from kerascnn.train.config import PRESETS, TrainConfig, resolve

__all__ = ["PRESETS", "TrainConfig", "resolve", "train"]


def train(config: TrainConfig) -> dict:
    """Runs `config` and returns its metrics (see kerascnn.train.trainer.train)."""
    from kerascnn.train.trainer import train as run

    return run(config)
