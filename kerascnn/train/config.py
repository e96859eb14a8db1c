"""Training configuration: defaults, named presets, config files (YAML or JSON) and their merging."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import yaml

from kerascnn.train.rendezvous import DEFAULT_TIMEOUT

# --lr-decay's choices (kerascnn.train.schedules builds them; named here, where the CLI and the checks read them
# without importing Keras)
LR_DECAYS = ("cosine", "linear")
# --keep's choices: which epoch's network becomes the run's model (best.keras)
KEEPS = ("best", "last")
# the settings a --resume may change: any other change would make the checkpoint meaningless
RESUME_MAY_CHANGE = {
    "epochs",
    "early_stopping",
    "tensorboard",
    "out",
    "preset",
    "resume",
    "overwrite",
    "coordinator",
    "process_id",
    "startup_timeout",
    "checkpoint_every",
    "tta_flip",
    "compile_cache",
    "steps_per_execution",
}
# the folders a run reads, stored absolute: the run opens from any working directory (export, --resume)
DATA_FOLDERS = ("data_dir", "test_dir")
# without --keep, a validation split below this many images (one image: more than a point) keeps the last epoch
MIN_CHOOSING_VALIDATION = 100


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on; written as config.yaml into the run directory."""

    # model
    model: str = "mobilenet"
    model_options: dict = dataclasses.field(default_factory=dict)
    # fine-tuning (kerascnn.train.finetune): start from other weights, then head only, then all layers
    init_from: str | None = None  # a kerascnn run directory or .keras model
    weights: str | None = None  # "imagenet" or a keras.applications weights file (mobilenetv2)
    freeze_epochs: int = 2  # phase 1: head only, backbone frozen with its batch norms in inference mode
    finetune_lr: float | None = None  # phase 2's peak learning rate; default lr / 10
    # data
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    test_dir: str | None = None  # an image folder's test split; default: a held-out test_fraction of data_dir
    validation_fraction: float = 1 / 12
    test_fraction: float = 1 / 12  # of an image folder (or a tfds dataset without a test split)
    image_size: list | None = None  # [height, width]; default: the dataset's own size or the first image's
    skip_bad_images: bool = False
    color_mode: str | None = None  # an image folder's "grayscale" or "rgb" (converted); default: as the images are
    input_pipeline: str = "auto"  # "memory", "stream" (tf.data, decoded every epoch) or "auto" (memory if small)
    limit: int | None = None
    augment_padding: int = 2
    augment_flip: bool | None = None  # None: the dataset's default (off for digits)
    augment_erase: float = 0.0  # probability of random erasing per image; 0 is off
    # optimisation
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    lr_decay: str = "cosine"  # after the warm-up, "cosine" or "linear" to 0 at the last step
    label_smoothing: float = 0.0
    ema: float = 0.0  # momentum of the weights' moving average per step (evaluated and saved); 0 is off
    mixed_precision: bool = False
    steps_per_execution: int = 1  # train steps per call into the compiled function (Keras's steps_per_execution)
    jit_compile: str = "auto"  # "auto": off for TensorFlow on a CPU (~40x slower: README, Benchmarks) and PyTorch
    seed: int = 0
    early_stopping: int = 0  # patience in epochs; 0 is off
    # the run's model (best.keras): the epoch of "best" validation accuracy, or the "last" epoch; None: best, or last
    # when the validation split is too small to choose (kerascnn.train.small_data.keep_rule)
    keep: str | None = None
    distribute: bool = False
    coordinator: str | None = None  # host:port of process 0 (several processes/machines, JAX backend)
    num_processes: int | None = None  # default: KERAS_DISTRIBUTION_NUM_PROCESSES, else 1
    process_id: int | None = None  # default: KERAS_DISTRIBUTION_PROCESS_ID, else 0
    startup_timeout: float = DEFAULT_TIMEOUT  # seconds every process waits for the others to start
    # output
    out: str | None = None  # default runs/<preset or model>
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch and best.keras are always saved)
    tta_flip: bool = False  # also report the test accuracy of the mean of each image's and its mirror's outputs
    compile_cache: str | None = None  # JAX's persistent compilation cache folder; "off"; None: per-user default
    tensorboard: bool = True
    preset: str | None = None
    resume: bool = dataclasses.field(default=False, metadata={"saved": False})
    # replace the run (or the files a run writes) already in `out`: never saved, so a repeat must ask again
    overwrite: bool = dataclasses.field(default=False, metadata={"saved": False})

    @property
    def run_dir(self) -> Path:
        """--out, or runs/<preset or model>."""
        return Path(self.out or f"runs/{self.preset or self.model}")

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"--epochs and --batch-size must be >= 1 (got {self.epochs}, {self.batch_size}).")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"--optimizer must be 'adamw' or 'sgd', not {self.optimizer!r}.")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise ValueError("--lr must be > 0, --weight-decay >= 0 and --label-smoothing in [0, 1).")
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"--lr-decay must be {' or '.join(LR_DECAYS)}, not {self.lr_decay!r}.")
        if self.keep is not None and self.keep not in KEEPS:
            raise ValueError(f"--keep must be {' or '.join(KEEPS)}, not {self.keep!r}.")
        if self.keep == "last" and self.early_stopping:
            raise ValueError(
                f"--early-stopping {self.early_stopping} with --keep last would keep the network of the epoch it "
                "stops on, that many epochs past the best one. Use --keep best with --early-stopping."
            )
        if self.jit_compile not in ("auto", "on", "off"):
            raise ValueError(f"--jit-compile must be auto, on or off, not {self.jit_compile!r}.")
        if not 0 <= self.augment_erase <= 1:
            raise ValueError(f"--augment-erase must be a probability in [0, 1] (got {self.augment_erase}).")
        if not 0 <= self.ema < 1:
            raise ValueError(f"--ema must be a momentum in [0, 1), e.g. 0.999; 0 is off (got {self.ema}).")
        if self.steps_per_execution < 1:
            raise ValueError(f"--steps-per-execution must be >= 1 (got {self.steps_per_execution}).")
        if self.checkpoint_every < 1:
            raise ValueError(f"--checkpoint-every must be >= 1 epoch (got {self.checkpoint_every}).")
        if self.input_pipeline not in ("auto", "memory", "stream"):
            raise ValueError(f"--input must be auto, memory or stream, not {self.input_pipeline!r}.")
        if not self.startup_timeout > 0:
            raise ValueError(f"--startup-timeout must be > 0 seconds (got {self.startup_timeout}).")
        if self.freeze_epochs < 0 or (self.finetune_lr is not None and not self.finetune_lr > 0):
            raise ValueError(
                f"--freeze-epochs must be >= 0 and --finetune-lr > 0 (got {self.freeze_epochs}, {self.finetune_lr})."
            )
        if (self.init_from or self.weights) and self.freeze_epochs > self.epochs:
            raise ValueError(
                f"--freeze-epochs {self.freeze_epochs} is more than --epochs {self.epochs}: the head-only phase "
                "is part of the epochs. Lower --freeze-epochs or raise --epochs."
            )
        if self.data_dir and self.test_dir:
            data, test = Path(self.data_dir).resolve(), Path(self.test_dir).resolve()
            if test.is_relative_to(data):
                raise ValueError(
                    f"--test-dir {self.test_dir} is {'--data-dir' if test == data else 'inside --data-dir'} "
                    f"{self.data_dir}: the test images would be training images too. Give a --test-dir outside "
                    "--data-dir, or leave it out to hold out --test-fraction of --data-dir."
                )
        from kerascnn.data.spec import DataSpec

        # the data flags (fractions, --image-size, --limit, --test-dir, --out inside --data-dir): checked once, there
        DataSpec.from_settings(dataclasses.asdict(self)).check(out=self.run_dir)


