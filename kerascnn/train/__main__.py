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
import os
import sys
from pathlib import Path

from kerascnn import cli, rundir, settings
from kerascnn.rundir import Run
from kerascnn.train.config import GROUPS, LAUNCH_ONLY, TrainConfig, check_types, read_config_file, resolve

# exit code of a run stopped by Ctrl-C: 128 + SIGINT, as the shell reports it
INTERRUPTED = 130


def parser() -> argparse.ArgumentParser:
    """The CLI's flags, one per TrainConfig field (its `setting` declares the flag, help and group). Every default
    is None, meaning "not given": only given flags override the config file, the preset and TrainConfig's defaults
    (which each help text shows)."""
    p = argparse.ArgumentParser(
        prog="python -m kerascnn.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--config", help="YAML or JSON file of options, keys as the flags' names with _ for - (flags override it)"
    )
    settings.add_arguments(p, TrainConfig, GROUPS, defaults=False)
    cli.add_verbose_flag(p)
    return p


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
    for key in LAUNCH_ONLY:
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
