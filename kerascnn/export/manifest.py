"""The JSON manifest beside each .tflite: everything edge code needs to feed the model and read it."""

from __future__ import annotations

import hashlib
import json

import numpy as np


def calibration_hash(images: np.ndarray | None) -> str | None:
    """sha256 of the calibration images' bytes (float32), or None without calibration."""
    if images is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(images, np.float32).tobytes()).hexdigest()


def build_manifest(tflite_model: bytes, *, name: str, parameters: int, dataset: dict, quant: str,
                   seed: int, calibration: np.ndarray | None) -> dict:
    """labels, input (shape, dtype, normalization, quantization), output, model, versions, converter."""
    import ai_edge_litert
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_model)
    given, returned = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def quantization(details):
        scale, zero_point = details["quantization"]
        return {"scale": float(scale), "zero_point": int(zero_point)} if scale else None

    return {
        "format": "kerascnn-tflite-manifest/1",
        "labels": dataset["labels"],
        "input": {
            "shape": [1, *dataset["input_shape"]],
            "dtype": np.dtype(given["dtype"]).name,
            "normalization": {"mean": dataset["normalization"]["mean"], "std": dataset["normalization"]["std"],
                              "formula": "(pixel - mean) / std, pixel values 0..255, per channel"},
            "quantization": quantization(given),
            "color": "grey" if dataset["input_shape"][-1] == 1 else "rgb",
        },
        "output": {"dtype": np.dtype(returned["dtype"]).name, "quantization": quantization(returned),
                   "meaning": "class probabilities (softmax), in label order"},
        "model": {"name": name, "parameters": int(parameters), "dataset": dataset.get("dataset"), "seed": seed},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown")},
        "converter": {"quantization": quant, "supported_ops": "TFLITE_BUILTINS only",
                      "calibration_images": 0 if calibration is None else int(len(calibration)),
                      "calibration_sha256": calibration_hash(calibration)},
    }


def to_json(manifest: dict) -> str:
    return json.dumps(manifest, indent=1)
