#!/usr/bin/env python3
# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""Write the page's bundled test images: the first 100 Fashion-MNIST test images as one sprite PNG.

`samples.png` is a 10 x 10 grid of 28 x 28 grey cells, image i at row i // 10, column i % 10, so the
page fetches one small file and slices it; `samples.json` gives the grid, the class names and each
image's true class. Needs NumPy and Pillow and the Fashion-MNIST IDX files (Debian's
/usr/share/datasets/fashion-mnist, or --idx-dir).

    python make_samples.py                      # rewrite samples.png and samples.json beside this file
    python make_samples.py --out /tmp/check     # elsewhere, e.g. to compare with the committed files
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
COUNT, COLUMNS, SIZE = 100, 10, 28


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or not) as an array: magic 0x000008NN (NN = number of dimensions), sizes, uint8 data."""
    data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find(idx_dir: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (idx_dir / name).exists():
            return idx_dir / name
    raise FileNotFoundError(f"No {stem}(.gz) in {idx_dir}: install Debian's fashion-mnist files or pass --idx-dir.")


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--idx-dir",
        type=Path,
        default=Path("/usr/share/datasets/fashion-mnist"),
        help="folder with t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="where to write samples.png and samples.json (default: this folder)",
    )
    args = parser.parse_args(argv)
    try:
        images = read_idx(find(args.idx_dir, "t10k-images-idx3-ubyte"))[:COUNT]
        classes = read_idx(find(args.idx_dir, "t10k-labels-idx1-ubyte"))[:COUNT]
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = COUNT // COLUMNS
    sprite = images.reshape(rows, COLUMNS, SIZE, SIZE).transpose(0, 2, 1, 3).reshape(rows * SIZE, COLUMNS * SIZE)
    args.out.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    Image.fromarray(sprite, "L").save(png, "PNG", optimize=True)
    write_atomic(args.out / "samples.png", png.getvalue())
    meta = {
        "source": f"Fashion-MNIST test set (t10k), images 0..{COUNT - 1}",
        "count": COUNT,
        "columns": COLUMNS,
        "size": SIZE,
        "labels": LABELS,
        "classes": [int(c) for c in classes],
    }
    write_atomic(args.out / "samples.json", (json.dumps(meta) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
