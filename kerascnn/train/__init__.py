"""Training: `python -m kerascnn.train`, or `train(resolve({...}))` from Python."""

from kerascnn.train.config import PRESETS, TrainConfig, resolve

__all__ = ["PRESETS", "TrainConfig", "resolve", "train"]


def train(config: TrainConfig) -> dict:
    """Runs `config` and returns its metrics (see kerascnn.train.trainer.train).

    Trains `config.model` on the configured data, tests it, and writes the run directory (`config.run_dir`):
    config.yaml, dataset.json, best.keras, the resumable checkpoint, metrics.json and the logs.

    Args:
        config: the run's settings, from `resolve`.

    Returns:
        The metrics also written to metrics.json (test accuracy and loss, epochs, timings).

    Raises:
        TrainingError: the run cannot start or go on (the message says why and what to do).
        ValueError, FileNotFoundError, RuntimeError: bad data or model options (named in the message).

    Example:
        The README's quick preset, about 10 minutes on 2 CPU cores, into runs/quick (not a doctest: it trains)::

            from kerascnn.train import resolve, train

            metrics = train(resolve({"preset": "quick"}))
            print(metrics["test_accuracy"])
    """
    from kerascnn.train.trainer import train as run

    return run(config)
