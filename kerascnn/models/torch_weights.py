"""torchvision's MobileNetV2 state dict (a `.pth` file) into kerascnn's `mobilenetv2`, every tensor mapped by name.

torchvision names each convolution and batch norm by its place (`features.3.conv.1.0.weight`); kerascnn's layers
carry Keras's names (`block_2_depthwise`), and `torchvision_names` maps one onto the other. On the way:

- a kernel: torch stores OIHW (out, in / groups, kh, kw), Keras HWIO: W_keras = W_torch.transpose(2, 3, 1, 0). A
  depthwise kernel (C, 1, kh, kw) becomes (kh, kw, 1, C), kerascnn's grouped layout with groups == C (Keras's
  DepthwiseConv2D would store it (kh, kw, C, 1));
- the classifier: `classifier.1` is a Linear (N, C) after global average pooling, the GAP head's 1x1 kernel
  (1, 1, C, N) = W.T, since the average and the 1x1 convolution are both linear and commute; copied when the
  model has N classes, else the head stays random (fine-tuning);
- batch norm: weight, bias, running_mean, running_var are gamma, beta, moving mean and variance; torch's epsilon
  is 1e-5 (Keras's MobileNetV2 uses 1e-3), so the model is built with `TORCH_BN`;
- padding: torch pads every 3x3 convolution by 1 on each side. At stride 2 on an even size that is not
  TensorFlow's "same" (which pads (0, 1): the odd cell at the bottom/right), so the model is built with
  kerascnn's explicit `padding=1`, which exports as PAD + convolution there and as one "same" convolution where
  the two agree (odd sizes, stride 1).

torchvision's inputs are (pixel / 255 - mean) / std with ImageNet's per-channel mean and std: in pixel units
`TORCHVISION_NORMALIZATION`, which the training run takes as its normalization.

A `.pth` file is a pickle, which can run code when loaded: it is read with `torch.load(weights_only=True)`, which
unpickles only tensors and plain containers and refuses anything else, never executing it.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from kerascnn.layers import ConvBNAct, GAPHead
from kerascnn.models.keras_weights import IMAGENET_PTH, INSTALL_PTH, assign_all  # noqa: F401  (tests read them here)
from kerascnn.models.registry import OptionError

# torchvision's ImageNet preprocessing (transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# on pixel / 255), in pixel units: (pixel - 255 * mean) / (255 * std)
TORCHVISION_NORMALIZATION = {
    "mean": [0.485 * 255, 0.456 * 255, 0.406 * 255],
    "std": [0.229 * 255, 0.224 * 255, 0.225 * 255],
}
# torch.nn.BatchNorm2d's defaults: momentum 0.1 is Keras's 0.9 (Keras weights the old value); epsilon 1e-5
TORCH_BN = dict(bn_momentum=0.9, bn_epsilon=1e-5)
TORCH_SUFFIXES = (".pth", ".pt")


def is_torch_file(weights) -> bool:
    """Whether `weights` names a PyTorch state dict file (.pth or .pt)."""
    return isinstance(weights, (str, Path)) and Path(weights).suffix in TORCH_SUFFIXES


def read_state_dict(path) -> dict[str, np.ndarray]:
    """The tensors of the state dict in `path`, as float32 NumPy arrays (`num_batches_tracked` left out).

    Raises:
        OptionError: PyTorch is not installed, the file is missing, or it holds anything but a dict of tensors
            (refused by `torch.load(weights_only=True)`: nothing in it is executed).
    """
    path = Path(path)
    try:
        import torch
    except ImportError as error:
        raise OptionError(
            f"weights={str(path)!r}: reading a PyTorch .pth file needs torch: pip install 'kerascnn[torch-weights]'."
        ) from error
    if not path.is_file():
        raise OptionError(f"weights={str(path)!r}: no such file. Get torchvision's MobileNetV2 with {INSTALL_PTH}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle.UnpicklingError for a forbidden global; others for a damaged file
        details = " ".join(str(error).split())[:160]
        raise OptionError(
            f"weights={str(path)!r} is not a state dict of tensors, so it was refused and not executed "
            f"({type(error).__name__}: {details}). Give torchvision's MobileNetV2 state dict (model.state_dict())."
        ) from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OptionError(
            f"weights={str(path)!r} holds a {type(state).__name__}, not a state dict of tensors. "
            "Save torchvision's model.state_dict()."
        )
    return {
        key: value.detach().to(torch.float32).numpy()
        for key, value in state.items()
        if not key.endswith("num_batches_tracked")
    }


def torchvision_names(name: str) -> tuple[str, str]:
    """(convolution, batch norm) prefixes in torchvision's MobileNetV2 of kerascnn's ConvBNAct `name`.

    torchvision's `features` are the stem (0), the 17 inverted-residual blocks (1-17: `conv` holds [expand
    Conv2dNormActivation,] depthwise Conv2dNormActivation, the projection's Conv2d and its BatchNorm2d) and the
    last 1x1 convolution (18).
    """
    if name == "Conv1":
        return "features.0.0", "features.0.1"
    if name == "Conv_1":
        return "features.18.0", "features.18.1"
    block, part = name.rsplit("_", 1)
    if block == "expanded_conv":  # block 0: no expansion
        index, parts = 1, {"depthwise": ("conv.0.0", "conv.0.1"), "project": ("conv.1", "conv.2")}
    else:
        index = int(block.removeprefix("block_")) + 1
        parts = {
            "expand": ("conv.0.0", "conv.0.1"),
            "depthwise": ("conv.1.0", "conv.1.1"),
            "project": ("conv.2", "conv.3"),
        }
    conv, bn = parts[part]
    return f"features.{index}.{conv}", f"features.{index}.{bn}"


def copy_state_dict(state: dict[str, np.ndarray], model: keras.Model, source: str = "the state dict") -> list[str]:
    """Copies torchvision's MobileNetV2 `state` into kerascnn's `model` (built with torch's layout: see the module
    docstring). Every ConvBNAct takes its kernel and batch norm; the GAP head takes `classifier.1` when the
    class counts agree. Returns the names of the layers copied.

    Raises:
        OptionError: a tensor is missing or has another shape (another width), or the state dict holds tensors
            that no layer took (not torchvision's MobileNetV2).
    """
    used = set()

    def take(key):
        if key not in state:
            raise OptionError(f"{source} has no tensor {key!r}: not torchvision's MobileNetV2?")
        used.add(key)
        return state[key]

    copied = []
    for layer in model.layers:
        if isinstance(layer, ConvBNAct):
            conv, bn = torchvision_names(layer.name)
            arrays = [take(f"{conv}.weight").transpose(2, 3, 1, 0)]  # OIHW -> HWIO
            arrays += [take(f"{bn}.{k}") for k in ("weight", "bias", "running_mean", "running_var")]
            targets = [layer.conv.kernel, layer.bn.gamma, layer.bn.beta, layer.bn.moving_mean, layer.bn.moving_variance]
        elif isinstance(layer, GAPHead):
            kernel, bias = take("classifier.1.weight"), take("classifier.1.bias")
            if kernel.shape[0] != layer.num_classes:
                continue  # another task: a new head
            arrays = [kernel.T.reshape(1, 1, *kernel.T.shape), bias]
            targets = [layer.classifier.kernel, layer.classifier.bias]
        else:
            continue
        assign_all(layer, targets, arrays, source)
        copied.append(layer.name)
    left = sorted(set(state) - used)
    if left:
        raise OptionError(f"{source} holds tensors no layer takes ({', '.join(left[:3])}, ...): not a MobileNetV2?")
    return copied


def load_torchvision_weights(model: keras.Model, path) -> list[str]:
    """Loads torchvision's MobileNetV2 state dict in `path` into kerascnn's `model`. Returns the layers copied.

    Example:

    >>> model = models.create("mobilenetv2", (224, 224, 3), 1000, weights=".weights/mobilenet_v2-b0353104.pth")

    Raises:
        OptionError: the input is not RGB, PyTorch is missing, or the file is refused or does not fit.
    """
    if model.input_shape[-1] != 3:
        raise OptionError(
            f"MobileNetV2 weights are for RGB images (3 channels), not input_shape={model.input_shape[1:]}."
        )
    return copy_state_dict(read_state_dict(path), model, source=f"weights={str(path)!r}")
