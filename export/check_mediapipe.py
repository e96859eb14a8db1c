#!/usr/bin/env python3
# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""Classify test images with MediaPipe Tasks' ImageClassifier and with predict.py's ai-edge-litert route, and
compare: the check that an exported .tflite runs in MediaPipe with no extra code.

Edge side: needs export/requirements.txt (numpy, Pillow, ai-edge-litert, mediapipe), never TensorFlow. MediaPipe
reads everything from the model's TFLite metadata: labels, normalization, colour. Images go in as a phone camera
gives them, 8-bit RGB (grey test images are repeated into R = G = B); no pre-processing is written here.

    python export/check_mediapipe.py --data test.npz fashion_mnist/vgg_uint8.tflite fashion_mnist/vgg_int8.tflite

`--data`: an .npz with `images` (N, H, W) or (N, H, W, C) uint8 and `labels` (N,) class indices (label order of the
manifest). Prints one JSON object: per model, MediaPipe's top-1 accuracy and ms per image (classify() with its own
pre-processing, 1 image at a time), ai-edge-litert's top-1 accuracy through predict.py, their top-1 agreement, and
the metadata MediaPipe's schema reads; a model MediaPipe refuses gets "supported": false and its error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import predict  # noqa: E402  (predict.py beside this file)


def read_metadata(model_path: Path) -> dict | None:
    """The TFLITE_METADATA MediaPipe will read, decoded with the schema code shipped in the mediapipe wheel."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta
    from mediapipe.tasks.metadata import schema_py_generated as schema

    data = bytearray(model_path.read_bytes())
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        if model.Metadata(i).Name() == b"TFLITE_METADATA":
            buffer = model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy().tobytes()
            break
    else:
        return None
    root = meta.ModelMetadata.GetRootAs(buffer, 0)
    subgraph = root.SubgraphMetadata(0)
    image, scores = subgraph.InputTensorMetadata(0), subgraph.OutputTensorMetadata(0)
    properties = meta.ImageProperties()
    properties.Init(image.Content().ContentProperties().Bytes, image.Content().ContentProperties().Pos)
    options = meta.NormalizationOptions()
    unit = image.ProcessUnits(0)
    options.Init(unit.Options().Bytes, unit.Options().Pos)
    return {
        "identifier_ok": meta.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0),
        "name": root.Name().decode(),
        "description": root.Description().decode(),
        "version": root.Version().decode(),
        "license": root.License().decode(),
        "min_parser_version": root.MinParserVersion().decode(),
        "color_space": {1: "RGB", 2: "GRAYSCALE"}.get(properties.ColorSpace(), "UNKNOWN"),
        "mean": options.MeanAsNumpy().tolist(),
        "std": options.StdAsNumpy().tolist(),
        "stats_min": image.Stats().MinAsNumpy().tolist(),
        "stats_max": image.Stats().MaxAsNumpy().tolist(),
        "label_files": [
            (scores.AssociatedFiles(j).Name().decode(), scores.AssociatedFiles(j).Type())
            for j in range(scores.AssociatedFilesLength())
        ],
    }


def mediapipe_top1(model_path: Path, rgb_images: np.ndarray) -> tuple[list[str], float]:
    """MediaPipe's top-1 label per image and the median ms per classify() call (after one warm-up)."""
    import mediapipe as mp
    from mediapipe.tasks import python as tasks
    from mediapipe.tasks.python import vision

    options = vision.ImageClassifierOptions(
        base_options=tasks.BaseOptions(model_asset_path=str(model_path)), max_results=1
    )
    top, times = [], []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb_images[0]))
        for image in rgb_images:
            frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
            start = time.perf_counter()
            result = classifier.classify(frame)
            times.append(1000 * (time.perf_counter() - start))
            top.append(result.classifications[0].categories[0].category_name)
    return top, float(np.median(times))


def litert_top1(model_path: Path, images: np.ndarray) -> list[str]:
    """ai-edge-litert's top-1 label per image, pre-processed by predict.py from its manifest."""
    from PIL import Image

    manifest = predict.load_manifest(model_path, None)
    classifier = predict.Classifier(model_path, manifest)
    labels = manifest["labels"]
    return [
        labels[
            int(
                np.argmax(
                    classifier.probabilities(
                        classifier.preprocess_image(Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image))
                    )
                )
            )
        ]
        for image in images
    ]


def check(model_path: Path, images: np.ndarray, truth: np.ndarray) -> dict:
    manifest = predict.load_manifest(model_path, None)
    names = np.array(manifest["labels"])[truth]
    rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
    litert = litert_top1(model_path, images)
    row = {
        "model": str(model_path),
        "images": int(len(images)),
        "metadata": read_metadata(model_path),
        "ai_edge_litert": {"accuracy": round(100 * float(np.mean(np.array(litert) == names)), 2)},
    }
    try:
        top, ms = mediapipe_top1(model_path, rgb)
    except (ValueError, RuntimeError) as error:  # MediaPipe refuses the model (e.g. an int8 input)
        row["mediapipe"] = {"supported": False, "error": str(error).splitlines()[0]}
        return row
    row["mediapipe"] = {
        "supported": True,
        "accuracy": round(100 * float(np.mean(np.array(top) == names)), 2),
        "ms_per_image": round(ms, 4),
    }
    row["top1_agreement"] = round(100 * float(np.mean(np.array(top) == np.array(litert))), 2)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help=".npz with images (uint8) and labels (indices)")
    parser.add_argument("--limit", type=int, help="use the first N images (default all)")
    parser.add_argument("models", nargs="+", type=Path, help=".tflite files, each with its manifest beside it")
    args = parser.parse_args(argv)
    try:
        with np.load(args.data) as data:
            images, truth = data["images"][: args.limit], data["labels"][: args.limit].astype(int)
    except (OSError, KeyError, ValueError) as error:
        parser.error(f"--data {args.data}: not an .npz with images and labels ({error})")
    if images.ndim == 3:
        images = images[..., None]
    try:
        print(
            json.dumps({"mediapipe": _version(), "results": [check(m, images, truth) for m in args.models]}, indent=1)
        )
    except predict.PredictError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _version() -> str:
    from importlib.metadata import version

    return version("mediapipe")


if __name__ == "__main__":
    sys.exit(main())
