# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""TFLite metadata for image classifiers: what MediaPipe Tasks, the TFLite Task Library and Android Studio's model
binding read to use a model with no extra code.

The metadata is a flatbuffer of the TFLite metadata schema (`tflite/metadata_schema.fbs`, file identifier "M001";
MediaPipe ships it as `mediapipe/tasks/metadata/metadata_schema.fbs`), stored in a buffer of the model that the
model's `metadata` list names "TFLITE_METADATA". The label file is an associated file: the .tflite bytes followed by a
zip archive holding `labels.txt` (a "model with associated files"; flatbuffer readers ignore the trailing bytes).

The schema tables are written field by field with `flatbuffers.Builder`, each field at its slot in the .fbs (a
union takes two slots: its type, then its value). Only the tables a classifier needs are written:

    ModelMetadata{name, description, version, subgraph_metadata, author, license, min_parser_version}
      SubGraphMetadata{input_tensor_metadata: [image], output_tensor_metadata: [probability]}
        image:       TensorMetadata{content: ImageProperties{RGB | GRAYSCALE},
                                    process_units: [NormalizationOptions{mean, std}], stats{min, max}}
        probability: TensorMetadata{content: FeatureProperties, associated_files: [labels.txt TENSOR_AXIS_LABELS]}

Normalization is in the units the runtime feeds: a float32 input gets x = (pixel - mean) / std on 0..255 pixel
values, so mean/std are the exported input's (one value for every channel, as MediaPipe requires: a run trained
with per-channel statistics gets them folded into the model by `kerascnn.export.normalization`); a uint8 input
takes the raw 0..255 pixels (the exporter checks that its
quantization maps them onto the normalized values: q = pixel; int8 inputs take q = pixel - 128), so an integer input's
NormalizationOptions are the identity, mean 0 and std 1.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from kerascnn.export.tflite_file import TFLiteFile

METADATA_NAME = "TFLITE_METADATA"  # the model metadata entry the readers look up
FILE_IDENTIFIER = b"M001"
LABELS_FILE = "labels.txt"
MIN_PARSER_VERSION = "1.0.0"  # ImageProperties, NormalizationOptions, Stats and TENSOR_AXIS_LABELS are all 1.0.0

# enum and union values of metadata_schema.fbs
_RGB, _GRAYSCALE = 1, 2
_TENSOR_AXIS_LABELS = 2
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties union
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union


class MetadataError(ValueError):
    """The labels or normalization cannot describe the model (missing, or not matching its tensors)."""


