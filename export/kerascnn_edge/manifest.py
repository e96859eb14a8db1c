# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""The manifest beside each .tflite and its one validation.

`python -m kerascnn.export` writes it (kerascnn/export/manifest.py builds the dict and passes it through
`Manifest.from_dict` first, so it never writes one the edge refuses); every edge tool reads it with
`Manifest.read`. The web page's twin is export/web/manifest.js, tested against this one on the same bad manifests
(tests/edge/test_manifest.py): a change to a rule here changes it there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from kerascnn_edge.files import EdgeError, regular_file

FORMAT = "kerascnn-tflite-manifest/1"
COLORS = ("rgb", "grey")


class ManifestError(EdgeError, ValueError):
    """A manifest that breaks a rule; `field` is the dotted name of the first field that does ("input.shape")."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _get(data: dict, dotted: str):
    value = data
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise ManifestError(dotted, f"{dotted} is missing")
        value = value[key]
    return value


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(data: dict, dotted: str, channels: int, positive: bool = False) -> tuple[float, ...]:
    values = _get(data, dotted)
    count = "1 number" if channels == 1 else f"1 or {channels} numbers"
    if not isinstance(values, list) or len(values) not in (1, channels) or not all(map(_number, values)):
        raise ManifestError(dotted, f"{dotted} must be a list of {count}, got {values!r:.80}")
    if positive and min(values) <= 0:
        raise ManifestError(dotted, f"{dotted} must be > 0 (it divides), got {values!r}")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Manifest:
    """What edge code needs to feed a model and read it: `labels` in output order, the input `shape`
    [1, height, width, channels], the normalization (pixel - mean) / std on 0..255 pixels (`mean`, `std`: 1 or
    `channels` numbers each), the `color` ("rgb" or "grey", None when not given); `data` is the whole JSON object
    (versions, converter settings, TFLM budget), kept as written.

    Example:
        >>> manifest = Manifest.read(Path("fashion_mnist/vgg_uint8.json"))
        >>> manifest.labels[0], manifest.size
        ('T-shirt/top', (28, 28))
    """

    labels: tuple[str, ...]
    shape: tuple[int, int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    color: str | None = None
    data: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def channels(self) -> int:
        return self.shape[-1]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the input."""
        return self.shape[1], self.shape[2]

    @property
    def pixel_offset(self) -> int | None:
        """k in q = pixel + k for an integer input (0 for uint8, -128 for int8), None when not given."""
        return self.data.get("input", {}).get("pixel_offset")

    @classmethod
    def from_dict(cls, data) -> Manifest:
        """The manifest of a JSON object, checked: `labels` a non-empty list of strings, `input.shape`
        [1, H, W, C] of positive integers with C 1 or 3, `input.normalization.mean` and `.std` lists of 1 or C
        finite numbers, std > 0, `input.color` (when given) "rgb" or "grey".

        Raises:
            ManifestError: the first field that breaks a rule (its `field`) and why.
        """
        if not isinstance(data, dict):
            raise ManifestError("", f"a manifest is a JSON object, got {type(data).__name__}")
        labels = _get(data, "labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
            raise ManifestError("labels", f"labels must be a list of names, got {labels!r:.80}")
        shape = _get(data, "input.shape")
        if (
            not isinstance(shape, list)
            or len(shape) != 4
            or shape[0] != 1
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
            or shape[-1] not in (1, 3)
        ):
            raise ManifestError(
                "input.shape", f"input.shape must be [1, height, width, channels] with 1 or 3 channels, got {shape!r}"
            )
        mean = _numbers(data, "input.normalization.mean", shape[-1])
        std = _numbers(data, "input.normalization.std", shape[-1], positive=True)
        color = data["input"].get("color")
        if color is not None and color not in COLORS:
            raise ManifestError("input.color", f"input.color must be one of {', '.join(COLORS)}, got {color!r:.40}")
        return cls(tuple(labels), tuple(shape), mean, std, color, data)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """The manifest in the JSON file `path`, checked (`from_dict`).

        Raises:
            EdgeError: `path` is missing, a folder or not a regular file (a FIFO: reading it would wait forever),
                or not a kerascnn manifest (names the field).
        """
        regular_file(path, "Manifest", "give the .json written beside the .tflite by `python -m kerascnn.export`")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, UnicodeDecodeError) as error:  # ManifestError is a ValueError, as is a JSON error
            raise EdgeError(f"{path} is not a kerascnn manifest ({error}).") from error

    def to_dict(self) -> dict:
        return self.data
