r"""python -m kerascnn.train: train a kerascnn model on an image dataset.

Examples:
    python -m kerascnn.train --preset quick
    python -m kerascnn.train --model resnet --epochs 30 --out runs/resnet
    python -m kerascnn.train --data-dir ~/my_photos --model mobilenet --epochs 20
    python -m kerascnn.train --out runs/resnet --resume  # continue a killed run with its own settings
    python -m kerascnn.train --out runs/resnet --resume --epochs 40  # ... and train it longer
    python -m kerascnn.train --data-dir ~/photos --model mobilenetv2 --weights imagenet --image-size 96 96 \
        --model-options '{"alpha": 0.35}' --epochs 10 --freeze-epochs 3  # fine-tune ImageNet's MobileNetV2
    python -m kerascnn.train --data-dir ~/photos --init-from runs/quick  # fine-tune a kerascnn run
Watch runs with: tensorboard --logdir runs

The defaults shown are TrainConfig's: a --preset or --config file sets its own, and flags override both.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from kerascnn import cli, rundir
from kerascnn.rundir import Run
from kerascnn.train.config import (
    KEEPS,
    LR_DECAYS,
    MIN_CHOOSING_VALIDATION,
    PRESETS,
    RESUME_MAY_CHANGE,
    TrainConfig,
    check_types,
    flag,
    read_config_file,
    resolve,
)

# exit code of a run stopped by Ctrl-C: 128 + SIGINT, as the shell reports it
INTERRUPTED = 130


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _default(name: str) -> str:
    """ " (default: X)" from TrainConfig, for a flag's help."""
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    if isinstance(value, float):
        value = f"{value:.4g}"
    return f" (default: {value})"


