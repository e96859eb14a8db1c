"""Train-step time of a small CNN built from kerascnn layers vs the same network from Keras built-ins.

Both run side by side in one process on the TensorFlow backend (CPU). Each timed pair is one train step
(`train_on_batch`) of each model, back to back, alternating which goes first, so both see the same load
on a shared machine. Prints the median seconds per step of each, and the median and interquartile range
of the per-pair ratios kerascnn / keras: the ratio to read, since single steps vary with the load.

    .venv/bin/python bench/layers.py [--steps 150] [--jit off|on|both] [--batch-size 128]
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


def step_seconds(model, x, y):
    """Wall time of one train step (forward, backward, optimizer update) on the batch (x, y)."""
    start = time.perf_counter()
    model.train_on_batch(x, y)
    return time.perf_counter() - start


def quartiles(values):
    """(first quartile, median, third quartile) of `values`."""
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def paired_steps(models, batches, steps):
    """Times `steps` pairs of single train steps, the two models back to back, alternating which goes first.

    Returns:
        {model name: [seconds of step i]}; the two lists are paired by index.
    """
    times = {model.name: [] for model in models}
    for step in range(steps):
        x, y = batches[step % len(batches)]
        for model in models if step % 2 == 0 else models[::-1]:
            times[model.name].append(step_seconds(model, x, y))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="paired train steps per jit setting (default 150)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed train steps per model first (default 5)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    parser.add_argument(
        "--jit", choices=["off", "on", "both"], default="off", help="jit_compile setting(s) to time (default off)"
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    batches = [
        (rng.random((args.batch_size, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, args.batch_size))
        for _ in range(4)
    ]
    rows = []
    for jit in {"off": [False], "on": [True], "both": [False, True]}[args.jit]:
        models = []
        for build in (edge_net_kerascnn, edge_net_keras):
            keras.utils.set_random_seed(0)
            model = build()
            model.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit)
            for step in range(args.warmup):
                model.train_on_batch(*batches[step % len(batches)])
            models.append(model)
        assert models[0].count_params() == models[1].count_params()
        times = paired_steps(models, batches, args.steps)
        ours, theirs = (statistics.median(times[n]) for n in ("kerascnn", "keras"))
        ratios = [a / b for a, b in zip(times["kerascnn"], times["keras"])]
        rows.append((jit, ours, theirs, *quartiles(ratios)))

    print(
        f"\nedge net, {models[0].count_params():,} parameters, batch {args.batch_size}, {args.steps} paired "
        f"train steps (alternating which model goes first), backend {keras.backend.backend()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        "| jit_compile | kerascnn s/step (median) | keras s/step (median) | ratio kerascnn / keras "
        "(median of paired steps) | ratio interquartile range |"
    )
    print("|---|---|---|---|---|")
    for jit, ours, theirs, q1, ratio, q3 in rows:
        print(f"| {'on (XLA)' if jit else 'off'} | {ours:.4f} | {theirs:.4f} | {ratio:.3f} | {q1:.3f}-{q3:.3f} |")
    if len(rows) == 2:
        print(
            f"\nkeras built-ins, XLA on / off: {rows[1][2] / rows[0][2]:.1f}x the time per step "
            f"(kerascnn: {rows[1][1] / rows[0][1]:.1f}x)"
        )


if __name__ == "__main__":
    main()
