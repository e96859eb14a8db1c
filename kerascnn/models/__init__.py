"""Functional CNNs built from `kerascnn.layers`, created by name: `create("resnet", (28, 28, 1), 10)`."""

from kerascnn.models import lenet, mobilenet, mobilenetv2, nin, resnet, vgg  # noqa: F401  (register the builders)
from kerascnn.models.features import head_features
from kerascnn.models.input_size import smallest_input_size
from kerascnn.models.registry import create, names, register

__all__ = ["create", "head_features", "names", "register", "smallest_input_size"]