def parser() -> argparse.ArgumentParser:
    """The CLI's flags. Every default is None, meaning "not given": only given flags override the config
    file, the preset and TrainConfig's defaults (which each help text shows)."""
    p = argparse.ArgumentParser(
        prog="python -m kerascnn.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--config", help="YAML or JSON file of options, keys as the flags' names with _ for - (flags override it)"
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named schedule (README lists them; default: none)")
    g = p.add_argument_group("model")
    g.add_argument("--model", help="registered model name, one of kerascnn.models.names()" + _default("model"))
    g.add_argument(
        "--model-options",
        type=json.loads,
        dest="model_options",
        metavar="JSON",
        help="JSON object of builder options, e.g. '{\"width\": 48}'" + _default("model_options"),
    )
    g = p.add_argument_group("fine-tuning", "start from trained weights: head only, then every layer")
    g.add_argument(
        "--init-from",
        dest="init_from",
        metavar="PATH",
        help="a kerascnn run directory (its best.keras, model and normalization) or .keras model; the head is "
        "new unless the classes match (default: none, random weights)",
    )
    g.add_argument(
        "--weights",
        metavar="imagenet|PATH",
        help="MobileNetV2 weights for --model mobilenetv2: 'imagenet' (Keras's download and cache) or a "
        ".h5/.weights.h5/.keras file, inputs (x-128)/127.5; or torchvision's state dict .pth (scripts/setup-weights "
        "installs the ImageNet one), inputs torchvision's per-channel mean/std (default: none)",
    )
    g.add_argument(
        "--freeze-epochs",
        type=int,
        dest="freeze_epochs",
        help="first epochs that train only the head, the backbone and its batch norms frozen"
        + _default("freeze_epochs"),
    )
    g.add_argument(
        "--finetune-lr",
        type=float,
        dest="finetune_lr",
        help="peak learning rate of the later epochs, all layers (batch norms stay frozen; default: --lr / 10)",
    )
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="tfds dataset name" + _default("dataset"))
    g.add_argument(
        "--data-dir",
        dest="data_dir",
        help="folder with one sub-folder of images per class, instead of --dataset (default: none)",
    )
    g.add_argument(
        "--test-dir",
        dest="test_dir",
        help="folder with the same class sub-folders, the test split of --data-dir (default: a seeded "
        "--test-fraction of --data-dir, held out and never used to pick the best epoch)",
    )
    g.add_argument(
        "--test-fraction",
        type=float,
        dest="test_fraction",
        help="seeded share of --data-dir held out as the test split, in [0, 0.5]" + _default("test_fraction"),
    )
    g.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        dest="image_size",
        metavar=("HEIGHT", "WIDTH"),
        help="resize every image to this size, upright by its EXIF orientation, with an antialiased bilinear filter "
        "(default: the dataset's own size, or a folder's first image's)",
    )
    g.add_argument(
        "--color",
        choices=["grayscale", "rgb"],
        dest="color_mode",
        help="an image folder's colour: grayscale (1 channel) or rgb (3), converting the images that differ as "
        "Pillow does, e.g. to fine-tune a run of the other kind (default: grayscale only if every image is)",
    )
    g.add_argument(
        "--skip-bad-images",
        action="store_const",
        const=True,
        dest="skip_bad_images",
        help="leave out image files that cannot be decoded and report how many; every file is then decoded "
        "once before training (default: stop with their names)",
    )
    g.add_argument(
        "--input",
        choices=["auto", "memory", "stream"],
        dest="input_pipeline",
        help="memory: decode everything once; stream: tf.data, decoded every epoch, memory flat in the "
        "number of images; auto: memory when the training pixels fit in 128 MiB" + _default("input_pipeline"),
    )
    g.add_argument(
        "--validation-fraction",
        type=float,
        dest="validation_fraction",
        help="seeded share of the training images held out for validation, in [0, 0.5]"
        + _default("validation_fraction"),
    )
    g.add_argument(
        "--limit",
        type=int,
        help="use only a seeded, class-balanced N images of each split (smoke tests; accuracy is then "
        "meaningless; default: all)",
    )
    g.add_argument(
        "--augment-padding",
        type=int,
        dest="augment_padding",
        help="random-crop padding in pixels, 0 turns cropping off" + _default("augment_padding"),
    )
    g.add_argument(
        "--augment-flip",
        type=_bool,
        dest="augment_flip",
        metavar="{true,false}",
        help="random horizontal flips (default: on, off for digit and text datasets)",
    )
    g.add_argument(
        "--augment-erase",
        type=float,
        dest="augment_erase",
        metavar="P",
        help="random erasing: probability that an image gets a random rectangle (2-40 %% of its area) set to "
        "the mean colour, seeded per epoch like the crops" + _default("augment_erase"),
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="epochs to train" + _default("epochs"))
    g.add_argument("--batch-size", type=int, dest="batch_size", help="images per step" + _default("batch_size"))
    g.add_argument(
        "--optimizer", choices=["adamw", "sgd"], help="AdamW, or SGD with Nesterov momentum 0.9" + _default("optimizer")
    )
    g.add_argument(
        "--lr", type=float, help="peak learning rate (reached after the warm-up, then --lr-decay to 0)" + _default("lr")
    )
    g.add_argument(
        "--warmup-epochs",
        type=float,
        dest="warmup_epochs",
        help="epochs of linear warm-up from 0 to --lr" + _default("warmup_epochs"),
    )
    g.add_argument(
        "--lr-decay",
        choices=LR_DECAYS,
        dest="lr_decay",
        help="after the warm-up the learning rate falls from --lr to 0 at the last step along a half cosine or a "
        "straight line" + _default("lr_decay"),
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        dest="weight_decay",
        help="decoupled weight decay, not on biases and batch norm" + _default("weight_decay"),
    )
    g.add_argument(
        "--label-smoothing",
        type=float,
        dest="label_smoothing",
        help="label smoothing of the cross-entropy, in [0, 1)" + _default("label_smoothing"),
    )
    g.add_argument(
        "--ema",
        type=float,
        metavar="MOMENTUM",
        help="keep a moving average of the weights (momentum per step, e.g. 0.999; Keras's use_ema): it is "
        "validated, saved as best/last.keras and tested (with batch-norm statistics of its own, from 2,048 training "
        "images), training goes on from the raw weights; 0 is off" + _default("ema"),
    )
    g.add_argument(
        "--mixed-precision",
        action="store_const",
        const=True,
        dest="mixed_precision",
        help="bfloat16 compute, float32 weights (default: off)",
    )
    g.add_argument(
        "--steps-per-execution",
        type=int,
        dest="steps_per_execution",
        metavar="N",
        help="train steps per call into the compiled step (Keras's steps_per_execution): fewer trips to the "
        "host on a GPU; the batches and the result are the same" + _default("steps_per_execution"),
    )
    g.add_argument(
        "--jit-compile",
        choices=["auto", "on", "off"],
        dest="jit_compile",
        help="XLA; auto: Keras's rule, on for JAX and for TensorFlow on a GPU where every layer supports it, "
        "off for TensorFlow on a CPU, under --distribute on TensorFlow, and on PyTorch" + _default("jit_compile"),
    )
    g.add_argument(
        "--seed",
        type=int,
        help="seed of the validation split, weights, batch order and augmentation" + _default("seed"),
    )
    g.add_argument(
        "--early-stopping",
        type=int,
        dest="early_stopping",
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation accuracy, 0 is off" + _default("early_stopping"),
    )
    g.add_argument(
        "--keep",
        choices=KEEPS,
        help="the run's model (best.keras: tested, exported, read by --init-from): the epoch with the best validation "
        "accuracy, or the last epoch (where the learning rate reaches 0); the last network is tested either way "
        f"(default: best, or last below {MIN_CHOOSING_VALIDATION} validation images, too few to choose by)",
    )
    g.add_argument(
        "--distribute",
        action="store_const",
        const=True,
        help="data-parallel over all local devices (MirroredStrategy / keras DataParallel; default: off)",
    )
    g.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="several processes or machines (JAX backend): the address of process 0, reachable from "
        "all (default: $KERAS_DISTRIBUTION_JOB_ADDRESSES)",
    )
    g.add_argument(
        "--num-processes",
        type=int,
        dest="num_processes",
        help="number of processes taking part (default: $KERAS_DISTRIBUTION_NUM_PROCESSES, else 1)",
    )
    g.add_argument(
        "--startup-timeout",
        type=float,
        dest="startup_timeout",
        metavar="SECONDS",
        help="several processes: how long each waits for all the others to start before it stops, naming the "
        "missing ones" + _default("startup_timeout"),
    )
    g.add_argument(
        "--process-id",
        type=int,
        dest="process_id",
        help="this process's index, 0 is the chief that writes the run directory "
        "(default: $KERAS_DISTRIBUTION_PROCESS_ID, else 0)",
    )
    g = p.add_argument_group("output")
    g.add_argument("--out", help="run directory (default: runs/<preset or model>)")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last epoch, with the settings in its config.yaml "
        f"(flags change only what they name: {resume_flags()}; several "
        "processes: relaunch all of them, each with its own --coordinator/--process-id, not taken from config.yaml)",
    )
    g.add_argument(
        "--overwrite",
        action="store_const",
        const=True,
        help="train into an --out that is not empty: an earlier run there is replaced (its models, checkpoints, "
        "logs and metrics deleted), other files are kept (default: refuse a folder that is not empty)",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        dest="checkpoint_every",
        metavar="N",
        help="save the resumable checkpoint every N epochs (a kill loses at most N; the last epoch and "
        "best.keras are always saved)" + _default("checkpoint_every"),
    )
    g.add_argument(
        "--tta-flip",
        action="store_const",
        const=True,
        dest="tta_flip",
        help="also report the test accuracy with horizontal-flip test-time augmentation (mean of the outputs "
        "for each image and its mirror), beside the single-view figure; exports stay single-view (default: off)",
    )
    g.add_argument(
        "--compile-cache",
        dest="compile_cache",
        metavar="DIR",
        help="JAX backend: persistent compilation cache folder, so a second run of the same model starts "
        "without recompiling; 'off' turns it off (default: $JAX_COMPILATION_CACHE_DIR, else "
        "~/.cache/kerascnn/jax)",
    )
    g.add_argument(
        "--no-tensorboard",
        action="store_const",
        const=False,
        dest="tensorboard",
        help="write no TensorBoard logs (default: write them to <out>/tb)",
    )
    cli.add_verbose_flag(p)
    return p


