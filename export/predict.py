#!/usr/bin/env python3
"""Classify images with a kerascnn .tflite model on an edge device (Raspberry Pi, any Linux or macOS box).

Needs only NumPy, Pillow and ai-edge-litert (pip install ai-edge-litert numpy pillow) — never TensorFlow
or Keras. Everything about the model's input comes from the manifest JSON written beside the .tflite by
`python -m kerascnn.export`: labels, input size and colour, normalization, int8 scale and zero point.

    python predict.py --model fashion_mnist/vgg_int8.tflite shirt.png boot.jpg
    python predict.py --model fashion_mnist/vgg_int8.tflite --json *.png
    python predict.py --model fashion_mnist/vgg_int8.tflite --benchmark
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


class PredictError(Exception):
    """A problem with the user's files; the message says which file and what to do."""


def load_manifest(model_path: Path, manifest_path: Path | None) -> dict:
    if not model_path.is_file():
        raise PredictError(f"Model file {model_path} does not exist.")
    manifest_path = manifest_path or model_path.with_suffix(".json")
    if not manifest_path.exists():
        raise PredictError(f"No manifest for {model_path}: expected {manifest_path}. Export the model with "
                           "`python -m kerascnn.export`, which writes it, or pass --manifest.")
    try:
        manifest = json.loads(manifest_path.read_text())
        normalization, shape = manifest["input"]["normalization"], manifest["input"]["shape"]
        if not manifest["labels"] or len(shape) != 4 or not normalization["mean"] or not normalization["std"]:
            raise ValueError("labels, a 4-D input shape, and mean and std are required")
    except (ValueError, KeyError, TypeError) as error:
        raise PredictError(f"{manifest_path} is not a kerascnn manifest ({error}).") from error
    return manifest


class Classifier:
    """Runs the model as its manifest says: resize, convert, normalize, quantize, invoke, dequantize."""

    def __init__(self, model_path: Path, manifest: dict, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        try:  # load_manifest has checked that model_path exists
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise PredictError(f"{model_path} is not a TFLite model ({error}).") from error
        self.manifest = manifest
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        expected = manifest["input"]["shape"][1:]
        if list(self.input["shape"][1:]) != expected or int(self.output["shape"][-1]) != len(manifest["labels"]):
            raise PredictError(
                f"The manifest does not match {model_path}: the model takes {list(self.input['shape'][1:])} and gives "
                f"{int(self.output['shape'][-1])} scores, the manifest says {expected} and {len(manifest['labels'])} "
                "labels. Use the manifest exported with this model.")
        self.height, self.width, self.channels = expected
        self.mean = np.float32(manifest["input"]["normalization"]["mean"])
        self.std = np.float32(manifest["input"]["normalization"]["std"])

    def preprocess(self, path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                image = image.convert("L" if self.channels == 1 else "RGB")
                image = image.resize((self.width, self.height), Image.BILINEAR)
        except FileNotFoundError as error:
            raise PredictError(f"Image {path} does not exist.") from error
        except (UnidentifiedImageError, OSError) as error:
            raise PredictError(f"{path} is not an image Pillow can read ({error}).") from error
        pixels = np.asarray(image, np.float32).reshape(self.height, self.width, self.channels)
        return (pixels - self.mean) / self.std

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        x = x[None]
        scale, zero_point = self.input["quantization"]
        if self.input["dtype"] != np.float32:  # q = round(x / scale) + zero_point
            info = np.iinfo(self.input["dtype"])
            x = np.clip(np.round(x / scale) + zero_point, info.min, info.max)
        self.interpreter.set_tensor(self.input["index"], x.astype(self.input["dtype"]))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])[0]
        scale, zero_point = self.output["quantization"]
        if self.output["dtype"] != np.float32:  # x = (q - zero_point) * scale
            out = (out.astype(np.float32) - zero_point) * scale
        return out

    def top(self, path: Path, k: int) -> list[tuple[str, float]]:
        probabilities = self.probabilities(self.preprocess(path))
        order = np.argsort(-probabilities)[:k]
        return [(self.manifest["labels"][i], round(float(probabilities[i]), 4)) for i in order]


def benchmark(model_path: Path, manifest: dict, rounds: int = 7, runs: int = 50) -> dict:
    """Median ms per image at batch 1 for num_threads 1..N, interleaved rounds."""
    classifiers = {t: Classifier(model_path, manifest, t) for t in range(1, (os.cpu_count() or 1) + 1)}
    x = np.zeros(manifest["input"]["shape"][1:], np.float32)
    samples = {t: [] for t in classifiers}
    for _ in range(rounds):
        for threads, classifier in classifiers.items():
            classifier.probabilities(x)
            start = time.perf_counter()
            for _ in range(runs):
                classifier.probabilities(x)
            samples[threads].append(1000 * (time.perf_counter() - start) / runs)
    return {"model": str(model_path), "median_ms_per_image": {str(t): round(statistics.median(s), 4)
                                                              for t, s in samples.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help=".tflite file")
    parser.add_argument("--manifest", type=Path, help="manifest JSON (default: beside the model, same name)")
    parser.add_argument("--top-k", type=int, default=3, help="how many classes to print (>= 1)")
    parser.add_argument("--threads", type=int, help="interpreter threads (default: the runtime's choice)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image")
    parser.add_argument("--benchmark", action="store_true", help="latency for 1..N threads, as JSON")
    parser.add_argument("--benchmark-out", type=Path, help="also write the benchmark JSON to this file")
    parser.add_argument("images", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be at least 1, got {args.top_k}")
    try:
        manifest = load_manifest(args.model, args.manifest)
        if args.benchmark:
            result = benchmark(args.model, manifest)
            text = json.dumps(result, indent=1)
            print(text)
            if args.benchmark_out:
                args.benchmark_out.write_text(text + "\n")
            return 0
        if not args.images:
            parser.error("give one or more image files (or --benchmark)")
        classifier = Classifier(args.model, manifest, args.threads)
        for path in args.images:
            top = classifier.top(path, args.top_k)
            if args.json:
                print(json.dumps({"file": str(path), "top": top}))
            else:
                print(f"{path}: " + ", ".join(f"{label} {100 * p:.1f} %" for label, p in top))
    except PredictError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
