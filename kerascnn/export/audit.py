# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""What a .tflite file holds: its operators, and whether it meets kerascnn's rules (builtin ops only;
int8 models integer inside)."""

from __future__ import annotations

import numpy as np

from kerascnn.export import presets
from kerascnn.export.tflite_file import TFLiteFile

EDGE_OPS = {"QUANTIZE", "DEQUANTIZE"}


class AuditError(ValueError):
    """A .tflite file that breaks the export rules; the message says which op and why.

    Raised by `audit` (and `op_counts` for bytes that are not a TFLite model). A ValueError.

    Example:
        >>> from kerascnn.export import AuditError, audit, convert
        >>> from kerascnn.models import create
        >>> float_model = convert(create("vgg", (8, 8, 1), 3, widths=(4,)), "float32")
        >>> audit(float_model, "int8")  # a float model is not a full-integer one
        Traceback (most recent call last):
        ...
        kerascnn.export.audit.AuditError: The int8 model computes op 0 (CONV_2D) in float32: ...
    """


def _opened(tflite_model: bytes | TFLiteFile) -> TFLiteFile:
    try:
        return TFLiteFile.of(tflite_model)
    except ValueError as error:
        raise AuditError(f"Not a loadable TFLite model: {error}") from error


def op_details(tflite_model: bytes | TFLiteFile) -> list[dict]:
    """Each operator as {"op": name, "inputs": [dtype names], "outputs": [dtype names]}, in graph order."""
    return _opened(tflite_model).ops


def op_counts(tflite_model: bytes | TFLiteFile) -> dict[str, int]:
    """How many times each TFLite builtin operator occurs in the model's graph.

    Args:
        tflite_model: the .tflite bytes, or the file opened (`TFLiteFile`).

    Returns:
        A dict from op name to count, in the order each op first occurs; "CONV_2D" covers every `Conv2D` and `ConvBNAct`
        (batch norm folded in), "DEPTHWISE_CONV_2D" the depthwise ones.

    Raises:
        AuditError: the bytes are not a loadable TFLite model.

    Example:
        >>> from kerascnn.export import convert, op_counts
        >>> from kerascnn.models import create
        >>> op_counts(convert(create("vgg", (8, 8, 1), 3, widths=(4,))))  # 2 ConvBNAct + the head's 1x1 conv
        {'CONV_2D': 3, 'MAX_POOL_2D': 1, 'MEAN': 1, 'SOFTMAX': 1}
    """
    counts: dict[str, int] = {}
    for op in op_details(tflite_model):
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    return counts


def audit(tflite_model: bytes | TFLiteFile, quant) -> list[dict]:
    """Checks the rules and returns the op details.

    Args:
        tflite_model: the .tflite bytes, or the file opened (`TFLiteFile`).
        quant: the preset it was converted under (a name of `presets.PRESETS` or the preset).

    Returns:
        One dict per operator, in graph order, with keys "op" (its name), "inputs" and "outputs" (the
        dtype names of its tensors).

    Raises:
        AuditError: not a loadable TFLite model; a Flex or custom op; for full-integer presets, a float32 tensor
            (input or output) of an op other than QUANTIZE/DEQUANTIZE, and, for integer-I/O presets, any float32
            tensor at all; or a model input/output dtype other than the preset's.
        ValueError: `quant` is not a preset name.

    Example:
        >>> import numpy as np
        >>> from kerascnn.export import audit, convert
        >>> from kerascnn.models import create
        >>> model = create("vgg", (8, 8, 1), 3, widths=(4,))
        >>> calibration = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype("float32")
        >>> ops = audit(convert(model, "int8-io", calibration), "int8-io")
        >>> ops[0]  # integer inside: int8 activations and weights, int32 bias
        {'op': 'CONV_2D', 'inputs': ['int8', 'int8', 'int32'], 'outputs': ['int8']}
    """
    preset = quant if isinstance(quant, presets.QuantizationPreset) else presets.get(quant)
    ops = op_details(tflite_model)
    for index, op in enumerate(ops):
        if op["op"].startswith("Flex") or op["op"] in ("CUSTOM", "DELEGATE"):
            raise AuditError(f"Op {index} ({op['op']}) is not a TFLite builtin: edge runtimes cannot run it.")
        allowed_float = not preset.integer_io and op["op"] in EDGE_OPS
        if preset.calibrated and not allowed_float and "float32" in op["inputs"] + op["outputs"]:
            where = "at the edges" if preset.integer_io else "inside"
            raise AuditError(
                f"The {preset.name} model computes op {index} ({op['op']}) in float32: full-integer "
                f"models keep no float {where}"
                + ("." if preset.integer_io else " (only QUANTIZE/DEQUANTIZE may take or give float).")
            )
    model = _opened(tflite_model)  # already open when given a TFLiteFile
    given, returned = np.dtype(model.input["dtype"]).name, np.dtype(model.output["dtype"]).name
    if (given, returned) != (preset.input_dtype, preset.output_dtype):
        raise AuditError(
            f"The {preset.name} model takes {given} and gives {returned}; the preset says "
            f"{preset.input_dtype} and {preset.output_dtype}."
        )
    return ops
