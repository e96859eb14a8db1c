"""The CNN note's building blocks as Keras 3 layers (channels last, any backend)."""

from kerascnn.layers.blocks import ConvBNAct
from kerascnn.layers.conv import Conv2D
from kerascnn.layers.heads import GAPHead
from kerascnn.layers.padding import conv_output_size
from kerascnn.layers.pooling import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D

__all__ = [
    "AvgPool2D",
    "Conv2D",
    "ConvBNAct",
    "GAPHead",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "MaxPool2D",
    "conv_output_size",
]
