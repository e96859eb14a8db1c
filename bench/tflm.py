"""TensorFlow Lite Micro on the host: for each .tflite (default: the shipped int8-io and uint8 files), the table the
README's microcontroller rows come from, by kerascnn-check-tflm in .venv-edge on the first --images Fashion-MNIST
test images: flash and arena bytes, TFLM's top-1 accuracy, its top-1 agreement with ai-edge-litert (reference kernels;
XNNPACK), and the median ms per invoke() (wall-clock and CPU). The time is TFLM's reference kernels on this
machine's x86 CPU, not a board's.

    .venv/bin/python bench/tflm.py                                    # the shipped files, all 10,000 test images
    .venv/bin/python bench/tflm.py --images 1000 /tmp/mobilenet/mobilenet_int8-io.tflite
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "export" / "fashion_mnist" / f"vgg_{name}.tflite" for name in ("int8-io", "uint8")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000, help="first N test images (default 10000: all)")
    parser.add_argument("models", nargs="*", type=Path, default=SHIPPED, help=".tflite files with manifests")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "export"))
    import edge_venv
    from kerascnn.data import load_dataset

    images, labels = (a[: args.images] for a in load_dataset("fashion_mnist").splits["test"])
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "test.npz", images=images, labels=labels)
        done = subprocess.run(
            [str(edge_venv.ensure()), "-m", "kerascnn_edge.tflm.check", "--data", str(Path(tmp) / "test.npz")]
            + [str(model) for model in args.models],
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
    if done.returncode:
        print(done.stderr, file=sys.stderr)
        return done.returncode
    result = json.loads(done.stdout)
    print(f"tflite-micro {result['tflite_micro']}, ai-edge-litert {result['ai_edge_litert']}, {len(images):,} images")
    print()
    print(
        "| model | flash (bytes) | arena (bytes) | arena + 20 % (bytes) | TFLM accuracy (%) | top-1 = ai-edge-litert "
        "reference (%) | top-1 = XNNPACK (%) | ms per image (TFLM reference kernels, x86: wall / CPU) |"
    )
    print("|---" * 8 + "|")
    for row in result["results"]:
        if not row["supported"]:
            print(f"| {Path(row['model']).name} | {row['flash_bytes']:,} | refused: {row['error']} |" + " |" * 5)
            continue
        print(
            f"| {Path(row['model']).name} | {row['flash_bytes']:,} | {row['arena_bytes']:,} | "
            f"{row['arena_bytes_with_margin']:,} | {row['accuracy']:.2f} | {row['top1_agreement']:.2f} | "
            f"{row['xnnpack']['top1_agreement']:.2f} | {row['ms_per_image']:.1f} / {row['cpu_ms_per_image']:.1f} |"
        )
    for row in result["results"]:
        for difference in row.get("xnnpack", {}).get("differences", []):
            print(
                f"- {Path(row['model']).name}, image {difference['image']} ({difference['label']}): TFLM "
                f"{difference['tflm_top2']}, XNNPACK {difference['xnnpack_top2']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
