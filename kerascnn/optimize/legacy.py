"""tf_keras (Keras 2) and tensorflow-model-optimization, imported without switching the process to Keras 2.

tfmot sets TF_USE_LEGACY_KERAS=1 when it is imported, so that `tf.keras`, and every TensorFlow API that
consults the variable later (the TFLite converter included), would resolve to tf_keras for the rest of
the process. `tf_keras_and_tfmot()` pins `tf.keras` to Keras 3 first, imports tfmot, and puts the
variable back as it was, so kerascnn keeps using Keras 3 beside tfmot in the same process.
"""

from __future__ import annotations

import os

_VARIABLE = "TF_USE_LEGACY_KERAS"


def tf_keras_and_tfmot():
    """(tf_keras, tensorflow_model_optimization), imported with the Keras 3 process left as it was.

    `tf.keras` is resolved to Keras 3 before tfmot is imported, and TF_USE_LEGACY_KERAS is restored afterwards
    (unset if it was), so `keras` and the TFLite converter stay on Keras 3.

    Returns:
        The two modules, (tf_keras, tfmot).

    Raises:
        ImportError: tensorflow-model-optimization or tf-keras is not installed (the message says what to
            install).

    Example:
        >>> import os
        >>> from kerascnn.optimize import tf_keras_and_tfmot
        >>> tf_keras, tfmot = tf_keras_and_tfmot()
        >>> tf_keras.__name__, tfmot.__name__
        ('tf_keras', 'tensorflow_model_optimization')
        >>> os.environ.get("TF_USE_LEGACY_KERAS") is None  # unset here before, unset after
        True
    """
    import tensorflow as tf

    before = os.environ.get(_VARIABLE)
    getattr(tf.keras, "version", None)  # resolve TensorFlow's lazy `tf.keras` to Keras 3 before tfmot sets the variable
    try:
        import tensorflow_model_optimization as tfmot
        import tf_keras
    except ImportError as error:
        raise ImportError(
            "Quantization-aware training and pruning need tensorflow-model-optimization and "
            "tf-keras: pip install tensorflow-model-optimization 'tf-keras==2.21.*'"
        ) from error
    finally:
        if before is None:
            os.environ.pop(_VARIABLE, None)
        else:
            os.environ[_VARIABLE] = before
    return tf_keras, tfmot
