#!/usr/bin/env python3
# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""Classify test images with MediaPipe Tasks' ImageClassifier and with predict.py's ai-edge-litert route, and
compare: the check that an exported .tflite runs in MediaPipe with no extra code.

Edge side: needs kerascnn-edge[mediapipe] (numpy, Pillow, ai-edge-litert, mediapipe), never TensorFlow. MediaPipe
reads everything from the model's TFLite metadata: labels, normalization, colour. Images go in as a phone camera
gives them, 8-bit RGB (grey test images are repeated into R = G = B); no pre-processing is written here.

    kerascnn-check-mediapipe --data test.npz fashion_mnist/vgg_uint8.tflite fashion_mnist/vgg_int8.tflite

`--data`: an .npz with `images` (N, H, W) or (N, H, W, C) uint8 and `labels` (N,) class indices (label order of the
manifest). Prints one JSON object: per model, MediaPipe's top-1 accuracy and ms per image (classify() with its own
pre-processing, 1 image at a time), ai-edge-litert's top-1 accuracy through predict.py, their top-1 agreement, and
the metadata MediaPipe's schema reads; a model MediaPipe refuses, or one without TFLite metadata (MediaPipe would
run it with unnamed categories), gets "supported": false and the reason.

`--files`: a JSON list of [image path, class index] (the test images as files, e.g. a phone's photos at their
original size): each model's row then also gets "files", the accuracy of each client given those files as an app
would give them: "predict_py" (ai-edge-litert through predict.py, which turns them upright and resizes them as
training did), "mediapipe_full_size" (the upright full-size image, MediaPipe resizing it with its own filter) and
"mediapipe_pre_resized" (the app resizes with predict.py's `load_pixels`, the training filter, and MediaPipe gets
the model's size). Every client sees the photo upright: `ImageOps.exif_transpose` applied, as a phone's camera
API or the browser's `createImageBitmap` gives it.

Bad input (an unreadable or empty --data, images that are not uint8 pixels, labels that are no class index of the
model, --limit below 1, a model whose metadata names a label file it does not carry) ends with one line naming the
file or flag and the fix, and exit code 2.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from kerascnn_edge import predict
from kerascnn_edge.files import check_labels, load_data


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


def missing_label_files(model_path: Path, metadata: dict) -> list[str]:
    """The label files the metadata names that are not zipped after the model (a model whose zip was stripped)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_path.read_bytes())) as zipped:
            carried = set(zipped.namelist())
    except zipfile.BadZipFile:
        carried = set()
    return [name for name, _ in metadata["label_files"] if name not in carried]


def load_files(path: Path) -> tuple[list[Path], np.ndarray]:
    """(image paths, labels) of a --files JSON list of [path, class index].

    Raises:
        predict.PredictError: not such a JSON list, empty, or naming a file that does not exist (checked before
            any model runs).
    """
    try:
        pairs = json.loads(path.read_text())
        files, labels = [Path(p) for p, _ in pairs], np.array([int(label) for _, label in pairs], int)
    except (OSError, ValueError, TypeError) as error:
        raise predict.PredictError(
            f"--files {path} is not a readable JSON list of [image path, class index] ({error}): write one with "
            'json.dump([["photos/cat/1.jpg", 0], ...], file).'
        ) from error
    if not files:
        raise predict.PredictError(f"--files {path} names no image: give at least one [path, class index].")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise predict.PredictError(
            f"--files {path} names {len(missing)} image(s) that do not exist, first {missing[0]}: give existing paths."
        )
    return files, labels


def upright_rgb(path: Path) -> np.ndarray:
    """An image file as full-size upright 8-bit RGB (height, width, 3): EXIF orientation applied, not resized."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return np.asarray(predict.composite(predict.to_8bit(ImageOps.exif_transpose(image))).convert("RGB"))


def check_files(model_path: Path, files: list[Path], truth: np.ndarray) -> dict:
    """The accuracy of predict.py, MediaPipe given the full-size image and MediaPipe given the image pre-resized
    with the training filter, on image files (see the module docstring)."""
    from PIL import Image

    manifest = predict.load_manifest(model_path, None)
    classifier = predict.Classifier(model_path, manifest)
    names = np.array(manifest.labels)[truth]
    labels = manifest.labels
    litert = [labels[int(np.argmax(classifier.probabilities(classifier.preprocess(f))))] for f in files]
    row = {"images": len(files), "predict_py": round(100 * float(np.mean(np.array(litert) == names)), 2)}
    full = [upright_rgb(f) for f in files]
    height, width, channels = manifest.shape[1:]
    resized = [predict.load_pixels(Image.fromarray(image), (height, width), channels) for image in full]
    resized = [np.repeat(image, 3, axis=-1) if channels == 1 else image for image in resized]
    for name, images in (("mediapipe_full_size", full), ("mediapipe_pre_resized", resized)):
        try:
            top, _ = mediapipe_top1(model_path, images)
        except (ValueError, RuntimeError) as error:
            row[name] = f"refused: {str(error).splitlines()[0]}"
            continue
        row[name] = round(100 * float(np.mean(np.array(top) == names)), 2)
    return row


def mediapipe_top1(model_path: Path, rgb_images) -> tuple[list[str], float]:
    """MediaPipe's top-1 label per image (a sequence of (H, W, 3) uint8 arrays, any size) and the median ms per
    classify() call (after one warm-up)."""
    import mediapipe as mp
    from mediapipe.tasks import python as tasks
    from mediapipe.tasks.python import vision

    options = vision.ImageClassifierOptions(
        base_options=tasks.BaseOptions(model_asset_path=str(model_path)), max_results=1
    )
    top, times = [], []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb_images[0])))
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
    labels = manifest.labels
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


