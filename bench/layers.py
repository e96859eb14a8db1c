"""Train-step time of a small CNN built from kerascnn layers vs the same network from Keras built-ins.

Both run side by side in one process on the TensorFlow backend (CPU), in interleaved rounds, with
jit_compile off and on. Prints the median seconds per step and the ratio kerascnn / keras.

    .venv/bin/python bench/layers.py [--rounds 5] [--steps 8] [--batch-size 128]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerascnn import layers  # noqa: E402

# (filters, stride) of the depthwise-separable blocks of a small edge net for 28x28 greyscale images
BLOCKS = [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]


def edge_net_kerascnn(num_classes=10):
    inputs = keras.Input((28, 28, 1))
    h = layers.ConvBNAct(16, 3)(inputs)
    for filters, stride in BLOCKS:
        h = layers.ConvBNAct(h.shape[-1], 3, strides=stride, groups=h.shape[-1])(h)  # depthwise
        h = layers.ConvBNAct(filters, 1)(h)  # pointwise: channel mixing
    h = layers.MaxPool2D(2, padding="same")(h)
    return keras.Model(inputs, layers.GAPHead(num_classes)(h), name="kerascnn")


def edge_net_keras(num_classes=10):
    def conv_bn_relu(h, filters, kernel, stride=1, depthwise=False):
        if depthwise:
            h = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False)(h)
        else:
            h = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False)(h)
        return keras.layers.ReLU()(keras.layers.BatchNormalization()(h))

    inputs = keras.Input((28, 28, 1))
    h = conv_bn_relu(inputs, 16, 3)
    for filters, stride in BLOCKS:
        h = conv_bn_relu(h, None, 3, stride, depthwise=True)
        h = conv_bn_relu(h, filters, 1)
    h = keras.layers.MaxPooling2D(2, padding="same")(h)
    h = keras.layers.Conv2D(num_classes, 1)(h)
    outputs = keras.layers.Softmax()(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(inputs, outputs, name="keras")


def seconds_per_step(model, x, y, batch_size):
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - start) / (len(x) // batch_size)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="train steps per timed round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--jit", choices=["off", "on", "both"], default="both")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((args.steps * args.batch_size, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    rows = []
    for jit in {"off": [False], "on": [True], "both": [False, True]}[args.jit]:
        models = []
        for build in (edge_net_kerascnn, edge_net_keras):
            keras.utils.set_random_seed(0)
            model = build()
            model.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit)
            model.fit(x[: 2 * args.batch_size], y[: 2 * args.batch_size], batch_size=args.batch_size, verbose=0)
            models.append(model)
        assert models[0].count_params() == models[1].count_params()
        times = {m.name: [] for m in models}
        for round_index in range(args.rounds):
            for model in models if round_index % 2 == 0 else models[::-1]:  # alternate who goes first
                times[model.name].append(seconds_per_step(model, x, y, args.batch_size))
        ours, theirs = (statistics.median(times[n]) for n in ("kerascnn", "keras"))
        ratios = [a / b for a, b in zip(times["kerascnn"], times["keras"])]
        rows.append((jit, ours, theirs, statistics.median(ratios), min(ratios), max(ratios)))

    print(f"\nedge net, {models[0].count_params():,} parameters, batch {args.batch_size}, "
          f"{args.rounds} interleaved rounds of {args.steps} steps, backend {keras.backend.backend()}, "
          f"{os.cpu_count()} CPUs")
    print("| jit_compile | kerascnn s/step | keras s/step | ratio (median) | ratio range |")
    print("|---|---|---|---|---|")
    for jit, ours, theirs, ratio, low, high in rows:
        print(f"| {jit} | {ours:.3f} | {theirs:.3f} | {ratio:.3f} | {low:.3f}-{high:.3f} |")
    if len(rows) == 2:
        faster = "off" if rows[0][2] < rows[1][2] else "on"
        print(f"\nFaster setting here: jit_compile {faster} "
              f"(keras built-ins: XLA/no-XLA = {rows[1][2] / rows[0][2]:.2f}x)")


if __name__ == "__main__":
    main()
