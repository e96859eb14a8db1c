# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""Runs a classifier .tflite with ai-edge-litert, hiding int8 scale and zero point from callers."""

from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """q = clip(round(x / scale) + zero_point) in `dtype`'s range (round half to even, as TFLite's QUANTIZE)."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


class TFLiteClassifier:
    """probabilities = TFLiteClassifier(model_bytes, num_threads)(normalized float32 images).

    Runs a classifier .tflite in the LiteRT interpreter (ai-edge-litert). Integer inputs and outputs are
    converted at the edges with the tensors' own scale and zero point: q = clip(round(x / scale) + zero_point)
    in, x = (q - zero_point) * scale out, so callers pass and get float32 whatever the preset.

    Args:
        tflite_model: the .tflite bytes (from `convert`, or a file's `read_bytes()`).
        num_threads: interpreter threads; None for LiteRT's default.

    Raises:
        ValueError: `tflite_model` is not a valid TFLite flatbuffer (raised by the interpreter).
        ImportError: ai-edge-litert is not installed.

    Example:
        >>> import numpy as np
        >>> from kerascnn.export import TFLiteClassifier, convert
        >>> from kerascnn.models import create
        >>> classifier = TFLiteClassifier(convert(create("vgg", (8, 8, 1), 3, widths=(4,))))
        >>> probabilities = classifier(np.zeros((2, 8, 8, 1), "float32"))
        >>> probabilities.shape, probabilities.dtype, probabilities.sum(axis=1).round(4).tolist()
        ((2, 3), dtype('float32'), [1.0, 1.0])
        >>> classifier.predict(np.zeros((5, 8, 8, 1), "float32"), batch_size=2).shape  # batches of 2, 2 and 1
        (5, 3)
    """

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
        """The model's outputs for one batch.

        Args:
            images: normalized float32 images (N, H, W, C), as the Keras model takes them; the input is resized to
                batch N when N changed.

        Returns:
            float32 (N, classes), probabilities for kerascnn's models (softmax head), dequantized for integer
            outputs.
        """
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
        """The outputs for any number of images, run `batch_size` at a time (the last batch may be smaller).

        Args:
            images: normalized float32 images (N, H, W, C).
            batch_size: images per interpreter call, >= 1.

        Returns:
            float32 (N, classes), as `__call__` gives them.
        """
        return np.concatenate([self(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
