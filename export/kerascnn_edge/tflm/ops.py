# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""A .tflite model's operators, checked against what TensorFlow Lite Micro registers, and the
`tflite::MicroMutableOpResolver` call that registers each one on a board.

Edge side: needs only the `tflite-micro` package (its flatbuffer schema), never TensorFlow.

A firmware registers each builtin op its model uses once, `resolver.AddConv2D()` for CONV_2D; the method is
"Add" + the op's name in CamelCase (ADD_N -> AddAddN), except for the spellings in `METHOD_EXCEPTIONS`.

Example:
    >>> ops = model_ops(open("vgg_uint8.tflite", "rb").read())   # {"CONV_2D": 6, "MAX_POOL_2D": 3, ...}
    >>> [resolver_method(op) for op in ops]                        # ["AddConv2D", "AddMaxPool2D", ...]
"""

from __future__ import annotations

# The builtin ops tflite::MicroMutableOpResolver has an Add method for (tensorflow/lite/micro/
# micro_mutable_op_resolver.h at tflite-micro commit 90b983c, 2026-08-20; the Python interpreter's
# PythonOpsResolver registers every one of them). Custom ops (CUSTOM) are not builtins and are refused here.
REGISTERED = frozenset(
    """ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND BROADCAST_ARGS
    BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE
    DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD
    FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU
    LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM
    MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN RELU
    RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX
    SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM
    SVDF TANH TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE""".split()
)

# Add methods not spelled "Add" + CamelCase(op) (same header).
METHOD_EXCEPTIONS = {
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "CONV_2D": "AddConv2D",
    "CUMSUM": "AddCumSum",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "L2_POOL_2D": "AddL2Pool2D",
    "MAX_POOL_2D": "AddMaxPool2D",
    "PADV2": "AddPadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
}


class UnsupportedOpError(ValueError):
    """The model uses an op TFLM does not register (or a custom op): no firmware can run it as it is."""


def model_ops(tflite_model: bytes) -> dict[str, int]:
    """{op name: number of uses} over all subgraphs, in order of first use; a custom op is "CUSTOM:<its code>".

    Raises:
        ValueError: the bytes are not a TFLite flatbuffer.
    """
    from tflite_micro.python.tflite_micro import runtime

    schema = runtime.schema_fb
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    data = bytearray(tflite_model)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite model (no TFL3 file identifier)")
    model = schema.Model.GetRootAs(data, 0)
    counts: dict[str, int] = {}
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            code = model.OperatorCodes(subgraph.Operators(o).OpcodeIndex())
            builtin = runtime.get_builtin_code_from_operator_code(code)
            name = names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                name = f"CUSTOM:{code.CustomCode().decode()}"
            counts[name] = counts.get(name, 0) + 1
    return counts


def unsupported(ops) -> list[str]:
    """The ops of `ops` (names) that TFLM's MicroMutableOpResolver cannot register."""
    return [op for op in ops if op not in REGISTERED]


def resolver_method(op: str) -> str:
    """The MicroMutableOpResolver method that registers `op`: "CONV_2D" -> "AddConv2D", "ADD_N" -> "AddAddN".

    Raises:
        UnsupportedOpError: `op` is not one TFLM registers.
    """
    if op not in REGISTERED:
        raise UnsupportedOpError(
            f"{op} is not an op TFLM's MicroMutableOpResolver registers: the model cannot run on a microcontroller "
            "as it is (export it with builtin ops TFLM has, e.g. the int8-io or uint8 preset)."
        )
    return METHOD_EXCEPTIONS.get(op) or "Add" + "".join(part[:1] + part[1:].lower() for part in op.split("_"))
