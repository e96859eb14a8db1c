"""The quick preset's train step: kerascnn (TensorFlow backend) beside the same network in PyTorch, in one process.

kerascnn's side is the training model `python -m kerascnn.train --preset quick` builds (the preset's vgg, random
flips, AdamW with the cosine schedule, cross-entropy), stepped with `train_on_batch`. PyTorch's is the same network
written with torch.nn (3x3 conv without bias, batch norm with the same momentum and epsilon, ReLU, max pooling with
"same" output sizes, dropout 0.2, a 1x1 conv head, global average, cross-entropy with the preset's label
smoothing), channels_last, eager, AdamW with the same learning rate and decay exclusions, the same random flips.

Each round times `--steps` train steps of each model back to back on the same batches, rotating which goes first,
so all see the same load on a shared machine. Prints each model's median seconds per step and, for every pair, the
median and interquartile range of the per-round ratios: the figure to read, since rounds vary with the load.
`--ab` adds kerascnn with Keras's BatchNormalization layer in ConvBNAct's training path (the default there is
TensorFlow's fused kernel on a GPU or with oneDNN, Keras's layer otherwise), for the ratio of the two measured in the
same rounds.

    .venv/bin/python bench/peer.py [--rounds 15] [--steps 12] [--batch-size 128] [--ab] [--widths 32 64 128]
"""

import argparse
import contextlib
import os
import statistics
import time
import types

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# kerascnn before Keras, which loads TensorFlow: kerascnn's TF_ENABLE_ONEDNN_OPTS default must come first
import kerascnn  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerascnn.layers  # noqa: E402
from kerascnn.train import resolve  # noqa: E402
from kerascnn.train.building import build_model  # noqa: E402


class KerasBNConvBNAct(kerascnn.layers.ConvBNAct):
    """ConvBNAct with Keras's BatchNormalization layer in training, never TensorFlow's fused kernel."""

    fused_batch_norm = False


@contextlib.contextmanager
def conv_bn_act_class(cls):
    """Model builders create `cls` wherever they ask for kerascnn.layers.ConvBNAct."""
    original = kerascnn.layers.ConvBNAct
    kerascnn.layers.ConvBNAct = cls
    try:
        yield
    finally:
        kerascnn.layers.ConvBNAct = original


def kerascnn_model(batch_size, steps_per_epoch=430, block=None, widths=None):
    """The quick preset's compiled training model, as the trainer builds it (`widths`: the vgg's, else the preset's)."""
    config = resolve(dict(preset="quick", batch_size=batch_size))
    if widths:
        config.model_options = {**config.model_options, "widths": tuple(widths)}
    data = types.SimpleNamespace(dataset=types.SimpleNamespace(input_shape=(28, 28, 1)), num_classes=10, stream=None)
    keras.utils.set_random_seed(0)
    with conv_bn_act_class(block) if block else contextlib.nullcontext():
        train_model, _ = build_model(config, data, steps_per_epoch)
    return train_model, config


class TorchStep:
    """The quick VGG in PyTorch, channels_last, eager; `step(x, y)` is one train step on NumPy arrays."""

    def __init__(self, config, num_classes=10):
        import torch
        from torch import nn

        self.torch = torch
        torch.manual_seed(0)
        layers, channels = [], 1
        for width in config.model_options["widths"]:
            for _ in range(2):
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width, eps=1e-3, momentum=0.01),  # torch's momentum is 1 - Keras's
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2, ceil_mode=True))  # "same": ceil(n / 2) outputs
        layers += [nn.Dropout(0.2), nn.Conv2d(channels, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.model = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        decay = [p for n, p in self.model.named_parameters() if p.ndim == 4]
        rest = [p for n, p in self.model.named_parameters() if p.ndim != 4]
        self.optimizer = torch.optim.AdamW(
            [dict(params=decay, weight_decay=config.weight_decay), dict(params=rest, weight_decay=0.0)], lr=config.lr
        )
        self.loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)  # the preset's, as kerascnn's loss
        self.name = "pytorch"

    def step(self, x, y):
        torch = self.torch
        images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        mirror = torch.rand(images.shape[0], 1, 1, 1) < 0.5
        images = torch.where(mirror, images.flip(3), images)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(images), torch.from_numpy(y.argmax(1)))
        loss.backward()
        self.optimizer.step()


class KerasStep:
    def __init__(self, name, model):
        self.name, self.model = name, model

    def step(self, x, y):
        self.model.train_on_batch(x, y)


def quartiles(values):
    """(first quartile, median, third quartile) of `values`."""
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def timed_rounds(steppers, batches, rounds, steps):
    """Times `rounds` rounds; in round r every stepper runs `steps` steps on the same batches, the order rotated by r.

    Returns:
        {name: [seconds per step in round r]}; the lists are paired by round.
    """
    times = {s.name: [] for s in steppers}
    for r in range(rounds):
        shift = r % len(steppers)
        for stepper in steppers[shift:] + steppers[:shift]:
            start = time.perf_counter()
            for i in range(steps):
                stepper.step(*batches[i % len(batches)])
            times[stepper.name].append((time.perf_counter() - start) / steps)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--steps", type=int, default=12, help="train steps per model per round (default 12)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per model first (default 10)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    parser.add_argument("--ab", action="store_true", help="also time kerascnn with Keras's batch-norm layer")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out (with --ab: the A/B alone)")
    parser.add_argument("--widths", type=int, nargs=3, help="the vgg's three widths instead of the preset's")
    args = parser.parse_args()

    import tensorflow as tf

    rng = np.random.default_rng(0)
    eye = np.eye(10, dtype=np.float32)
    batches = [
        (rng.standard_normal((args.batch_size, 28, 28, 1), dtype=np.float32), eye[rng.integers(0, 10, args.batch_size)])
        for _ in range(4)
    ]
    model, config = kerascnn_model(args.batch_size, widths=args.widths)
    steppers = [KerasStep("kerascnn", model)]
    if args.ab:
        steppers.append(
            KerasStep(
                "kerascnn-keras-bn", kerascnn_model(args.batch_size, block=KerasBNConvBNAct, widths=args.widths)[0]
            )
        )
    if not args.no_torch:
        steppers.append(TorchStep(config))
    for stepper in steppers:
        for i in range(args.warmup):
            stepper.step(*batches[i % len(batches)])
    times = timed_rounds(steppers, batches, args.rounds, args.steps)

    threads = f"TensorFlow intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}"
    if not args.no_torch:
        import torch

        threads += f", torch {torch.__version__} threads {torch.get_num_threads()}"
    print(
        f"\nquick vgg {config.model_options['widths']}, {model.count_params():,} parameters, batch {args.batch_size}, "
        f"{args.rounds} rounds of {args.steps} steps per model (order rotated each round); "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {threads}"
    )
    print("| model | s/step (median of rounds) | rounds' interquartile range |")
    print("|---|---|---|")
    for name, values in times.items():
        q1, q2, q3 = quartiles(values)
        print(f"| {name} | {q2:.4f} | {q1:.4f}-{q3:.4f} |")
    print("\n| ratio | median of paired rounds | interquartile range |")
    print("|---|---|---|")
    names = list(times)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            q1, q2, q3 = quartiles([x / y for x, y in zip(times[a], times[b])])
            print(f"| {a} / {b} | {q2:.3f} | {q1:.3f}-{q3:.3f} |")


if __name__ == "__main__":
    main()