# the flag that sets each field, where it is not "--" + the field's name with - for _
FLAGS = {"input_pipeline": "--input", "tensorboard": "--no-tensorboard", "color_mode": "--color"}


def flag(name: str) -> str:
    """The command-line flag of the TrainConfig field `name`, for messages: flag("batch_size") == "--batch-size"."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


# Named schedules. Each row of the README's accuracy table names its preset and command.
PRESETS: dict[str, dict] = {
    # the README main command: an edge-sized model that finishes in about 10 minutes on 2 CPU cores (the README's
    # trial table under Accuracy has the variants measured against it)
    "quick": dict(
        model="vgg",
        # the vgg's own widths (32, 64, 128) gain ~0.3 points (94.04-94.25 % over seeds 0-3) but cost 1.4x the step:
        # 1.23x the preset's step when issue 20 set its bar, on the Intel Xeon of 2026-12-02 (README trial table)
        model_options=dict(widths=(24, 48, 96)),
        epochs=8,
        batch_size=128,
        lr=6e-3,
        weight_decay=0.05,
        warmup_epochs=0.5,
        augment_padding=0,
        # no flips either: 8 epochs leave the net under-fitted, and flipping held it back (three seeds on the
        # AVX-512 CPU: 93.71 / 94.15 / 93.83 % without, 93.63 / 93.78 / 93.69 % with; README trial table)
        augment_flip=False,
        label_smoothing=0.1,
        # the last epoch (learning rate 0), not the one the 5,000 validation images rank best: in the seven trial
        # runs where validation chose epoch 7, epoch 8 tested 0.07-0.23 points better (README trial table)
        keep="last",
    ),
    # the < 100K-parameter edge net, full schedule (CPU, in the background: about 2 hours)
    "mobilenet": dict(model="mobilenet", epochs=40, batch_size=128, lr=3e-3, weight_decay=0.05, label_smoothing=0.1),
    # time to 94 % on a GPU (JAX backend): bf16, large batches, a short schedule (bench/gpu.sh)
    "fast": dict(
        model="resnet",
        model_options=dict(width=32, depth=(2, 2, 2)),
        epochs=20,
        batch_size=512,
        mixed_precision=True,
        lr=4e-3,
        warmup_epochs=1.0,
        label_smoothing=0.1,
    ),
    # the best configuration under 1M parameters (GPU, JAX backend)
    "best": dict(
        model="resnet",
        epochs=60,
        batch_size=256,
        lr=3e-3,
        weight_decay=0.05,
        label_smoothing=0.1,
        model_options=dict(width=32, depth=(2, 2, 2), dropout=0.1),
    ),
}


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}


def _matches(value, kind) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_types(values: dict, source: str) -> None:
    """Checks each known key of `values` against the type of its TrainConfig field (None allowed where the
    field is optional; unknown keys are left to `resolve`).

    Raises:
        ValueError: names `source`, the key, the expected type and the value received.
    """
    hints = typing.get_type_hints(TrainConfig)
    for key, value in values.items():
        if key not in hints:
            continue
        kinds = [k for k in typing.get_args(hints[key]) if k is not type(None)] or [hints[key]]
        optional = type(None) in typing.get_args(hints[key])
        if (value is None and optional) or any(_matches(value, kind) for kind in kinds):
            continue
        expected = " or ".join(_KINDS.get(kind, kind.__name__) for kind in kinds)
        raise ValueError(f"{source}: {key} must be {expected}{' (or null)' if optional else ''}, not {value!r}.")


def read_config_file(path: str | Path) -> dict:
    """The mapping in a YAML or JSON file (keys as in TrainConfig), its values' types checked.

    Raises:
        ValueError: the file cannot be read, is not valid YAML/JSON, is not a mapping, or holds a value of
            the wrong type (one line naming the file).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"Cannot read config file {path}: {error}") from error
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        details = " ".join(str(error).split())
        raise ValueError(f"Config file {path} is not valid {kind}: {details}. Fix the file.") from error
    if not isinstance(values, dict):
        raise ValueError(
            f"Config file {path} must hold a mapping of option names to values (e.g. `epochs: 10`), "
            f"not {type(values).__name__}."
        )
    check_types(values, f"Config file {path}")
    return values


