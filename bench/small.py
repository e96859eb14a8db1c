"""A user's small folder, measured: Fashion-MNIST saved as RGB PNG folders of 10-100 images per class, trained from
scratch with `python -m kerascnn.train --data-dir`, before and after the small-folder changes (issue 38: batch-norm
statistics recomputed from training images when the moving averages cannot have converged, the last epoch kept
when the validation split is too small to choose).

"before" runs the trainer of another source tree (`--before-code`, e.g. a `git archive` of the commit before the
change), "after" this tree; both with the same folders, flags and seed. The test set is 1,000 Fashion-MNIST test
images (100 per class, seeded), resized the same way. Every run appends one JSON line to `--log`; `--table` prints
the markdown table of a log.

    git archive d4ed4da --prefix=before/ | tar -x -C /tmp          # the trainer before the change
    nice python bench/small.py --before-code /tmp/before --shots 15 --sizes 48 --models mobilenet
    python bench/small.py --table --log runs/small-bench/results.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from kerascnn.rundir import Run

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path(os.environ.get("KERASCNN_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
LABELS = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
TEST_PER_CLASS = 100


def _idx(name: str) -> np.ndarray:
    raw = gzip.open(FASHION / name).read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_folder(folder: Path, images: np.ndarray, labels: np.ndarray, size: int) -> None:
    """`images` (28x28 grey) as size x size RGB PNGs (bilinear), one sub-folder per class; skipped when complete."""
    from PIL import Image

    if folder.is_dir() and sum(1 for _ in folder.glob("*/*.png")) == len(images):
        return
    for index, (image, label) in enumerate(zip(images, labels)):
        (folder / LABELS[label]).mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image).convert("RGB").resize((size, size), Image.BILINEAR)
        picture.save(folder / LABELS[label] / f"{index:05d}.png")


def pick(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """`per_class` seeded random indices of each class."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)])


def build_folders(root: Path, per_class: int, size: int, seed: int = 0) -> tuple[Path, Path]:
    """(train folder of `per_class` images per class, test folder of 100 per class) at `size` px, under `root`."""
    x, y = _idx("train-images-idx3-ubyte.gz"), _idx("train-labels-idx1-ubyte.gz")
    chosen = pick(y, per_class, seed)
    train = root / f"train-{per_class}-{size}-s{seed}"
    write_folder(train, x[chosen], y[chosen], size)
    x, y = _idx("t10k-images-idx3-ubyte.gz"), _idx("t10k-labels-idx1-ubyte.gz")
    chosen = pick(y, TEST_PER_CLASS, 1000 + seed)
    test = root / f"test-{size}-s{seed}"
    write_folder(test, x[chosen], y[chosen], size)
    return train, test


def run(code: Path, train: Path, test: Path, out: Path, model: str, size: int, args) -> dict:
    """Trains with `code`'s kerascnn on `train`, tests on `test`; the run's metrics.json plus what the trainer said."""
    command = [
        sys.executable,
        "-m",
        "kerascnn.train",
        *("--data-dir", str(train), "--test-dir", str(test), "--model", model, "--image-size", str(size), str(size)),
        *("--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(args.seed)),
        *("--out", str(out), "--overwrite", "--no-tensorboard", "--compile-cache", "off"),
    ]
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=code)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    metrics = Run(out).metrics()
    said = [line for line in done.stdout.splitlines() if line and not line.startswith(("Epoch ", " "))][-6:]
    return {**metrics, "said": said, "wall_s": round(time.perf_counter() - started, 1)}


def table(log: Path) -> str:
    """The markdown table of the runs in `log`: one row per case, before and after side by side."""
    rows = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        key = (entry["per_class"], entry["size"], entry["model"])
        rows.setdefault(key, {})[entry["variant"]] = entry
    lines = [
        "| images/class | px | model | before: test % (kept) | after: test % (kept) | after: last % | validation |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for (per_class, size, model), both in sorted(rows.items()):

        def cell(variant, both=both):
            entry = both.get(variant)
            if entry is None:
                return "-"
            return f"{100 * entry['test_accuracy']:.1f} ({entry.get('kept', 'best')} {entry['best_epoch']})"

        after = both.get("after", {})
        last = f"{100 * after['test_accuracy_last']:.1f}" if "test_accuracy_last" in after else "-"
        shown = next(iter(both.values()))
        validation = shown.get("validation_images", round(per_class * 10 / 12))
        lines.append(f"| {per_class} | {size} | {model} | {cell('before')} | {cell('after')} | {last} | {validation} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shots", type=int, nargs="+", default=[15, 10, 20, 50, 100], help="images per class")
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 96], help="image sizes (px)")
    parser.add_argument("--models", nargs="+", default=["mobilenet", "vgg"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--before-code", type=Path, help="source tree of the trainer before the change (none: skip)")
    parser.add_argument("--variants", nargs="+", default=["before", "after"])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "small-bench", help="folders and runs")
    parser.add_argument("--log", type=Path, help="JSON lines of results (default: WORK/results.jsonl)")
    parser.add_argument("--table", action="store_true", help="print the table of --log and stop")
    args = parser.parse_args()
    log = args.log or args.work / "results.jsonl"
    if args.table:
        print(table(log))
        return
    codes = {"before": args.before_code, "after": ROOT}
    for per_class in args.shots:
        for size in args.sizes:
            train, test = build_folders(args.work / "data", per_class, size, args.seed)
            for model in args.models:
                for variant in args.variants:
                    if codes[variant] is None:
                        continue
                    out = args.work / f"{variant}-{model}-{per_class}-{size}"
                    result = run(codes[variant].resolve(), train, test, out, model, size, args)
                    entry = {"variant": variant, "per_class": per_class, "size": size, "model": model, **result}
                    entry.pop("history", None)
                    print(
                        f"{variant} {model} {per_class}/class {size}px: test {100 * entry['test_accuracy']:.1f} % "
                        f"(last {100 * entry['test_accuracy_last']:.1f} %, kept {entry.get('kept')} epoch "
                        f"{entry['best_epoch']}), {entry['wall_s']} s",
                        flush=True,
                    )
                    log.parent.mkdir(parents=True, exist_ok=True)
                    with log.open("a") as f:
                        f.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    main()
