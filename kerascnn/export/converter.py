# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""Keras model -> TFLite (LiteRT) flatbuffer with builtin ops only, under named quantization presets."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable

import numpy as np

from kerascnn.export.presets import PRESETS, QuantizationPreset, get


class ConversionError(ValueError):
    """The model needs an op TFLite has no builtin for; the message names the op and the layer.

    Raised by `convert`, which never falls back to Flex (SELECT_TF_OPS) ops. A ValueError.

    Example:
        >>> import keras
        >>> import tensorflow as tf
        >>> from kerascnn.export import convert
        >>> inputs = keras.Input((4,))
        >>> cumprod = keras.layers.Lambda(lambda x: tf.math.cumprod(x, axis=1), output_shape=(4,), name="cumprod")
        >>> convert(keras.Model(inputs, cumprod(inputs)))
        Traceback (most recent call last):
        ...
        kerascnn.export.converter.ConversionError: The model needs ops ... TensorFlow op Cumprod in layer 'cumprod'...
    """


def _flex_culprits(message: str, layer_names: Iterable[str]) -> list[tuple[str, str]]:
    """(TensorFlow op, Keras layer) pairs from the converter's "error: loc(fused["Op:", "model/layer_1/Op@..."])"
    lines; the layer is the first path component that names a layer of the model ("?" if none does)."""
    layer_names = set(layer_names)
    found = []
    for line in message.splitlines():
        match = re.search(r'error: loc\((?:callsite\()?fused\["(\w+):", "([^"@]+)@', line)
        if not match:
            continue
        op, path = match.groups()
        candidates = [p for part in path.split("/")[1:] for p in (part, re.sub(r"_\d+$", "", part))]
        layer = next((p for p in candidates if p in layer_names), "?")
        if (op, layer) not in found:
            found.append((op, layer))
    if not found:  # "Custom ops: Igamma, Lgamma" / "Flex ops: ..." summaries carry no location
        for names in re.findall(r"(?:Custom|Flex) ops: ([\w, ]+)", message):
            found += [(name.strip(), "?") for name in names.split(",") if name.strip()]
    return found


def convert(
    model, quant: str = "float32", representative_images: np.ndarray | None = None, quantization_aware: bool = False
) -> bytes:
    """Converts `model` (TensorFlow backend) with TFLITE_BUILTINS only: Flex (SELECT_TF_OPS) never.

    Args:
        model: a Keras 3 model, or a tf_keras model from kerascnn.optimize.
        quant: a preset name of `kerascnn.export.presets.PRESETS`, or the preset itself.
        representative_images: normalized float32 images (N, H, W, C) for int8 calibration.
        quantization_aware: `model` was trained with fake quantization (tfmot QAT), which carries the int8
            ranges: int8 presets then need no calibration images.

    Returns:
        The .tflite flatbuffer as bytes. Full-integer presets store each tensor x as int8 (uint8) q with
        q = round(x / scale) + zero_point, scale and zero point per tensor (per output channel for
        convolution weights) from the calibration images' range.

    Raises:
        ConversionError: an op has no TFLite builtin (names the op and the layer that made it).
        ValueError: unknown preset; a full-integer preset without calibration images; a quantization-aware
            model under a preset that is not full-integer.

    Example:
        >>> import numpy as np
        >>> from kerascnn.export import convert
        >>> from kerascnn.models import create
        >>> model = create("vgg", (8, 8, 1), 3, widths=(4,))
        >>> float_model = convert(model)  # "float32": no quantization
        >>> calibration = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype("float32")
        >>> int8_model = convert(model, "int8-io", calibration)
        >>> float_model[4:8], int8_model[4:8]  # both TFLite flatbuffers (file identifier TFL3)
        (b'TFL3', b'TFL3')
        >>> convert(model, "int8")
        Traceback (most recent call last):
        ...
        ValueError: --quant int8 needs calibration images (representative_images).
    """
    import tensorflow as tf

    preset = quant if isinstance(quant, QuantizationPreset) else get(quant)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if preset.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if preset.float16_weights:
        converter.target_spec.supported_types = [tf.float16]
    if quantization_aware and not preset.calibrated:
        raise ValueError(
            f"A quantization-aware model exports under a full-integer preset "
            f"({', '.join(p.name for p in PRESETS.values() if p.calibrated)}). "
            f"Received: quant={preset.name!r}."
        )
    if preset.calibrated and not quantization_aware:
        if representative_images is None or not len(representative_images):
            raise ValueError(f"--quant {preset.name} needs calibration images (representative_images).")
        images = np.asarray(representative_images, np.float32)
        converter.representative_dataset = lambda: ([image[None]] for image in images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.as_dtype(preset.input_dtype)
    converter.inference_output_type = tf.as_dtype(preset.output_dtype)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras's export lists every captured variable
            return converter.convert()
    except Exception as error:  # the converter raises ConverterError and friends
        culprits = _flex_culprits(str(error), [layer.name for layer in model.layers])
        if culprits:
            where = "; ".join(f"TensorFlow op {op} in layer {layer!r}" for op, layer in culprits)
            raise ConversionError(
                f"The model needs ops that TFLite has no builtin for: {where}. kerascnn exports builtin ops only "
                "(no Flex/SELECT_TF_OPS, which edge runtimes lack): rewrite that layer with keras.ops that "
                "TFLite supports."
            ) from error
        raise