def resolve(values: dict) -> TrainConfig:
    """Defaults, then the preset named in `values`, then `values` themselves.

    Raises:
        ValueError: an unknown key or preset, a value of the wrong type, or a value out of range.
    """
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"Unknown config keys: {', '.join(unknown)}. Valid keys: {', '.join(sorted(fields))}.")
    check_types(values, "Option")
    preset = values.get("preset")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}. Valid presets: {', '.join(PRESETS)}.")
    config = TrainConfig(**{**PRESETS.get(preset, {}), **values})
    if (config.init_from or config.weights) and "freeze_epochs" not in {**PRESETS.get(preset, {}), **values}:
        # a default must not make a valid command fail: `--init-from RUN --epochs 1` trains the head for its 1 epoch;
        # without an init source there is no phase 1, and a clamp would only make `--resume --epochs 3` differ
        config.freeze_epochs = min(config.freeze_epochs, config.epochs)
    for name in DATA_FOLDERS:
        setattr(config, name, absolute_folder(getattr(config, name)))
    config.validate()
    return config


def absolute_folder(folder: str | None) -> str | None:
    """`folder` as an absolute path, `~` expanded and symlinks resolved (None stays None): a run records where its
    data is, not where it was relative to the folder training started in."""
    return None if folder is None else str(Path(folder).expanduser().resolve())


def to_yaml(config: TrainConfig) -> str:
    """config.yaml's text: every field but those marked `saved: False` (resume)."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.metadata.get("saved", True)}
    values["model_options"] = json.loads(json.dumps(values["model_options"]))  # tuples -> lists
    return yaml.safe_dump(values, sort_keys=False)
