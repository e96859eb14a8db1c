"""kerascnn: the ideas of a convolutional network as Keras 3 layers, models, training and TFLite export.

Importing `kerascnn` is cheap: the subpackages (`layers`, `models`, `data`, `train`, `export`, `optimize`)
load on first use, so `python -m kerascnn.train --help` answers before TensorFlow is imported.
`from kerascnn import layers, models` works as usual. To read a kerascnn `.keras` file, use
`kerascnn.load_model(path)`, or import `kerascnn.layers` first (training checkpoints also need
`kerascnn.data` and `kerascnn.lr_schedule`): `keras.saving.load_model` finds a custom class only once its
module has been imported.
When Keras is already imported, `import kerascnn` registers every class at once.
"""

import importlib
import os
import sys
import warnings

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"


def _warn_if_onednn_is_off() -> None:
    """Warns that TensorFlow, imported before kerascnn, runs without its oneDNN kernels, and what to set.

    TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it is imported (`import keras` imports it), and cannot switch
    the kernels on afterwards. Only called when the user did not set the variable.
    """
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != "tensorflow":
        return  # TensorFlow only feeds the data; the train step runs elsewhere
    try:  # no public API says whether the oneDNN kernels are on
        from tensorflow.python.util import _pywrap_util_port

        enabled = _pywrap_util_port.IsMklEnabled()
    except (ImportError, AttributeError):
        return
    if not enabled:
        warnings.warn(
            "TensorFlow was imported before kerascnn (`import keras` imports it) with its oneDNN CPU kernels off, "
            "TensorFlow's default on CPUs without AVX-512: a train step then takes about 1.7x as long (the quick "
            "VGG on an AVX2-only CPU; README, Benchmarks). TensorFlow reads TF_ENABLE_ONEDNN_OPTS only when it is "
            "imported: `import kerascnn` before `import keras`, or set TF_ENABLE_ONEDNN_OPTS=1 in the environment "
            "(TF_ENABLE_ONEDNN_OPTS=0 keeps Eigen's kernels and this warning away).",
            stacklevel=3,
        )


# TensorFlow turns its oneDNN CPU kernels on by default only where the CPU has AVX-512 (VNNI, BF16, AMX); on an
# AVX2-only CPU it keeps Eigen's, which made the quick VGG's train step slower (README, Benchmarks). TensorFlow reads
# the variable once, when it is imported: a setting of the user's wins; TensorFlow imported first gets a warning.
if ONEDNN not in os.environ and "tensorflow" in sys.modules:
    _warn_if_onednn_is_off()
os.environ.setdefault(ONEDNN, "1")

__version__ = "0.1.0"
__all__ = ["data", "export", "layers", "load_model", "models", "optimize", "register_serializables", "train"]
_SUBPACKAGES = {"data", "export", "layers", "models", "optimize", "train"}


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"kerascnn.{name}")
    if name in ("load_model", "register_serializables"):
        return getattr(importlib.import_module("kerascnn.saving"), name)
    raise AttributeError(f"module 'kerascnn' has no attribute {name!r}")


if "keras" in sys.modules:  # Keras (and its backend) is loaded anyway: register now, as before
    importlib.import_module("kerascnn.saving").register_serializables()
