"""kerascnn: the ideas of a convolutional network as Keras 3 layers, models, training and TFLite export."""

from kerascnn import layers
from kerascnn.saving import load_model, register_serializables

register_serializables()  # after `import kerascnn`, keras.saving.load_model reads kerascnn's files

__version__ = "0.1.0"
__all__ = ["layers", "load_model"]
