"""What a pretrained backbone is worth with few images: fine-tuning vs training from scratch, offline.

Pretrains a network on Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover, dress, coat: all their training
images), then, for 10, 20 and 50 training images per class of classes 5-9 (sandal, shirt, sneaker, bag, ankle
boot), trains the same network on those images two ways for the same number of steps:

- fine-tuned: the pretrained backbone with a new GAP head, `kerascnn.train.finetune`'s two phases (head only
  with the backbone frozen for the first quarter of the steps, then every convolution at a 10x lower rate);
- from scratch: random weights, every layer trained at the full rate; shown twice, as trained and with its batch
  norms' running statistics recalibrated on its training images (a short run leaves them far from the data's).

and prints the test accuracy on the 5,000 test images of classes 5-9, averaged over seeds (each seed draws
other images). The inputs of both are normalized with the pretraining images' mean and std.

    .venv/bin/python bench/transfer.py                       # mobilenet, 28x28x1
    .venv/bin/python bench/transfer.py --shots 10 --seeds 1 --pretrain-epochs 1
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# kerascnn before Keras, which loads TensorFlow: kerascnn's TF_ENABLE_ONEDNN_OPTS default must come first
import kerascnn  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerascnn import models  # noqa: E402
from kerascnn.data import load_dataset  # noqa: E402
from kerascnn.train import finetune  # noqa: E402

PRETRAIN_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)


def classes_subset(x, y, classes):
    """The images of `classes`, labels renumbered 0..len(classes)-1."""
    keep = np.isin(y, classes)
    return x[keep], np.searchsorted(np.asarray(classes), y[keep])


def few_shot(x, y, shots: int, seed: int):
    """`shots` seeded random images of each class."""
    rng = np.random.default_rng(seed)
    picks = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in np.unique(y)])
    return x[picks], y[picks]


def _compile(network, lr: float, steps: int, warmup: int = 0):
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else lr, max(steps - warmup, 1), warmup_target=lr if warmup else None, warmup_steps=warmup
    )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.05)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    network.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"], jit_compile=False)


def train_steps(network, x, y, steps: int, batch_size: int, seed: int) -> None:
    """`steps` steps of `train_on_batch` over seeded shuffled epochs of (x, y)."""
    rng = np.random.default_rng(seed)
    batch_size = min(batch_size, len(y))
    order = np.array([], dtype=int)
    for _ in range(steps):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(len(y))])
        batch, order = order[:batch_size], order[batch_size:]
        network.train_on_batch(x[batch], y[batch])


def accuracy(network, x, y) -> float:
    probabilities = network.predict(x, batch_size=500, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == y))


def pretrain(
    model: str, options: dict, x, y, epochs: int, batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
    recalibrate: bool = False,
):  # fmt: skip
    """The network trained on (x, y) for `epochs` epochs: AdamW, cosine decay after a 1/10 warm-up; with
    `recalibrate`, its BN statistics then set to the exact ones of 2,048 of its images (a short pretraining leaves
    the running averages off, and fine-tuning keeps the backbone's batch norms frozen)."""
    keras.utils.set_random_seed(seed)
    network = models.create(model, x.shape[1:], int(y.max()) + 1, **options)
    steps = epochs * math.ceil(len(y) / batch_size)
    _compile(network, lr, steps, warmup=steps // 10)
    train_steps(network, x, y, steps, batch_size, seed)
    if recalibrate:
        recalibrate_batch_norms(network, x[:2048])
    return network


def fine_tuned(source, model, options, x, y, steps, batch_size, lr, finetune_lr, seed):
    """A new network of `model` for y's classes from `source`'s weights (new head), trained in two phases."""
    keras.utils.set_random_seed(seed)
    network = models.create(model, x.shape[1:], int(y.max()) + 1, **options)
    finetune.transfer_weights(source, network)
    head_steps = steps // 4
    finetune.set_phase(network, head_only=True)
    _compile(network, lr, head_steps)
    train_steps(network, x, y, head_steps, batch_size, seed)
    finetune.set_phase(network, head_only=False)
    _compile(network, finetune_lr, steps - head_steps)
    train_steps(network, x, y, steps - head_steps, batch_size, seed + 1)
    return network


def from_scratch(model, options, x, y, steps, batch_size, lr, seed):
    keras.utils.set_random_seed(seed)
    network = models.create(model, x.shape[1:], int(y.max()) + 1, **options)
    _compile(network, lr, steps, warmup=steps // 10)
    train_steps(network, x, y, steps, batch_size, seed)
    return network


def recalibrate_batch_norms(network, x) -> None:
    """Sets every ConvBNAct's running mean and variance to the exact statistics of its convolution's outputs on
    `x`, layer after layer: a short training from scratch leaves the running averages (momentum 0.99) far from
    them (after 100 steps 0.99^100 = 37 % of the initial 0 and 1 remain), which alone can ruin its test accuracy."""
    from kerascnn.layers import ConvBNAct

    for layer in network.layers:
        if isinstance(layer, ConvBNAct):
            h = keras.ops.convert_to_numpy(layer.conv(keras.Model(network.input, layer.input)(x, training=False)))
            layer.bn.moving_mean.assign(h.mean(axis=(0, 1, 2)))
            layer.bn.moving_variance.assign(h.var(axis=(0, 1, 2)))


def compare(source, model, options, train, test, shots, steps, batch_size, lr, finetune_lr, seed):
    """(fine-tuned accuracy, from-scratch accuracy, from scratch with its BN statistics recalibrated on its
    training images) on `test` after `steps` steps on `shots` images per class."""
    x, y = few_shot(*train, shots, seed)
    tuned = fine_tuned(source, model, options, x, y, steps, batch_size, lr, finetune_lr, seed)
    scratch = from_scratch(model, options, x, y, steps, batch_size, lr, seed)
    scratch_accuracy = accuracy(scratch, *test)
    recalibrate_batch_norms(scratch, x)
    return accuracy(tuned, *test), scratch_accuracy, accuracy(scratch, *test)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet")
    parser.add_argument("--model-options", default="{}", help="JSON builder options (default: {})")
    parser.add_argument("--shots", type=int, nargs="+", default=[10, 20, 50], help="images per class")
    parser.add_argument("--seeds", type=int, default=2, help="draws of the few images, averaged (default: 3)")
    parser.add_argument("--pretrain-epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100, help="train steps of either method (default: 100)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="scratch and head-phase rate (default: 3e-3)")
    parser.add_argument("--finetune-lr", type=float, default=3e-4, help="phase-2 rate (default: 3e-4)")
    parser.add_argument(
        "--recalibrate-source",
        action="store_true",
        help="set the pretrained BN statistics to its images' (default: off)",
    )
    args = parser.parse_args()
    import json

    options = json.loads(args.model_options)
    started = time.perf_counter()
    dataset = load_dataset("fashion_mnist", validation_fraction=0.0)
    x_train, y_train = dataset.splits["train"]
    x_test, y_test = dataset.splits["test"]
    x_pre, y_pre = classes_subset(x_train, y_train, PRETRAIN_CLASSES)
    # one normalization for everything: the pretraining images' (as a fine-tuned run takes its source's)
    mean, std = np.float32(x_pre.mean()), np.float32(x_pre.std())

    def norm(x):
        return (x.astype(np.float32) - mean) / std

    source = pretrain(
        args.model, options, norm(x_pre), y_pre, args.pretrain_epochs, recalibrate=args.recalibrate_source
    )
    x_t, y_t = classes_subset(x_train, y_train, TARGET_CLASSES)
    x_tt, y_tt = classes_subset(x_test, y_test, TARGET_CLASSES)
    pre_test = classes_subset(x_test, y_test, PRETRAIN_CLASSES)
    print(
        f"pretrained {args.model} {options or ''} on classes 0-4 ({len(y_pre):,} images, {args.pretrain_epochs} "
        f"epochs): test accuracy {100 * accuracy(source, norm(pre_test[0]), pre_test[1]):.1f} % on classes 0-4 "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    print(f"\n{args.steps} steps, batch {args.batch_size}, mean of {args.seeds} seeds; test: {len(y_tt):,} images")
    print(
        "| images per class | fine-tuned | from scratch | scratch, BN recalibrated | difference to the better scratch |"
    )
    print("|---|---|---|---|---|")
    for shots in args.shots:
        results = [
            compare(
                source,
                args.model,
                options,
                (norm(x_t), y_t),
                (norm(x_tt), y_tt),
                shots,
                args.steps,
                args.batch_size,
                args.lr,
                args.finetune_lr,
                seed,
            )
            for seed in range(args.seeds)
        ]
        tuned, scratch, recalibrated = (100 * float(np.mean(r)) for r in zip(*results))
        difference = tuned - max(scratch, recalibrated)
        print(
            f"| {shots} | {tuned:.1f} % | {scratch:.1f} % | {recalibrated:.1f} % | {difference:+.1f} points |",
            flush=True,
        )
    print(f"\n{time.perf_counter() - started:.0f} s in all, backend {keras.backend.backend()}")


if __name__ == "__main__":
    main()
