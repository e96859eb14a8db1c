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
    shared_input: bool = True  # one mean/std for all channels; False: the run's own (the tf_keras rows)


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
    """The test images (0..255 pixels in the trained channels), their labels and the Keras model's predictions."""

    pixels: np.ndarray
    labels: np.ndarray
    keras_predicted: np.ndarray


def model_space(pixels: np.ndarray, rgb: bool, mean, std) -> np.ndarray:
    """0..255 pixels as the exported model takes them: R = G = B for the folded RGB input, then
    x' = (pixel - mean) / std."""
    pixels = np.repeat(pixels, 3, axis=-1) if rgb and pixels.shape[-1] == 1 else pixels
    return (np.asarray(pixels, np.float32) - np.float32(mean)) / np.float32(std)


def normalization_description(shared) -> str:
    """What the exported input's normalization is, when it differs from the run's per-channel one."""
    if shared.fold is None:
        return ""
    where = {
        "bias": "the first convolution's kernel and bias (no op added)",
        "shift": "the first convolution's kernel plus one per-channel ADD before it (exact at the zero-padded borders)",
        "affine": "a per-channel MUL and ADD before the first layer",
    }[shared.fold]
    trained = ", ".join(f"{m:g}/{s:g}" for m, s in zip(shared.trained_mean, shared.trained_std))
    return (
        f" Normalization (pixel - {shared.mean[0]:g}) / {shared.std[0]:g} for every channel; the training's "
        f"per-channel mean/std ({trained}) is folded into {where}."
    )


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
    """`VariantWriter(folder, trained, test_set, calibration_pixels, shared).write(variant, tflite_bytes)` writes
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
        calibration_pixels: np.ndarray,
        shared,
        kerascnn_version: str,
        log=_log,
    ):
        self.folder, self.trained, self.test_set = Path(folder), trained, test_set
        self.calibration_pixels, self.shared = calibration_pixels, shared
        self.kerascnn_version, self.log = kerascnn_version, log
        self.rows: dict[str, dict] = {}
        self.models: dict[str, bytes] = {}
        self.first_inputs: dict[str, np.ndarray] = {}

    def write(self, variant: Variant, tflite_model: bytes) -> dict:
        trained, preset = self.trained, PRESETS[variant.quant]
        opened = TFLiteFile(tflite_model)
        audit(opened, preset)
        color, shared = trained.color(variant.rgb), self.shared
        # the shared mean/std, or the run's own (dataset.json: the tf_keras rows keep the trained input)
        own = trained.dataset["normalization"]
        mean, std = (shared.mean, shared.std) if variant.shared_input else (own["mean"], own["std"])
        channels = 3 if color == "rgb" else 1
        offset = integer_input_offset(opened, *metadata_writer.input_normalization(mean, std, channels, "float32"))
        described = input_description(trained.dataset["input_shape"], color, variant.rgb)
        if variant.shared_input:
            described += normalization_description(shared)

        def space(pixels):
            return model_space(pixels, variant.rgb, mean, std)

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
            calibration=space(self.calibration_pixels) if variant.calibrated else None,
            color=color,
            luminance_fold=variant.rgb,
            pixel_offset=offset,
            normalization=dict(mean=mean, std=std, fold=shared.fold if variant.shared_input else None),
        )
        manifest["converter"].update(variant.settings)
        atomic_write(self.folder / f"{variant.stem}.tflite", final)
        atomic_write(self.folder / f"{variant.stem}{MANIFEST_SUFFIX}", manifests.to_json(manifest))
        test = self.test_set
        self.log(
            f"{variant.row}: wrote {variant.stem}.tflite ({len(final) / 1000:.1f} KB); evaluating on "
            f"{len(test.pixels):,} test images"
        )
        row = {
            "file": f"{variant.stem}.tflite",
            "input": manifest["input"]["description"],
            **variant.settings,
            **reports.accuracy_row(
                final,
                space(test.pixels),
                test.labels,
                test.keras_predicted,
                trained.dataset["labels"],
                opened=opened,
            ),
        }
        self.rows[variant.row], self.models[variant.row] = row, final
        self.first_inputs[variant.row] = space(test.pixels[:1])
        return row
