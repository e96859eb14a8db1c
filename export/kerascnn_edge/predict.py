#!/usr/bin/env python3
# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""Classify images with a kerascnn .tflite model on an edge device (Raspberry Pi, any Linux or macOS box).

Needs only NumPy, Pillow and ai-edge-litert (pip install kerascnn-edge, or ./export from a clone) — never TensorFlow
or Keras. Everything about the model's input comes from the manifest JSON written beside the .tflite by
`python -m kerascnn.export`: labels, input size and colour, normalization, int8 scale and zero point. The model
carries its labels, normalization and colour itself (TFLite metadata and its labels.txt): a manifest that
contradicts them is refused naming the field, and without a manifest they are read from the model.
Images of any size and mode work, prepared as training prepared its images: turned upright by their EXIF
orientation tag, 16-bit PNGs scaled to 8 bits (not clipped), transparent pixels composited on white
(`--background black` for black), converted to grey or RGB as the model takes, resized with Pillow's bilinear
filter (antialiased when shrinking, as training's `tf.image.resize(..., antialias=True)`).
An image that cannot be read, or a path that is not a regular file (a FIFO, a folder), is reported and the
others are still classified (exit code 2 at the end).

    kerascnn-predict --model fashion_mnist/vgg_int8.tflite shirt.png boot.jpg
    kerascnn-predict --model fashion_mnist/vgg_int8.tflite --json *.png
    python -m kerascnn_edge.predict --model fashion_mnist/vgg_int8.tflite --benchmark
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

from kerascnn_edge.files import EdgeError, regular_file
from kerascnn_edge.manifest import Manifest
from kerascnn_edge.metadata import model_metadata, pixel_normalization

PredictError = EdgeError  # the name callers of predict know: a problem with the user's files, named


def _check_against_model(manifest: Manifest, meta: dict, manifest_path: Path, model_path: Path) -> None:
    """Raises PredictError naming the first manifest field that contradicts what the model carries."""

    def refuse(field: str, theirs, ours) -> None:
        raise PredictError(
            f"{manifest_path} contradicts {model_path}: {field} is {theirs!r:.120} in the manifest but "
            f"{ours!r:.120} in the model's metadata. Use the manifest exported with this model, or leave it out "
            "(the model's own labels and normalization are then used)."
        )

    labels = meta["labels"]  # another count is the Classifier's shape check, which names both sizes
    if labels is not None and len(labels) == len(manifest.labels) and list(manifest.labels) != labels:
        refuse("labels", list(manifest.labels), meta["labels"])
    if meta["color"] and (manifest.color or meta["color"]) != meta["color"]:
        refuse("input.color", manifest.color, meta["color"])
    implied = pixel_normalization(meta, manifest.channels)
    if implied is None:
        return
    # an integer input's zero point is a whole step, s pixels: its implied mean is exact to within half a step
    half_step = 0.5 * max(meta["std"]) if meta["dtype"] != "float32" else 0.0
    for key, given, ours, tolerance in zip(("mean", "std"), (manifest.mean, manifest.std), implied, (half_step, 0.0)):
        theirs = list(given) * (manifest.channels if len(given) == 1 else 1)
        if not np.allclose(theirs, ours, rtol=1e-4, atol=tolerance + 1e-4):
            refuse(f"input.normalization.{key}", theirs, [round(v, 4) for v in ours])


def manifest_from_model(model_path: Path, meta: dict) -> Manifest:
    """A manifest built from the model's own metadata and input tensor (labels, shape, colour, normalization).

    Raises:
        PredictError: the metadata lacks the labels or the normalization.
    """
    from ai_edge_litert.interpreter import Interpreter

    try:
        given = Interpreter(model_path=str(model_path)).get_input_details()[0]
    except (ValueError, RuntimeError) as error:
        raise PredictError(f"{model_path} is not a TFLite model ({error}).") from error
    shape = [int(n) for n in given["shape"]]
    implied = pixel_normalization(meta, shape[-1])
    missing = [what for what, value in (("labels", meta["labels"]), ("normalization", implied)) if value is None]
    if missing:
        raise PredictError(
            f"No manifest for {model_path} and its metadata has no {' or '.join(missing)}: pass --manifest, or "
            "export the model with `python -m kerascnn.export`, which writes both."
        )
    color = meta["color"] or ("grey" if shape[-1] == 1 else "rgb")
    normalization = {"mean": implied[0], "std": implied[1]}
    return Manifest.from_dict(
        {"labels": meta["labels"], "input": {"shape": shape, "color": color, "normalization": normalization}}
    )


def load_manifest(model_path: Path, manifest_path: Path | None) -> Manifest:
    """The manifest beside `model_path` (or `manifest_path`), checked (`Manifest.read`) and checked against what
    the model carries (`model_metadata`: labels, colour, normalization). With no manifest, one built from the
    model's metadata (`manifest_from_model`).

    Raises:
        PredictError: the model is missing or not a regular file; the manifest is not a regular file, is malformed
            or contradicts the model (says which field); no manifest and no metadata to stand in for it.
    """
    regular_file(model_path, "Model file", "give the .tflite written by `python -m kerascnn.export`")
    meta = model_metadata(model_path)
    if manifest_path is None and not model_path.with_suffix(".json").exists():
        if meta is not None:
            return manifest_from_model(model_path, meta)
        raise PredictError(
            f"No manifest for {model_path}: expected {model_path.with_suffix('.json')}, and the model carries no "
            "TFLite metadata. Export the model with `python -m kerascnn.export`, which writes both, or pass --manifest."
        )
    manifest_path = manifest_path or model_path.with_suffix(".json")
    manifest = Manifest.read(manifest_path)
    if meta is not None:
        _check_against_model(manifest, meta, manifest_path, model_path)
    return manifest


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """q = clip(round(x / scale) + zero_point) in `dtype`'s range: how a float input enters an integer model."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}


def to_8bit(image):
    """A Pillow image as 8-bit grey or RGB(A): 16-bit and 32-bit integer grey ("I;16", "I") is scaled by 255/65535
    (not clipped at 255), so a 16-bit PNG reads like its 8-bit version."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        pixels = np.asarray(image, np.float64)
        return Image.fromarray(np.clip(np.round(pixels * (255 / 65535)), 0, 255).astype(np.uint8), "L")
    return image


def composite(image, background: str = "white"):
    """Transparent pixels over a solid `background` ("white" or "black"); images without alpha unchanged."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*BACKGROUNDS[background], 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return image


def load_pixels(image, size: tuple[int, int], channels: int, background: str = "white") -> np.ndarray:
    """A Pillow image as uint8 pixels (height, width, channels), as training saw its images
    (kerascnn/data/images.py): turned upright by its EXIF orientation tag (`ImageOps.exif_transpose`: phones store
    portrait photos rotated, with the tag), 8 bits, alpha over the background, grey or RGB, resized with Pillow's
    bilinear filter (antialiased when shrinking, which `tf.image.resize(..., antialias=True)` matches)."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    image = composite(to_8bit(image), background).convert("L" if channels == 1 else "RGB")
    height, width = size
    image = image.resize((width, height), Image.BILINEAR)
    return np.asarray(image, np.uint8).reshape(height, width, channels)


class Classifier:
    """Runs the model as its manifest says: resize, convert, normalize, quantize, invoke, dequantize."""

    def __init__(self, model_path: Path, manifest: Manifest, num_threads: int | None = None, background: str = "white"):
        from ai_edge_litert.interpreter import Interpreter

        try:  # load_manifest has checked that model_path exists
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise PredictError(f"{model_path} is not a TFLite model ({error}).") from error
        self.manifest = manifest
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        expected = list(manifest.shape[1:])
        takes = [int(n) for n in self.input["shape"][1:]]  # plain ints: numpy's print as np.int32(28)
        if takes != expected or int(self.output["shape"][-1]) != len(manifest.labels):
            raise PredictError(
                f"The manifest does not match {model_path}: the model takes {takes} and gives "
                f"{int(self.output['shape'][-1])} scores, the manifest says {expected} and {len(manifest.labels)} "
                "labels. Use the manifest exported with this model."
            )
        self.height, self.width, self.channels = expected
        self.mean = np.float32(manifest.mean)
        self.std = np.float32(manifest.std)
        self.background = background

    def preprocess_image(self, image) -> np.ndarray:
        """A Pillow image as the model's normalized input: `load_pixels`, then (pixel - mean) / std per channel."""
        pixels = load_pixels(image, (self.height, self.width), self.channels, self.background).astype(np.float32)
        return (pixels - self.mean) / self.std

    def preprocess(self, path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        regular_file(path, "Image", "give image files")
        try:
            with Image.open(path) as image:
                return self.preprocess_image(image)
        except Image.DecompressionBombError as error:
            raise PredictError(
                f"{path} is too large for Pillow's decompression-bomb limit ({error}); downscale it "
                "first (the model needs only "
                f"{self.width}x{self.height} pixels)."
            ) from error
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise PredictError(f"{path} is not an image Pillow can read ({error}).") from error

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        x = x[None]
        scale, zero_point = self.input["quantization"]
        if self.input["dtype"] != np.float32:  # q = round(x / scale) + zero_point
            x = quantize(x, scale, zero_point, self.input["dtype"])
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
        return [(self.manifest.labels[i], round(float(probabilities[i]), 4)) for i in order]


def benchmark(model_path: Path, manifest: Manifest, rounds: int = 7, runs: int = 50) -> dict:
    """Median ms per image at batch 1 for num_threads 1..N, interleaved rounds."""
    classifiers = {t: Classifier(model_path, manifest, t) for t in range(1, (os.cpu_count() or 1) + 1)}
    x = np.zeros(manifest.shape[1:], np.float32)
    samples = {t: [] for t in classifiers}
    for _ in range(rounds):
        for threads, classifier in classifiers.items():
            classifier.probabilities(x)
            start = time.perf_counter()
            for _ in range(runs):
                classifier.probabilities(x)
            samples[threads].append(1000 * (time.perf_counter() - start) / runs)
    return {
        "model": str(model_path),
        "median_ms_per_image": {str(t): round(statistics.median(s), 4) for t, s in samples.items()},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help=".tflite file")
    parser.add_argument("--manifest", type=Path, help="manifest JSON (default: beside the model, same name)")
    parser.add_argument("--top-k", type=int, default=3, help="how many classes to print (>= 1; default 3)")
    parser.add_argument("--threads", type=int, help="interpreter threads, >= 1 (default: the runtime's choice)")
    parser.add_argument(
        "--background",
        choices=list(BACKGROUNDS),
        default="white",
        help="colour under transparent pixels of RGBA/LA/P images (default white)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per image")
    parser.add_argument("--benchmark", action="store_true", help="latency for 1..N threads, as JSON")
    parser.add_argument("--benchmark-out", type=Path, help="also write the benchmark JSON to this file")
    parser.add_argument("images", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be at least 1, got {args.top_k}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1 (or left out for the runtime's choice), got {args.threads}")
    if not args.benchmark and not args.images:
        parser.error("give one or more image files (or --benchmark)")
    if args.benchmark_out and not (
        args.benchmark_out.parent.is_dir() and os.access(args.benchmark_out.parent, os.W_OK)
    ):
        parser.error(
            f"--benchmark-out {args.benchmark_out}: the folder {args.benchmark_out.parent} does not exist "
            "or is not writable"
        )
    failed = 0
    try:
        manifest = load_manifest(args.model, args.manifest)
        if args.benchmark:
            result = benchmark(args.model, manifest)
            text = json.dumps(result, indent=1)
            print(text)
            if args.benchmark_out:
                try:
                    args.benchmark_out.write_text(text + "\n")
                except OSError as error:
                    raise PredictError(
                        f"Cannot write --benchmark-out {args.benchmark_out} ({error.strerror})."
                    ) from error
            return 0
        classifier = Classifier(args.model, manifest, args.threads, args.background)
        for path in args.images:
            try:
                top = classifier.top(path, args.top_k)
            except PredictError as error:  # report it, classify the others, fail at the end
                print(f"error: {error}", file=sys.stderr)
                failed += 1
                continue
            if args.json:
                print(json.dumps({"file": str(path), "top": top}))
            else:
                print(f"{path}: " + ", ".join(f"{label} {100 * p:.1f} %" for label, p in top))
    except PredictError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if failed:
        print(f"error: {failed} of {len(args.images)} images could not be classified (see above).", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
