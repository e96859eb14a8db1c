# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""What a .tflite carries itself (TFLITE_METADATA: labels, colour, normalization; its input's dtype and
quantization), read once for every edge tool with ai-edge-litert's schema code and the `flatbuffers` package it
depends on: no TensorFlow, no MediaPipe."""

from __future__ import annotations

from pathlib import Path


def _root_table(buffer: bytes, position: int = 0):
    import flatbuffers

    return flatbuffers.table.Table(buffer, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buffer, position))


class _Fields:
    """Fields of one flatbuffer table by slot number (slot i sits at vtable offset 4 + 2 i), read with the
    `flatbuffers` package that ai-edge-litert depends on; absent fields give None."""

    def __init__(self, table):
        self.table = table

    def _offset(self, slot: int) -> int:
        return self.table.Offset(4 + 2 * slot)

    def table_at(self, slot: int):
        import flatbuffers

        offset = self._offset(slot)
        return (
            _Fields(flatbuffers.table.Table(self.table.Bytes, self.table.Indirect(self.table.Pos + offset)))
            if offset
            else None
        )

    def tables(self, slot: int) -> list:
        import flatbuffers

        offset = self._offset(slot)
        if not offset:
            return []
        start = self.table.Vector(offset)
        return [
            _Fields(flatbuffers.table.Table(self.table.Bytes, self.table.Indirect(start + 4 * j)))
            for j in range(self.table.VectorLen(offset))
        ]

    def byte(self, slot: int) -> int:
        from flatbuffers import number_types

        offset = self._offset(slot)
        return self.table.Get(number_types.Uint8Flags, self.table.Pos + offset) if offset else 0

    def string(self, slot: int) -> str | None:
        offset = self._offset(slot)
        return self.table.String(self.table.Pos + offset).decode() if offset else None

    def floats(self, slot: int) -> list[float] | None:
        from flatbuffers import number_types

        offset = self._offset(slot)
        return self.table.GetVectorAsNumpy(number_types.Float32Flags, offset).tolist() if offset else None


METADATA_NAME = b"TFLITE_METADATA"
_COLOR_SPACES = {1: "rgb", 2: "grey"}  # metadata_schema.fbs ColorSpaceType: RGB, GRAYSCALE
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType
_INPUT_TYPES = {0: "float32", 3: "uint8", 9: "int8"}  # schema.fbs TensorType


def model_metadata(model_path: Path) -> dict | None:
    """What the .tflite carries itself, read without TensorFlow or MediaPipe (the model with ai-edge-litert's schema
    code, the TFLITE_METADATA flatbuffer field by field as metadata_schema.fbs lays it out, labels.txt from the zip
    appended to the model): {"labels", "color", "mean", "std"} (the NormalizationOptions, in the units of the input
    tensor) and the input's {"dtype", "quantization": (scale, zero_point) or None}; None for a model without metadata
    (or a file that is not a TFLite model: the interpreter says so when it opens it).
    """
    import io
    import zipfile

    from ai_edge_litert import schema_py_generated as schema

    data = model_path.read_bytes()
    try:
        model = schema.Model.GetRootAs(bytearray(data), 0)
        entry = next(
            (model.Metadata(i) for i in range(model.MetadataLength()) if model.Metadata(i).Name() == METADATA_NAME),
            None,
        )
        if entry is None:
            return None
        subgraph = model.Subgraphs(0)
        tensor = subgraph.Tensors(subgraph.Inputs(0))
        quantization = tensor.Quantization()
        scale = quantization.ScaleAsNumpy() if quantization is not None and quantization.ScaleLength() else None
        buffer = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
        graph = _Fields(_root_table(buffer)).tables(3)[0]  # ModelMetadata.subgraph_metadata
        image, scores = graph.tables(2)[0], graph.tables(3)[0]  # input_tensor_metadata, output_tensor_metadata
        content = image.table_at(3)  # TensorMetadata.content -> Content.content_properties (ImageProperties)
        properties = content.table_at(1) if content else None
        color = _COLOR_SPACES.get(properties.byte(0)) if properties else None
        units = [unit for unit in image.tables(4) if unit.byte(0) == 1]  # NormalizationOptions process units
        normalization = units[0].table_at(1) if units else None
        label_files = [f.string(0) for f in scores.tables(6) if f.byte(2) == _TENSOR_AXIS_LABELS]
        mean, std = (normalization.floats(0), normalization.floats(1)) if normalization else (None, None)
        zero_point = int(quantization.ZeroPointAsNumpy()[0]) if scale is not None else None
    except Exception:  # a damaged or foreign flatbuffer: no metadata we can trust
        return None
    labels = None
    if label_files:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zipped:
                labels = zipped.read(label_files[0]).decode().splitlines()
        except (zipfile.BadZipFile, KeyError, UnicodeDecodeError):
            labels = None
    return {
        "labels": labels,
        "color": color,
        "mean": mean,
        "std": std,
        "dtype": _INPUT_TYPES.get(tensor.Type()),
        "quantization": (float(scale[0]), zero_point) if scale is not None else None,
    }


def pixel_normalization(meta: dict, channels: int) -> tuple[list[float], list[float]] | None:
    """The (mean, std) on 0..255 pixels that the model's metadata implies for predict.py's route (normalize, then
    quantize an integer input), or None when the metadata has no normalization.

    A float input takes (pixel - m) / s: mean m, std s. An integer input takes q = (pixel - m) / s + k (k = -128 for
    int8, 0 for uint8: kerascnn's convention, q = pixel for uint8), which quantize((pixel - mean) / std) gives for
    std = s / scale and mean = m + s (zero_point - k).
    """
    if meta.get("mean") is None or meta.get("std") is None:
        return None
    mean, std = (list(v) * (channels if len(v) == 1 else 1) for v in (meta["mean"], meta["std"]))
    if meta["dtype"] == "float32" or meta.get("quantization") is None:
        return mean, std
    scale, zero_point = meta["quantization"]
    k = -128 if meta["dtype"] == "int8" else 0
    return [m + s * (zero_point - k) for m, s in zip(mean, std)], [s / scale for s in std]
