"""What a .tflite file holds: its operators, and whether it meets kerascnn's rules (builtin ops only;
int8 models integer inside)."""

from __future__ import annotations

import numpy as np

EDGE_OPS = {"QUANTIZE", "DEQUANTIZE"}


class AuditError(ValueError):
    """A .tflite file that breaks the export rules; the message says which op and why."""


def _interpreter(tflite_model: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        return Interpreter(model_content=tflite_model,
                           experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except ValueError as error:
        raise AuditError(f"Not a loadable TFLite model: {error}") from error


def op_details(tflite_model: bytes) -> list[dict]:
    """Each operator as {"op": name, "inputs": [dtype names], "outputs": [dtype names]}, in graph order."""
    interpreter = _interpreter(tflite_model)
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    return [{"op": op["op_name"],
             "inputs": [dtypes[i] for i in op["inputs"] if i >= 0 and i in dtypes],
             "outputs": [dtypes[i] for i in op["outputs"] if i in dtypes]}
            for op in interpreter._get_ops_details()]


def op_counts(tflite_model: bytes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in op_details(tflite_model):
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    return counts


def audit(tflite_model: bytes, quant: str) -> list[dict]:
    """Checks the rules and returns the op details.

    Raises:
        AuditError: a Flex or custom op; or, for int8 presets, a float op other than QUANTIZE/DEQUANTIZE at
            the edges of a float-I/O model.
    """
    ops = op_details(tflite_model)
    for index, op in enumerate(ops):
        if op["op"].startswith("Flex") or op["op"] in ("CUSTOM", "DELEGATE"):
            raise AuditError(f"Op {index} ({op['op']}) is not a TFLite builtin: edge runtimes cannot run it.")
        if quant in ("int8", "int8-io") and op["op"] not in EDGE_OPS and "float32" in op["inputs"] + op["outputs"]:
            raise AuditError(f"The {quant} model computes op {index} ({op['op']}) in float32: "
                             "full-integer models keep float only in QUANTIZE/DEQUANTIZE at the edges.")
    return ops
