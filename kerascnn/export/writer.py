# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""Writes one exported variant after another: audit, integer-input check, TFLite metadata, manifest, the .tflite and
its manifest, and the report row (accuracy on the test images, size, sparsity, ops).

Each variant's .tflite is opened once (`TFLiteFile`) and that one object is read by the audit, the metadata writer,
the manifest and the report; evaluating it opens one runner (with XNNPACK, as devices run it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerascnn.export import manifest as manifests
from kerascnn.export import metadata as metadata_writer
from kerascnn.export import report as reports
from kerascnn.export.audit import audit
from kerascnn.export.output import MANIFEST_SUFFIX
from kerascnn.export.presets import PRESETS
from kerascnn.export.tflite_file import TFLiteFile
from kerascnn.rundir import atomic_write


@dataclass(frozen=True)
class Variant:
    """One row of the report and its two files.

    Attributes:
        row: the report's row name ("int8", "int8 (QAT)", "pruned 50%", ...).
        stem: the file stem: `<stem>.tflite` and its manifest `<stem>.json`.
        quant: the preset it was converted under (a name of `PRESETS`).
        calibrated: converted with the calibration images (the manifest records their count and hash).
        rgb: the luminance-folded RGB input of a grey-trained model (kerascnn.export.rgb).
        settings: fine-tuning settings (qat_epochs, ...), added to the manifest's converter entry and to the row.
    """

    row: str
    stem: str
    quant: str
    calibrated: bool
    rgb: bool
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainedModel:
    """What every variant's metadata and manifest say about the trained model and its run."""

    name: str
    parameters: int
    dataset: dict  # the run's dataset.json: labels, input_shape, normalization
    dataset_name: str
    seed: int
    channels: int  # the trained input channels

    def color(self, rgb: bool) -> str:
        return "rgb" if rgb or self.channels == 3 else "grey"


@dataclass(frozen=True)
class TestSet:
    """The normalized test images in the trained channels, their labels and the Keras model's predictions."""

    images: np.ndarray
    labels: np.ndarray
    keras_predicted: np.ndarray


def model_space(images: np.ndarray, rgb: bool) -> np.ndarray:
    """Normalized grey images as the exported model takes them: R = G = B for the folded RGB input."""
    return np.repeat(images, 3, axis=-1) if rgb and images.shape[-1] == 1 else images


def input_description(input_shape, color: str, fold: bool) -> str:
    height, width = input_shape[:2]
    if fold:
        return (
            f"Input: {height}x{width} RGB image; the model was trained on grey images and the luminance "
            "(0.299 R + 0.587 G + 0.114 B) is folded into its first convolution."
        )
    return f"Input: {height}x{width} {'RGB' if color == 'rgb' else 'grey'} image."


def integer_input_offset(model: TFLiteFile, mean, std) -> int | None:
    """For an integer input, the offset k with q = pixel + k for every pixel value 0..255 (0 for uint8, -128 for
    int8 when the calibration spans black to white); None for a float input.

    Raises:
        ValueError: the input quantization does not map whole pixels to whole steps (q - pixel varies).
    """
    given = model.input
    if given["dtype"] == np.float32:
        return None
    scale, zero_point = given["quantization"]
    pixels = np.arange(256, dtype=np.float32)
    offsets = {
        int(k)
        for c in range(len(mean))
        for k in np.round((pixels - np.float32(mean[c])) / np.float32(std[c]) / np.float32(scale)) + zero_point - pixels
    }
    if len(offsets) != 1:
        raise ValueError(
            f"The {np.dtype(given['dtype']).name} input's quantization (scale {scale:.6g}, zero point "
            f"{zero_point}) does not map pixels 0..255 to whole steps: runtimes that feed raw pixels "
            "would see other values than predict.py."
        )
    return offsets.pop()


def _log(message: str) -> None:
    print(f"[kerascnn.export] {message}", file=sys.stderr, flush=True)


class VariantWriter:
    """`VariantWriter(folder, trained, test_set, calibration_images).write(variant, tflite_bytes)` writes
    `<stem>.tflite` (with metadata) and `<stem>.json` into `folder` and returns the report row; `rows`, `models`
    (final bytes) and `first_inputs` (one input image each, for the latency) collect every written variant.

    Raises (from `write`):
        AuditError: the converted model breaks the export rules.
        MetadataError: the labels or normalization cannot describe the model.
        ValueError: an integer input whose quantization does not map whole pixels to whole steps.
    """

    def __init__(
        self,
        folder: Path,
        trained: TrainedModel,
        test_set: TestSet,
        calibration_images: np.ndarray,
        kerascnn_version: str,
        log=_log,
    ):
        self.folder, self.trained, self.test_set = Path(folder), trained, test_set
        self.calibration_images, self.kerascnn_version, self.log = calibration_images, kerascnn_version, log
        self.rows: dict[str, dict] = {}
        self.models: dict[str, bytes] = {}
        self.first_inputs: dict[str, np.ndarray] = {}

    def write(self, variant: Variant, tflite_model: bytes) -> dict:
        trained, preset = self.trained, PRESETS[variant.quant]
        opened = TFLiteFile(tflite_model)
        audit(opened, preset)
        color = trained.color(variant.rgb)
        normalization = trained.dataset["normalization"]
        mean, std = normalization["mean"], normalization["std"]
        channels = 3 if color == "rgb" else 1
        offset = integer_input_offset(opened, *metadata_writer.input_normalization(mean, std, channels, "float32"))
        described = input_description(trained.dataset["input_shape"], color, variant.rgb)
        final = metadata_writer.add_classifier_metadata(
            opened,
            name=trained.name,
            labels=trained.dataset["labels"],
            mean=mean,
            std=std,
            color=color,
            version=f"kerascnn {self.kerascnn_version}, {preset.name}",
            description=f"{trained.name} ({trained.parameters:,} parameters) trained by kerascnn on "
            f"{trained.dataset_name}; {preset.name}: {preset.description}. {described}",
        )
        manifest = manifests.build_manifest(
            opened,  # the same graph as `final`, which only adds metadata
            name=trained.name,
            parameters=trained.parameters,
            dataset=trained.dataset,
            quant=variant.quant,
            seed=trained.seed,
            calibration=self.calibration_images if variant.calibrated else None,
            color=color,
            luminance_fold=variant.rgb,
            pixel_offset=offset,
        )
        manifest["converter"].update(variant.settings)
        atomic_write(self.folder / f"{variant.stem}.tflite", final)
        atomic_write(self.folder / f"{variant.stem}{MANIFEST_SUFFIX}", manifests.to_json(manifest))
        test = self.test_set
        self.log(
            f"{variant.row}: wrote {variant.stem}.tflite ({len(final) / 1000:.1f} KB); evaluating on "
            f"{len(test.images):,} test images"
        )
        row = {
            "file": f"{variant.stem}.tflite",
            "input": manifest["input"]["description"],
            **variant.settings,
            **reports.accuracy_row(
                final,
                model_space(test.images, variant.rgb),
                test.labels,
                test.keras_predicted,
                trained.dataset["labels"],
                opened=opened,
            ),
        }
        self.rows[variant.row], self.models[variant.row] = row, final
        self.first_inputs[variant.row] = model_space(test.images[:1], variant.rgb)
        return row