PER_LAUNCH = ("coordinator", "process_id", "startup_timeout")


def resume_flags() -> str:
    """The flags a --resume may change (`RESUME_MAY_CHANGE`, less those that name the run or the launch), for its
    help."""
    names = sorted(RESUME_MAY_CHANGE - {"out", "preset", "resume", "overwrite", *PER_LAUNCH})
    return ", ".join(flag(name) for name in names)


def interrupted(run_dir: Path | None) -> int:
    """Ctrl-C: one line on stderr saying what the run kept and how to continue it, instead of a traceback; returns
    `INTERRUPTED`."""
    try:
        state = Run(run_dir).state()
        kept = f"its checkpoint of epoch {state['epoch'] + 1} is kept in {run_dir / rundir.CHECKPOINT_DIR}"
    except (TypeError, OSError, ValueError, KeyError):  # no run directory yet, or no epoch saved
        state = None
    if state is None:
        print(
            "Interrupted before the first checkpoint: there is nothing to resume; start the run again.", file=sys.stderr
        )
    else:
        print(f"Interrupted: {kept}. Continue with: python -m kerascnn.train --out {run_dir} --resume", file=sys.stderr)
    return INTERRUPTED


def resume_values(values: dict) -> dict:
    """`values` over the settings saved in the run's config.yaml: `--out runs/x --resume` alone continues the
    run as it was started, and flags change only what they name (the trainer refuses changes that would make
    the checkpoint meaningless). `--coordinator` and `--process-id` are never taken from config.yaml (the
    chief's): each process of a resumed multi-process run gives its own, by flag or environment.

    Raises:
        RunDirError: the run directory holds no run to resume (`Run.check_resumable`).
        ValueError: its config.yaml cannot be read or holds a value of the wrong type.
    """
    run = Run(resolve(values).run_dir)
    run.check_resumable()
    saved = run.settings()
    check_types(saved, f"Config file {run.path(rundir.CONFIG)}")
    # where to meet and which process this is belong to this launch, not to the run: process 1 resuming with
    # its id in KERAS_DISTRIBUTION_PROCESS_ID must not become the chief that config.yaml recorded
    for key in ("resume", *PER_LAUNCH):
        saved.pop(key, None)
    return {**saved, "out": str(run.folder), **values}