def input_normalization(mean, std, channels: int, input_dtype: str) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) for the model's input in the units the runtime feeds (see the module docstring).

    A grey mean/std (one value) given to a 3-channel input is repeated: with the luminance fold
    (`kerascnn.export.rgb`) each RGB channel is normalized like the grey image. A float input's Stats are then
    (0 - mean) / std and (255 - mean) / std per channel: black and white.

    Raises:
        MetadataError: mean or std missing, not numbers, of a length other than 1 or `channels`, or std <= 0.
    """
    values = []
    for key, given in (("mean", mean), ("std", std)):
        given = [given] if isinstance(given, (int, float)) else given
        if (
            not isinstance(given, (list, tuple))
            or len(given) not in (1, channels)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in given)
        ):
            count = "1 number" if channels == 1 else f"1 or {channels} numbers"
            raise MetadataError(
                f"The normalization {key} must be {count} (dataset.json of the run). Received: {key}={given!r}."
            )
        values.append([float(v) for v in given] * (channels if len(given) == 1 else 1))
    if min(values[1]) <= 0:
        raise MetadataError(f"The normalization std must be > 0. Received: std={std!r}.")
    if input_dtype != "float32":  # integer input: the quantization maps the pixels (q = pixel, or pixel - 128)
        return [0.0] * channels, [1.0] * channels
    return values[0], values[1]


def check_labels(labels, output_size: int) -> list[str]:
    """The labels, checked against the model's output.

    Raises:
        MetadataError: no labels, labels that are not a list of non-empty one-line strings, or a count other than
            the output size.
    """
    if (
        not isinstance(labels, (list, tuple))
        or not labels
        or not all(isinstance(label, str) and label.strip() and "\n" not in label for label in labels)
    ):
        raise MetadataError(
            "The export needs the class labels (a list of one-line names, dataset.json of the run). "
            f"Received: labels={labels!r:.120}."
        )
    if len(labels) != output_size:
        raise MetadataError(
            f"The model gives {output_size} scores but the run has {len(labels)} labels: the labels "
            "do not describe this model (export it with the run that trained it)."
        )
    return list(labels)


class _Writer:
    """flatbuffers.Builder with the few helpers the metadata tables need."""

    def __init__(self):
        import flatbuffers

        self.builder = flatbuffers.Builder(1024)

    def string(self, text: str) -> int:
        return self.builder.CreateString(text)

    def offsets(self, offsets: list[int]) -> int:
        self.builder.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            self.builder.PrependUOffsetTRelative(offset)
        return self.builder.EndVector()

    def floats(self, values: list[float]) -> int:
        self.builder.StartVector(4, len(values), 4)
        for value in reversed(values):
            self.builder.PrependFloat32(value)
        return self.builder.EndVector()

    def table(self, slots: int, offsets: dict[int, int] = {}, bytes_: dict[int, int] = {}) -> int:  # noqa: B006
        """A table of `slots` fields: offset fields (strings, vectors, tables) and one-byte fields (enums, union
        types) by slot number."""
        self.builder.StartObject(slots)
        for slot, offset in offsets.items():
            self.builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
        for slot, value in bytes_.items():
            self.builder.PrependUint8Slot(slot, value, 0)
        return self.builder.EndObject()


def metadata_flatbuffer(
    *,
    name: str,
    description: str,
    version: str,
    author: str,
    license: str,
    labels_file: str,
    color: str,
    mean: list[float],
    std: list[float],
    input_range: tuple[list[float], list[float]],
) -> bytes:
    """The ModelMetadata flatbuffer (file identifier "M001") of an image classifier.

    Args:
        name, description, version, author, license: the model's card.
        labels_file: the associated file holding one label per line, in output order.
        color: "rgb" or "grey".
        mean, std: per-channel NormalizationOptions, in the units of the input tensor.
        input_range: (min, max) per channel of the input tensor's values (its Stats).
    """
    w = _Writer()
    text = {
        key: w.string(value)
        for key, value in dict(
            name=name,
            description=description,
            version=version,
            author=author,
            license=license,
            min_parser_version=MIN_PARSER_VERSION,
            labels_file=labels_file,
            image="image",
            probability="probability",
            image_description="Input image to be classified.",
            probability_description="Probabilities of the labels respectively.",
            labels_description="Labels for the categories the model classifies, one per line in output order.",
        ).items()
    }
    # input: image
    image_properties = w.table(2, bytes_={0: _RGB if color == "rgb" else _GRAYSCALE})  # color_space
    image_content = w.table(3, offsets={1: image_properties}, bytes_={0: _IMAGE_PROPERTIES})
    normalization = w.table(2, offsets={0: w.floats(mean), 1: w.floats(std)})
    unit = w.table(2, offsets={1: normalization}, bytes_={0: _NORMALIZATION_OPTIONS})
    stats = w.table(2, offsets={0: w.floats(input_range[1]), 1: w.floats(input_range[0])})  # max, min
    image = w.table(
        7, offsets={0: text["image"], 1: text["image_description"], 3: image_content, 4: w.offsets([unit]), 5: stats}
    )
    # output: probability, with the labels
    labels = w.table(
        5, offsets={0: text["labels_file"], 1: text["labels_description"]}, bytes_={2: _TENSOR_AXIS_LABELS}
    )
    feature_content = w.table(3, offsets={1: w.table(0)}, bytes_={0: _FEATURE_PROPERTIES})
    probability = w.table(
        7,
        offsets={
            0: text["probability"],
            1: text["probability_description"],
            3: feature_content,
            6: w.offsets([labels]),
        },
    )
    subgraph = w.table(10, offsets={2: w.offsets([image]), 3: w.offsets([probability])})
    model = w.table(
        8,
        offsets={
            0: text["name"],
            1: text["description"],
            2: text["version"],
            3: w.offsets([subgraph]),
            4: text["author"],
            5: text["license"],
            7: text["min_parser_version"],
        },
    )
    w.builder.Finish(model, file_identifier=FILE_IDENTIFIER)
    return bytes(w.builder.Output())


def attach(tflite_model: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """`tflite_model` with `metadata` in a new buffer named "TFLITE_METADATA" (replacing an older one) and
    `files` appended as a zip archive (stored, uncompressed).

    The model flatbuffer is rewritten with TensorFlow Lite's own generated schema code (object API), so every
    other table, buffer and metadata entry is kept as the converter wrote it.
    """
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    model.metadata = model.metadata or []
    entry = next((e for e in model.metadata if e.name in (METADATA_NAME, METADATA_NAME.encode())), None)
    if entry is None:  # a new buffer, named by a new metadata entry
        model.buffers.append(schema.BufferT())
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
        model.metadata.append(entry)
    model.buffers[entry.buffer].data = np.frombuffer(metadata, np.uint8)  # replaces older metadata in place
    builder = flatbuffers.Builder(len(tflite_model) + len(metadata) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    archive = io.BytesIO()
    archive.write(bytes(builder.Output()))
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_STORED) as zipped:
        for file_name, data in files.items():
            zipped.writestr(file_name, data)
    return archive.getvalue()


def associated_files(tflite_model: bytes) -> dict[str, bytes]:
    """The files zipped after the model ({} when there are none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(tflite_model)) as zipped:
            return {name: zipped.read(name) for name in zipped.namelist()}
    except zipfile.BadZipFile:
        return {}


