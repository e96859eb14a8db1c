"""Epoch time and images per second of kerascnn models vs the same architecture from Keras built-ins.

Both run side by side in one process, in interleaved rounds, on the backend given by KERAS_BACKEND
(TensorFlow by default), with jit_compile off and on. The built-ins twin comes from
`kerascnn.optimize.standard.to_keras_builtins`, so it has the same layers and weights. Fashion-MNIST-sized
random data (28x28x1, 10 classes); the time per epoch is extrapolated to 60,000 images.

    .venv/bin/python bench/train.py --models mobilenet vgg --jit both
    KERAS_BACKEND=jax .venv/bin/python bench/train.py --models mobilenet --jit on
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# kerascnn before Keras, which loads TensorFlow: kerascnn's TF_ENABLE_ONEDNN_OPTS default must come first
import kerascnn  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerascnn import models  # noqa: E402
from kerascnn.optimize.standard import to_keras_builtins  # noqa: E402

EPOCH_IMAGES = 60_000


def timed_fit(model, x, y, batch_size):
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilenet"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="train steps per timed round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--jit", choices=["off", "on", "both"], default="both")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.steps * args.batch_size, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    print(
        f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs, batch {args.batch_size}, "
        f"{args.rounds} interleaved rounds of {args.steps} steps; epoch = {EPOCH_IMAGES:,} images"
    )
    print("| model | params | jit_compile | kerascnn s/epoch | keras s/epoch | kerascnn img/s | ratio (median) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        for jit in {"off": [False], "on": [True], "both": [False, True]}[args.jit]:
            ours = models.create(name)
            pair = {"kerascnn": ours, "keras": to_keras_builtins(ours)}
            for model in pair.values():
                model.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit)
                model.fit(x[: 2 * args.batch_size], y[: 2 * args.batch_size], batch_size=args.batch_size, verbose=0)
            times = {key: [] for key in pair}
            for round_index in range(args.rounds):
                for key in list(pair) if round_index % 2 == 0 else list(pair)[::-1]:
                    times[key].append(timed_fit(pair[key], x, y, args.batch_size))
            per_image = {key: statistics.median(t) / len(x) for key, t in times.items()}
            ratio = statistics.median(a / b for a, b in zip(times["kerascnn"], times["keras"]))
            print(
                f"| {name} | {ours.count_params():,} | {jit} | {per_image['kerascnn'] * EPOCH_IMAGES:.1f} | "
                f"{per_image['keras'] * EPOCH_IMAGES:.1f} | {1 / per_image['kerascnn']:.0f} | {ratio:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
