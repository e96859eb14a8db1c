"""The run directory, the unit users copy around: its file names, and atomic writes into it.

Training writes it (`python -m kerascnn.train`), export reads it (`python -m kerascnn.export`); both name its
files through this module only.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG = "config.yaml"  # the resolved TrainConfig
DATASET = "dataset.json"  # labels, input shape, normalization
LABELS = "labels.txt"  # one label per line
METRICS = "metrics.json"  # test accuracy, history
BEST_MODEL = "best.keras"  # the network at the best validation accuracy
LAST_MODEL = "last.keras"  # the network after the last epoch
CHECKPOINT_DIR = "checkpoint"  # epoch-NNNN.keras (training model + optimizer) and state.json
STATE = "state.json"
TENSORBOARD_DIR = "tb"
EXPORT_DIR = "export"  # python -m kerascnn.export RUN writes here without --out


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes `data` to a temporary file beside `path`, then renames it over `path`: readers never see half a
    file, and an interrupted write leaves the previous file and no temporary one.

    Raises:
        OSError: the folder is missing or not writable (the temporary file is removed).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