NO_METADATA = (
    "no TFLite metadata (TFLITE_METADATA): MediaPipe would run it with no labels (unnamed categories) and no "
    "normalization; export it with python -m kerascnn.export, which writes both"
)


def check(model_path: Path, images: np.ndarray, truth: np.ndarray) -> dict:
    """One model's row (see the module docstring).

    Raises:
        predict.PredictError: a missing model or manifest, labels that are no class index of the model, or metadata
            naming a label file the model does not carry.
    """
    manifest = predict.load_manifest(model_path, None)
    check_labels(truth, manifest.labels, model_path)
    metadata = read_metadata(model_path)
    missing = missing_label_files(model_path, metadata) if metadata else []
    if missing:
        raise predict.PredictError(
            f"{model_path}: its metadata names the label file {', '.join(missing)}, which the model does not carry "
            "(the zip of associated files after the model was stripped): use the .tflite as exported, or export it "
            "again with python -m kerascnn.export."
        )
    names = np.array(manifest.labels)[truth]
    rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
    litert = litert_top1(model_path, images)
    row = {
        "model": str(model_path),
        "images": int(len(images)),
        "metadata": metadata,
        "ai_edge_litert": {"accuracy": round(100 * float(np.mean(np.array(litert) == names)), 2)},
    }
    if metadata is None:
        row["mediapipe"] = {"supported": False, "error": NO_METADATA}
        return row
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
    parser.add_argument("--limit", type=int, help="use the first N >= 1 images (default all)")
    parser.add_argument("--files", type=Path, help="JSON list of [image path, class index]: also measure each client")
    parser.add_argument("models", nargs="+", type=Path, help=".tflite files, each with its manifest beside it")
    args = parser.parse_args(argv)
    try:
        if args.limit is not None and args.limit < 1:
            raise predict.PredictError(f"--limit must be at least 1 image (or left out for all), got {args.limit}.")
        images, truth = load_data(args.data, args.limit)
        files = load_files(args.files) if args.files else None
        results = []
        for model in args.models:
            results.append(check(model, images, truth))
            if files and results[-1]["mediapipe"]["supported"]:
                results[-1]["files"] = check_files(model, files[0][: args.limit], files[1][: args.limit])
        print(json.dumps({"mediapipe": _version(), "results": results}, indent=1))
    except predict.PredictError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _version() -> str:
    from importlib.metadata import version

    return version("mediapipe")


if __name__ == "__main__":
    sys.exit(main())
