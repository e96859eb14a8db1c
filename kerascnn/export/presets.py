# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""Quantization presets as data, as MediaPipe Model Maker's `QuantizationConfig` does: each preset is one frozen
object holding every converter setting, and the converter, the audit, the manifest and the exporter all ask it
(adding a preset touches this file only).

Full-integer presets quantize a tensor x with q = round(x / scale) + zero_point, the scale and zero point set by
the calibration images' range.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantizationPreset:
    """One way to convert a model.

    Args:
        name: the preset's name on the command line and in file names (`vgg_<name>.tflite`).
        description: one line for `--help` and the README.
        optimize: run the converter's optimizations (`tf.lite.Optimize.DEFAULT`): quantize what the other
            settings allow.
        float16_weights: store the weights as float16 (`target_spec.supported_types = [tf.float16]`).
        calibrated: full integer: int8 weights and activations, ranges from calibration images (a representative
            dataset), int8 builtin ops only (`TFLITE_BUILTINS_INT8`). The audit then refuses float ops inside.
        input_dtype: the model's input tensor type ("float32", "int8" or "uint8").
        output_dtype: the model's output tensor type.

    `PRESETS` (`kerascnn.export.PRESETS`) maps each name to its preset: "float32", "float16", "dynamic", "int8",
    "int8-io" and "uint8"; `convert` and `audit` take the name or the preset.

    Example:
        >>> from kerascnn.export import PRESETS, QuantizationPreset
        >>> list(PRESETS)
        ['float32', 'float16', 'dynamic', 'int8', 'int8-io', 'uint8']
        >>> PRESETS["uint8"].calibrated, PRESETS["uint8"].integer_io, PRESETS["int8"].integer_io
        (True, True, False)
        >>> QuantizationPreset("bf16", "an example: a frozen dataclass, not registered").optimize
        False
    """

    name: str
    description: str
    optimize: bool = False
    float16_weights: bool = False
    calibrated: bool = False
    input_dtype: str = "float32"
    output_dtype: str = "float32"

    @property
    def integer_io(self) -> bool:
        """True when neither input nor output is float: the model holds no float tensor at all."""
        return self.input_dtype != "float32" and self.output_dtype != "float32"


#: The quantization presets by name, in the order the report lists them. float32 is no quantization, float16
#: stores float16 weights, dynamic int8 weights; int8 is full integer with float32 input and output, int8-io and
#: uint8 full integer with integer input and output. `QuantizationPreset` documents each setting.
PRESETS: dict[str, QuantizationPreset] = {
    preset.name: preset
    for preset in (
        QuantizationPreset("float32", "no quantization"),
        QuantizationPreset(
            "float16", "weights stored as float16, computed in float32", optimize=True, float16_weights=True
        ),
        QuantizationPreset("dynamic", "int8 weights, activations quantized on the fly (dynamic range)", optimize=True),
        QuantizationPreset(
            "int8",
            "full integer: int8 weights and activations, float32 input and output",
            optimize=True,
            calibrated=True,
        ),
        QuantizationPreset(
            "int8-io",
            "full integer with int8 input and output (no float at the edges)",
            optimize=True,
            calibrated=True,
            input_dtype="int8",
            output_dtype="int8",
        ),
        QuantizationPreset(
            "uint8",
            "full integer with uint8 input and output: raw 0..255 pixels in, as MediaPipe "
            "and the TFLite Task Library feed quantized image models",
            optimize=True,
            calibrated=True,
            input_dtype="uint8",
            output_dtype="uint8",
        ),
    )
}


def get(name: str) -> QuantizationPreset:
    """The preset called `name`.

    Raises:
        ValueError: no such preset (the message lists the valid names).
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown quantization {name!r}. Valid: {', '.join(PRESETS)}.")
    return PRESETS[name]
