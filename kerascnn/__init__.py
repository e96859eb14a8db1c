"""kerascnn: the ideas of a convolutional network as Keras 3 layers, models, training and TFLite export."""

from kerascnn import layers

__version__ = "0.1.0"
__all__ = ["layers"]
