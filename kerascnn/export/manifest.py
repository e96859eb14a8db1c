# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""The JSON manifest beside each .tflite: everything edge code needs to feed the model and read it. Its rules are
the edge package's (kerascnn_edge.manifest.Manifest, which every edge tool reads it with): what is built here passes
through them before it is written."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from kerascnn.export.metadata import LABELS_FILE
from kerascnn.export.tflite_file import TFLiteFile
from kerascnn_edge.manifest import FORMAT, Manifest


def calibration_hash(images: np.ndarray | None) -> str | None:
    """sha256 of the calibration images' bytes (float32), or None without calibration."""
    if images is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(images, np.float32).tobytes()).hexdigest()


def build_manifest(
    tflite_model: bytes | TFLiteFile,
    *,
    name: str,
    parameters: int,
    dataset: dict,
    quant: str,
    seed: int,
    calibration: np.ndarray | None,
    color: str | None = None,
    luminance_fold: bool = False,
    pixel_offset: int | None = None,
    normalization: dict | None = None,
) -> dict:
    """labels, input (shape, dtype, colour, normalization, quantization), output, model, versions, converter;
    checked by the edge side's `Manifest.from_dict`, the one validation.

    Args:
        tflite_model: the exported model, bytes or opened (its input and output tensors give shapes, dtypes and
            quantization).
        name, parameters, seed: the Keras model's name, parameter count and training seed.
        dataset: the run's dataset.json (labels, input_shape, normalization).
        quant: the preset name.
        calibration: the int8 calibration images, or None.
        color: "rgb" or "grey" (default: from the dataset's channels).
        luminance_fold: the RGB input of a grey-trained model (kerascnn.export.rgb).
        pixel_offset: for an integer input, k in q = pixel + k (0 for uint8, -128 for int8), checked by the exporter.
        normalization: the exported input's {"mean", "std", "fold"} when it is not the dataset's: one mean/std for
            every channel, the run's per-channel statistics folded into the model (kerascnn.export.normalization;
            "fold" says how: "bias", "shift", "affine", or None when the run's statistics were shared already).

    Raises:
        kerascnn_edge.manifest.ManifestError (a ValueError): the manifest breaks a rule (names the field).
    """
    import ai_edge_litert
    import keras
    import tensorflow as tf

    opened = TFLiteFile.of(tflite_model)
    given, returned = opened.input, opened.output
    shape = [int(n) for n in given["shape"]]
    color = color or ("grey" if dataset["input_shape"][-1] == 1 else "rgb")
    channels = shape[-1]

    def quantization(details):
        scale, zero_point = details["quantization"]
        return {"scale": float(scale), "zero_point": int(zero_point)} if scale else None

    def per_channel(values):
        values = list(values)
        return values * channels if len(values) == 1 else values

    description = f"{shape[1]}x{shape[2]} {'RGB' if color == 'rgb' else 'grey'} image"
    if luminance_fold:
        description += (
            ", trained on grey images: the luminance 0.299 R + 0.587 G + 0.114 B is folded into the first "
            "convolution (exact for R = G = B)"
        )
    trained = dataset["normalization"]
    normalization = normalization or {"mean": trained["mean"], "std": trained["std"], "fold": None}
    if normalization.get("fold"):
        description += (
            "; one mean/std for every channel, the training's per-channel statistics folded into the model "
            f"({normalization['fold']})"
        )
    if pixel_offset is not None:
        description += f"; {np.dtype(given['dtype']).name} input q = pixel" + (
            f" - {-pixel_offset}" if pixel_offset else ""
        )
    manifest = {
        "format": FORMAT,
        "labels": dataset["labels"],
        "input": {
            "shape": shape,
            "dtype": np.dtype(given["dtype"]).name,
            "description": description,
            "normalization": {
                "mean": per_channel(normalization["mean"]),
                "std": per_channel(normalization["std"]),
                "formula": "(pixel - mean) / std, pixel values 0..255, per channel",
                **(
                    {
                        "fold": normalization["fold"],
                        "trained_mean": per_channel(trained["mean"]),
                        "trained_std": per_channel(trained["std"]),
                    }
                    if normalization.get("fold")
                    else {}
                ),
            },
            "quantization": quantization(given),
            "color": color,
            "luminance_fold": luminance_fold,
            "pixel_offset": pixel_offset,
        },
        "output": {
            "dtype": np.dtype(returned["dtype"]).name,
            "quantization": quantization(returned),
            "meaning": "class probabilities (softmax), in label order",
        },
        "metadata": {
            "tflite_metadata": "TFLITE_METADATA (name, description, version, license, image input with "
            "NormalizationOptions, output labels)",
            "associated_files": [LABELS_FILE],
        },
        "model": {"name": name, "parameters": int(parameters), "dataset": dataset.get("dataset"), "seed": seed},
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
        },
        "converter": {
            "quantization": quant,
            "supported_ops": "TFLITE_BUILTINS only",
            "calibration_images": 0 if calibration is None else int(len(calibration)),
            "calibration_sha256": calibration_hash(calibration),
        },
    }
    return Manifest.from_dict(manifest).to_dict()  # a manifest the edge tools would refuse is never written


TFLM_KEYS = ("arena_bytes", "arena_bytes_with_margin", "flash_bytes", "strippable_bytes", "ops", "resolver", "boards")


def with_tflm(manifest: dict, checked: dict) -> dict:
    """`manifest` with a "tflm" entry from kerascnn_edge.tflm.check's result for its model (as
    kerascnn.export.tflm.add_to_report returns it, with "tflite_micro", the package version): what a
    microcontroller firmware needs to budget it (arena and flash bytes, the ops and their MicroMutableOpResolver
    calls, the board-class fits), or why TFLM refused it."""
    tflite_micro = f"tflite-micro {checked['tflite_micro']}"
    if not checked.get("supported"):
        return {**manifest, "tflm": {"supported": False, "error": checked.get("error"), "tflite_micro": tflite_micro}}
    entry = {key: checked[key] for key in TFLM_KEYS if key in checked}
    entry["boards"] = [{k: fit[k] for k in ("ram_bytes", "fits", "short_by_bytes")} for fit in entry.get("boards", [])]
    return {**manifest, "tflm": {"supported": True, **entry, "tflite_micro": tflite_micro}}


def to_json(manifest: dict) -> str:
    return json.dumps(manifest, indent=1)
