#!/usr/bin/env python3
# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""Classify images with MediaPipe Tasks' ImageClassifier and print predict.py's --json lines (top-1 only).

The model must carry TFLite metadata (labels, normalization); MediaPipe does all pre-processing. Images are handed
over as RGB, as a camera gives them. Prints an error line and exits 1 when MediaPipe refuses the model.

    python mediapipe_top1.py --model fashion_mnist/vgg_int8.tflite a.png b.png
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help=".tflite file with metadata")
    parser.add_argument("images", nargs="+")
    args = parser.parse_args(argv)
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    from PIL import Image

    try:
        classifier = vision.ImageClassifier.create_from_options(
            vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=args.model), max_results=1)
        )
    except (ValueError, RuntimeError) as error:
        print(f"error: MediaPipe refuses {args.model}: {error}", file=sys.stderr)
        return 1
    with classifier:
        for path in args.images:
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"))
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            best = result.classifications[0].categories[0]
            print(json.dumps({"file": path, "top": [[best.category_name or str(best.index), best.score]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