def main(argv=None) -> int:
    args = {key: value for key, value in vars(parser().parse_args(argv)).items() if value is not None}
    resume = args.pop("resume")
    run_dir = None
    args.pop("verbose", None)  # read by cli.hide_library_logs
    try:
        values = read_config_file(args.pop("config")) if "config" in args else {}
        values.update(args)
        if resume:
            values = resume_values(values)
        from kerascnn.train import finetune

        values = finetune.source_model_values(values)
        config = resolve(values)
        config.resume = resume
        run_dir = config.run_dir
        if not resume:  # bad paths: exit 2, nothing written (a resumed run needs its source only if it never started)
            finetune.weight_source(config.init_from, config.weights, config.model)
        # imports Keras: after the arguments are checked, with TensorFlow's C++ INFO lines off (users may set it)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        from kerascnn.train.trainer import train

        metrics = train(config)
    except cli.USER_ERRORS as error:  # flags, config file, --out, data, cluster, a diverged run: exit 2
        return cli.user_error(error)
    except KeyboardInterrupt:
        return interrupted(run_dir)
    if "test_accuracy" in metrics:
        if "test_accuracy_best" in metrics:
            validation = metrics.get("best_val_accuracy")
            # the size of the split the accuracy comes from: 8 images move it by 12.5 points each
            on = f" on {metrics['validation_images']:,} images" if "validation_images" in metrics else ""
            if metrics.get("kept") == "last":
                detail = (
                    "the last epoch, too few validation images to choose the best (--keep best chooses anyway)"
                    if metrics.get("keep_why")
                    else "the last epoch, kept by --keep last"
                ) + (f"; validation accuracy {100 * validation:.2f} %{on}" if validation is not None else "")
            else:
                chosen = (
                    f"best epoch {metrics['best_epoch']}, chosen by validation accuracy {100 * validation:.2f} %{on}; "
                    if validation is not None
                    else "best epoch; "
                )
                detail = f"{chosen}last epoch {100 * metrics['test_accuracy_last']:.2f} %"
        else:
            detail = "last epoch"
        print(f"\nTest accuracy: {100 * metrics['test_accuracy']:.2f} % on {metrics['test_split']} ({detail})")
        if "test_accuracy_tta" in metrics:
            print(f"Test accuracy with flip TTA (--tta-flip): {100 * metrics['test_accuracy_tta']:.2f} %")
    return 0


if __name__ == "__main__":
    cli.hide_library_logs(sys.argv[1:])
    sys.exit(main())
