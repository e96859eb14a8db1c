# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""One .tflite file opened once: its bytes and an interpreter without delegates to read its graph from.

The audit, the metadata writer, the manifest and the report all read the same things (input and output details,
the operators with their tensor dtypes, constant tensors); each takes either the bytes or a `TFLiteFile`, so the
exporter opens each variant once and hands the same object to all of them.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np


class TFLiteFile:
    """`TFLiteFile(bytes)`: `.data`, `.interpreter` (builtin ops, no default delegates, so the graph is the
    converter's), `.input` and `.output` details, `.ops` (name and tensor dtypes of each op in graph order).

    Raises:
        ValueError: the bytes are not a loadable TFLite model.

    Example:
        model = TFLiteFile(convert(keras_model, "int8", images))
        audit(model, "int8"), op_counts(model), model.input["dtype"]
    """

    def __init__(self, data: bytes):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.data = data
        self.interpreter = Interpreter(
            model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    @classmethod
    def of(cls, model: bytes | TFLiteFile) -> TFLiteFile:
        """`model` itself when it is already open, else the bytes opened."""
        return model if isinstance(model, TFLiteFile) else cls(model)

    @cached_property
    def raw_ops(self) -> list[dict]:
        """The interpreter's op details (op_name, input and output tensor indices)."""
        return self.interpreter._get_ops_details()

    @cached_property
    def ops(self) -> list[dict]:
        """Each operator as {"op": name, "inputs": [dtype names], "outputs": [dtype names]}, in graph order."""
        dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in self.interpreter.get_tensor_details()}
        return [
            {
                "op": op["op_name"],
                "inputs": [dtypes[i] for i in op["inputs"] if i >= 0 and i in dtypes],
                "outputs": [dtypes[i] for i in op["outputs"] if i in dtypes],
            }
            for op in self.raw_ops
        ]
