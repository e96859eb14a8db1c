# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""Runs a classifier .tflite with ai-edge-litert, hiding int8 scale and zero point from callers."""

from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """q = clip(round(x / scale) + zero_point) in `dtype`'s range (round half to even, as TFLite's QUANTIZE)."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


class TFLiteClassifier:
    """probabilities = TFLiteClassifier(model_bytes, num_threads)(normalized float32 images)."""

    def __init__(self, tflite_model: bytes, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=tflite_model, num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = None

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], [batch, *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._batch = batch

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self._resize(len(images))
        scale, zero_point = self.input["quantization"]
        if self.input["dtype"] != np.float32:  # integer input: q = round(x / scale) + zero_point
            images = quantize(images, scale, zero_point, self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], images.astype(self.input["dtype"]))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        scale, zero_point = self.output["quantization"]
        if self.output["dtype"] != np.float32:  # x = (q - zero_point) * scale
            out = (out.astype(np.float32) - zero_point) * scale
        return out.astype(np.float32)

    def predict(self, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
        return np.concatenate([self(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
