"""The data stack. One public way to open data, `open(spec)` (`kerascnn.data.stream`), over one `DataSpec` per run
(spec.py) and one `Source` protocol (source.py) with a reader per kind (folder.py, idx.py, tfds_source.py); the
splits as tf.data pipelines (pipeline.py), one decode/orientation/resize (images.py), in-memory arrays for
notebooks (datasets.py), and jit-friendly augmentation (augment.py). Names are imported lazily, so
`import kerascnn.data.spec` stays light."""

import importlib

_NAMES = {
    "DataSpec": "kerascnn.data.spec",
    "ImageDataset": "kerascnn.data.datasets",
    "RandomCropFlip": "kerascnn.data.augment",
    "RandomErasing": "kerascnn.data.augment",
    "Source": "kerascnn.data.source",
    "load_dataset": "kerascnn.data.datasets",
    "open": "kerascnn.data.stream",
    "read_idx": "kerascnn.data.idx",
}
__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'kerascnn.data' has no attribute {name!r}")
