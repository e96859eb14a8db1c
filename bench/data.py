"""Peak memory and images/s of the input pipeline on image folders: kerascnn.data.stream vs
keras.utils.image_dataset_from_directory, side by side.

For each size, a folder of generated 96x96 RGB JPEGs (4 classes) is written once into --dir (default a temp
folder; reused when it already holds that many images). Every measurement runs in a fresh subprocess, whose
peak resident memory is `resource.getrusage(RUSAGE_SELF).ru_maxrss` (TensorFlow's own ~0.6 GB included on both
sides). "setup" is listing (and for kerascnn the header check of every file and the statistics sample); an epoch
is one pass over every image in batches of 64 (kerascnn yields uint8 pixels that its training model normalizes, as
`python -m kerascnn.train` does; the anchor yields float32 pixels, not normalized); "train"
is --train-steps steps of a small model (vgg, widths 16/32/64) fed by each pipeline. Each pipeline runs
--rounds times in alternating order and the table gives its best speeds and largest peak memory.

    .venv/bin/python bench/data.py --sizes 2000 8000 32000
    .venv/bin/python bench/data.py --sizes 2000 --train-steps 0     # input only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("a", "b", "c", "d")


def generate(folder: Path, count: int, size: int = 96, seed: int = 0) -> None:
    """count JPEGs of smooth random colour fields, count // 4 per class folder (skipped if already there)."""
    import numpy as np
    from PIL import Image

    if folder.is_dir() and sum(1 for _ in folder.glob("*/*.jpg")) == count:
        return
    rng = np.random.default_rng(seed)
    for index in range(count):
        label = index % len(CLASSES)
        (folder / CLASSES[label]).mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
        small[..., label % 3] = np.maximum(small[..., label % 3], 160)  # a class-dependent tint to learn
        Image.fromarray(small).resize((size, size), Image.BILINEAR).save(
            folder / CLASSES[label] / f"{index:06d}.jpg", quality=90
        )


def measure(pipeline: str, folder: str, train_steps: int, batch_size: int = 64) -> dict:
    """Runs in the subprocess: setup, two epochs of input, optionally a short training run."""
    import keras
    import tensorflow as tf

    started = time.perf_counter()
    if pipeline == "kerascnn":
        from kerascnn.data import stream

        data = stream.open_image_folder(folder, validation_fraction=0.0, test_fraction=0.0)
        # uint8 batches, normalized inside the model, as python -m kerascnn.train feeds them
        dataset = data.batches("train", batch_size, shuffle=True, seed=0, normalize=False)
        input_shape, classes, path = data.input_shape, len(data.labels), data.input_path
    else:
        dataset = keras.utils.image_dataset_from_directory(
            folder,
            image_size=(96, 96),
            batch_size=batch_size,
            shuffle=True,
            seed=0,
            label_mode="categorical",
            verbose=False,
        ).prefetch(tf.data.AUTOTUNE)
        input_shape, classes, path = (96, 96, 3), len(CLASSES), "stream"
    result = {"pipeline": pipeline, "path": path, "setup_s": round(time.perf_counter() - started, 2)}
    for epoch in (1, 2):
        started, images = time.perf_counter(), 0
        for x, _ in dataset:
            images += int(x.shape[0])
        seconds = time.perf_counter() - started
        result[f"epoch{epoch}_images_per_s"] = round(images / seconds)
    result["images"] = images
    result["input_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if train_steps:
        from kerascnn import models

        model = models.create("vgg", input_shape, classes, widths=(16, 32, 64), convs_per_block=1)
        if pipeline == "kerascnn":
            inputs = keras.Input(input_shape, dtype="uint8")
            model = keras.Model(inputs, model(data.normalization_layer()(inputs)))
        model.compile("adam", "categorical_crossentropy", jit_compile=False)
        model.fit(dataset.take(2), verbose=0)  # warm-up: tracing
        started = time.perf_counter()
        model.fit(dataset.repeat().take(train_steps), verbose=0)
        result["train_images_per_s"] = round(train_steps * batch_size / (time.perf_counter() - started))
        result["train_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    parser.add_argument(
        "--dir",
        default=str(Path(tempfile.gettempdir()) / "kerascnn-bench-data"),
        help="where the generated folders go (default: %(default)s)",
    )
    parser.add_argument("--train-steps", type=int, default=40, help="steps of the short training run (0: none)")
    parser.add_argument(
        "--rounds",
        type=int,
        choices=[1, 2],
        default=2,
        help="subprocess runs per pipeline, in alternating order; the table gives the best "
        "(peak memory: the largest) (default: %(default)s)",
    )
    parser.add_argument("--measure", nargs=2, metavar=("PIPELINE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, args.train_steps)))
        return

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"{os.cpu_count()} CPUs; batch 64; KERAS_BACKEND={os.environ.get('KERAS_BACKEND', 'tensorflow')}")
    print(
        "| images | pipeline | input path | setup s | epoch 1 img/s | epoch 2 img/s | input peak MB | "
        "train img/s | train peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for count in args.sizes:
        folder = Path(args.dir) / f"n{count}"
        generate(folder, count)
        runs = {"kerascnn": [], "keras": []}
        for order in [("kerascnn", "keras"), ("keras", "kerascnn")][: args.rounds]:
            for pipeline in order:
                output = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--measure",
                        pipeline,
                        str(folder),
                        "--train-steps",
                        str(args.train_steps),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                runs[pipeline].append(json.loads(output.strip().splitlines()[-1]))
        for pipeline, results in runs.items():  # the best of the rounds: the machine may be shared
            r = {
                key: (min if key == "setup_s" else max)(x[key] for x in results)
                if isinstance(value, (int, float))
                else value
                for key, value in results[0].items()
            }
            name = "kerascnn.data.stream" if pipeline == "kerascnn" else "keras image_dataset_from_directory"
            print(
                f"| {count:,} | {name} | {r['path']} | {r['setup_s']} | {r['epoch1_images_per_s']:,} | "
                f"{r['epoch2_images_per_s']:,} | {r['input_peak_mb']:,} | {r.get('train_images_per_s', '-')} | "
                f"{r.get('train_peak_mb', '-')} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