def metadata_of(tflite_model: bytes) -> bytes | None:
    """The raw "TFLITE_METADATA" flatbuffer of a model, or None."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(tflite_model), 0)
    for i in range(model.MetadataLength()):
        if model.Metadata(i).Name() == METADATA_NAME.encode():
            return model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy().tobytes()
    return None


def add_classifier_metadata(
    tflite_model: bytes | TFLiteFile,
    *,
    name: str,
    labels,
    mean,
    std,
    color: str,
    description: str,
    version: str,
    license: str = "Apache-2.0",
    author: str = "kerascnn",
) -> bytes:
    """`tflite_model` with the metadata and label file an image classifier needs (see the module docstring).

    Args:
        tflite_model: a converted single-input, single-output classifier (bytes, or the file opened).
        name, description, version, license, author: the model's card.
        labels: one label per output score.
        mean, std: the normalization on 0..255 pixel values, 1 value (repeated) or one per channel.
        color: "rgb" or "grey" (what the input channels are).

    Returns:
        The model bytes with metadata and the zipped labels.txt; it runs in any TFLite runtime exactly as before.

    Raises:
        MetadataError: labels or normalization missing or malformed, a label count other than the output size, an
            input that is not (1, H, W, C) with C = 3 for "rgb" and 1 for "grey", or an input dtype other than
            float32, int8 and uint8.

    Example:
        model = add_classifier_metadata(convert(rgb, "uint8", images), name="vgg", labels=labels, mean=[72.9],
                                        std=[90.0], color="rgb", description="Fashion-MNIST", version="1")
    """
    opened = TFLiteFile.of(tflite_model)
    given, returned = opened.input, opened.output
    shape, dtype = [int(n) for n in given["shape"]], np.dtype(given["dtype"]).name
    channels = {"rgb": 3, "grey": 1}.get(color)
    if channels is None or len(shape) != 4 or shape[-1] != channels:
        raise MetadataError(f"A {color} image input must be (1, H, W, {channels}); the model takes {shape}.")
    labels = check_labels(labels, int(returned["shape"][-1]))
    mean, std = input_normalization(mean, std, channels, dtype)
    if dtype == "float32":
        input_range = ([(0 - m) / s for m, s in zip(mean, std)], [(255 - m) / s for m, s in zip(mean, std)])
    elif dtype in ("uint8", "int8"):
        info = np.iinfo(dtype)
        input_range = ([float(info.min)] * channels, [float(info.max)] * channels)
    else:
        raise MetadataError(f"Image inputs are float32, int8 or uint8; the model takes {dtype}.")
    metadata = metadata_flatbuffer(
        name=name,
        description=description,
        version=version,
        author=author,
        license=license,
        labels_file=LABELS_FILE,
        color=color,
        mean=mean,
        std=std,
        input_range=input_range,
    )
    return attach(opened.data, metadata, {LABELS_FILE: ("\n".join(labels) + "\n").encode()})
