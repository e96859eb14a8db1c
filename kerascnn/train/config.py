"""Training configuration: defaults, named presets, config files (YAML or JSON) and their merging."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path

import yaml

from kerascnn.data.spec import DataSpec
from kerascnn.settings import (
    FOLDER,
    LAUNCH,
    NAMES_RUN,
    PER_PROCESS,
    RESUMABLE,
    UNSAVED,
    SettingError,
    document,
    flags,
    having,
    like,
    setting,
)
from kerascnn.train.rendezvous import DEFAULT_TIMEOUT

# --lr-decay's choices (kerascnn.train.schedules builds them; named here, where the CLI and the checks read them
# without importing Keras)
LR_DECAYS = ("cosine", "linear")
# --keep's choices: which epoch's network becomes the run's model (best.keras)
KEEPS = ("best", "last")
# without --keep, a validation split below this many images (one image: more than a point) keeps the last epoch
MIN_CHOOSING_VALIDATION = 100
# Named schedules. Each row of the README's accuracy table names its preset and command.
#: The named training presets, chosen with `--preset NAME` or the "preset" key of `resolve`'s mapping. Each maps
#: TrainConfig fields to values; the fields not named keep TrainConfig's defaults, and settings given with the
#: preset override it. "quick" is the README's main command (an edge-sized model, about 10 minutes on 2 CPU cores).
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


# the command line's groups of flags, in order, with their descriptions (None: the top level)
GROUPS = {
    None: None,
    "model": None,
    "fine-tuning": "start from trained weights: head only, then every layer",
    "data": None,
    "optimisation": None,
    "output": None,
}
_DATA = {field.name: field for field in dataclasses.fields(DataSpec)}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _switch(**kwargs) -> dict:
    """A flag that takes no value and sets True (`--flag`), None when not given."""
    return dict(action="store_const", const=True, **kwargs)


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on; written as config.yaml into the run directory. Each field is a setting
    (`kerascnn.settings.setting`): its help is its documentation and `python -m kerascnn.train --help`, its roles
    say what a --resume may change and what each process of a run has its own of. The data settings are
    DataSpec's.

    Every field is a keyword with a default; each is the command-line flag `--field-name`. Build a config with
    `resolve`, which applies the preset and checks the values; the constructor does neither (`validate` checks).
    The attributes below are the fields' help, as `--help` prints it (`kerascnn.settings.document`).

    Raises:
        TypeError: a keyword that is not a field (the constructor checks nothing else).
        kerascnn.settings.SettingError: from `validate`, which `resolve` calls (a ValueError), a value out of
            range or two that contradict each other.

    Example:
        >>> from kerascnn.train import TrainConfig
        >>> config = TrainConfig(model="vgg", epochs=2)  # every other field at its default
        >>> config.run_dir.as_posix(), config.batch_size, config.lr
        ('runs/vgg', 128, 0.003)
        >>> config.validate()  # raises SettingError for a value out of range; None when all are fine
    """

    preset: str | None = setting(
        None,
        help="a named schedule (README lists them; default: none)",
        roles=(RESUMABLE, NAMES_RUN),
        choices=sorted(PRESETS),
    )
    # model
    model: str = setting(
        "mobilenet", help="registered model name, one of kerascnn.models.names()", show_default=True, group="model"
    )
    model_options: dict = setting(
        default_factory=dict,
        help="JSON object of builder options, e.g. '{\"width\": 48}'",
        show_default=True,
        group="model",
        type=json.loads,
        metavar="JSON",
    )
    # fine-tuning (kerascnn.train.finetune): start from other weights, then head only, then all layers
    init_from: str | None = setting(
        None,
        help="a kerascnn run directory (its best.keras, model and normalization) or .keras model; the head is "
        "new unless the classes match (default: none, random weights)",
        group="fine-tuning",
        metavar="PATH",
    )
    weights: str | None = setting(
        None,
        help="MobileNetV2 weights for --model mobilenetv2: 'imagenet' (Keras's download and cache) or a "
        ".h5/.weights.h5/.keras file, inputs (x-128)/127.5; or torchvision's state dict .pth (scripts/setup-weights "
        "installs the ImageNet one), inputs torchvision's per-channel mean/std (default: none)",
        group="fine-tuning",
        metavar="imagenet|PATH",
    )
    freeze_epochs: int = setting(
        2,
        help="first epochs that train only the head, the backbone and its batch norms frozen",
        show_default=True,
        group="fine-tuning",
        type=int,
    )
    finetune_lr: float | None = setting(
        None,
        help="peak learning rate of the later epochs, all layers (batch norms stay frozen; default: --lr / 10)",
        group="fine-tuning",
        type=float,
    )
    # data
    dataset: str = like(_DATA["dataset"])
    data_dir: str | None = like(_DATA["data_dir"])
    test_dir: str | None = like(_DATA["test_dir"])
    test_fraction: float = like(_DATA["test_fraction"])
    image_size: list | None = like(_DATA["image_size"])
    color_mode: str | None = like(_DATA["color_mode"])
    skip_bad_images: bool = like(_DATA["skip_bad"])
    input_pipeline: str = setting(
        "auto",
        help="memory: decode everything once; stream: tf.data, decoded every epoch, memory flat in the "
        "number of images; auto: memory when the training pixels fit in 128 MiB",
        show_default=True,
        flag="--input",
        group="data",
        choices=["auto", "memory", "stream"],
    )
    validation_fraction: float = like(_DATA["validation_fraction"])
    limit: int | None = like(_DATA["limit"])
    augment_padding: int = setting(
        2, help="random-crop padding in pixels, 0 turns cropping off", show_default=True, group="data", type=int
    )
    augment_flip: bool | None = setting(
        None,
        help="random horizontal flips (default: on, off for digit and text datasets)",
        group="data",
        type=_bool,
        metavar="{true,false}",
    )
    augment_erase: float = setting(
        0.0,
        help="random erasing: probability that an image gets a random rectangle (2-40 %% of its area) set to "
        "the mean colour, seeded per epoch like the crops",
        show_default=True,
        group="data",
        type=float,
        metavar="P",
    )
    # optimisation
    epochs: int = setting(
        10, help="epochs to train", show_default=True, group="optimisation", roles=(RESUMABLE,), type=int
    )
    batch_size: int = setting(128, help="images per step", show_default=True, group="optimisation", type=int)
    optimizer: str = setting(
        "adamw",
        help="AdamW, or SGD with Nesterov momentum 0.9",
        show_default=True,
        group="optimisation",
        choices=["adamw", "sgd"],
    )
    lr: float = setting(
        3e-3,
        help="peak learning rate (reached after the warm-up, then --lr-decay to 0)",
        show_default=True,
        group="optimisation",
        type=float,
    )
    warmup_epochs: float = setting(
        1.0, help="epochs of linear warm-up from 0 to --lr", show_default=True, group="optimisation", type=float
    )
    lr_decay: str = setting(
        "cosine",
        help="after the warm-up the learning rate falls from --lr to 0 at the last step along a half cosine or a "
        "straight line",
        show_default=True,
        group="optimisation",
        choices=LR_DECAYS,
    )
    weight_decay: float = setting(
        0.05,
        help="decoupled weight decay, not on biases and batch norm",
        show_default=True,
        group="optimisation",
        type=float,
    )
    label_smoothing: float = setting(
        0.0,
        help="label smoothing of the cross-entropy, in [0, 1)",
        show_default=True,
        group="optimisation",
        type=float,
    )
    ema: float = setting(
        0.0,
        help="keep a moving average of the weights (momentum per step, e.g. 0.999; Keras's use_ema): it is "
        "validated, saved as best/last.keras and tested (with batch-norm statistics of its own, from 2,048 training "
        "images), training goes on from the raw weights; 0 is off",
        show_default=True,
        group="optimisation",
        type=float,
        metavar="MOMENTUM",
    )
    mixed_precision: bool = setting(
        False, help="bfloat16 compute, float32 weights (default: off)", group="optimisation", **_switch()
    )
    steps_per_execution: int = setting(
        1,
        help="train steps per call into the compiled step (Keras's steps_per_execution): fewer trips to the "
        "host on a GPU; the batches and the result are the same",
        show_default=True,
        group="optimisation",
        roles=(RESUMABLE,),
        type=int,
        metavar="N",
    )
    jit_compile: str = setting(
        "auto",
        help="XLA; auto: Keras's rule, on for JAX and for TensorFlow on a GPU where every layer supports it, "
        "off for TensorFlow on a CPU, under --distribute on TensorFlow, and on PyTorch",
        show_default=True,
        group="optimisation",
        choices=["auto", "on", "off"],
    )
    seed: int = setting(
        0,
        help="seed of the validation split, weights, batch order and augmentation",
        show_default=True,
        group="optimisation",
        type=int,
    )
    early_stopping: int = setting(
        0,
        help="stop after PATIENCE epochs without a better validation accuracy, 0 is off",
        show_default=True,
        group="optimisation",
        roles=(RESUMABLE,),
        type=int,
        metavar="PATIENCE",
    )
    # the run's model (best.keras): the epoch of "best" validation accuracy, or the "last" epoch; None: best, or last
    # when the validation split is too small to choose (kerascnn.train.small_data.keep_rule)
    keep: str | None = setting(
        None,
        help="the run's model (best.keras: tested, exported, read by --init-from): the epoch with the best validation "
        "accuracy, or the last epoch (where the learning rate reaches 0); the last network is tested either way "
        f"(default: best, or last below {MIN_CHOOSING_VALIDATION} validation images, too few to choose by)",
        group="optimisation",
        choices=KEEPS,
    )
    distribute: bool = setting(
        False,
        help="data-parallel over all local devices (MirroredStrategy / keras DataParallel; default: off)",
        group="optimisation",
        **_switch(),
    )
    coordinator: str | None = setting(
        None,
        help="several processes or machines (JAX backend): the address of process 0, reachable from "
        "all (default: $KERAS_DISTRIBUTION_JOB_ADDRESSES)",
        group="optimisation",
        roles=(RESUMABLE, PER_PROCESS, LAUNCH),
        metavar="HOST:PORT",
    )
    num_processes: int | None = setting(
        None,
        help="number of processes taking part (default: $KERAS_DISTRIBUTION_NUM_PROCESSES, else 1)",
        group="optimisation",
        type=int,
    )
    startup_timeout: float = setting(
        DEFAULT_TIMEOUT,
        help="several processes: how long each waits for all the others to start before it stops, naming the "
        "missing ones",
        show_default=True,
        group="optimisation",
        roles=(RESUMABLE, PER_PROCESS, LAUNCH),
        type=float,
        metavar="SECONDS",
    )
    process_id: int | None = setting(
        None,
        help="this process's index, 0 is the chief that writes the run directory "
        "(default: $KERAS_DISTRIBUTION_PROCESS_ID, else 0)",
        group="optimisation",
        roles=(RESUMABLE, PER_PROCESS, LAUNCH),
        type=int,
    )
    # output
    out: str | None = setting(
        None,
        help="run directory (default: runs/<preset or model>)",
        group="output",
        roles=(RESUMABLE, PER_PROCESS, NAMES_RUN),
    )
    resume: bool = setting(
        False,
        help=lambda: (
            "continue the run in --out from its last epoch, with the settings in its config.yaml "
            f"(flags change only what they name: {resume_flags()}; several "
            "processes: relaunch all of them, each with its own --coordinator/--process-id, not taken from config.yaml)"
        ),
        group="output",
        roles=(RESUMABLE, LAUNCH, UNSAVED),
        action="store_true",
    )
    # replace the run (or the files a run writes) already in `out`: never saved, so a repeat must ask again
    overwrite: bool = setting(
        False,
        help="train into an --out that is not empty: an earlier run there is replaced (its models, checkpoints, "
        "logs and metrics deleted), other files are kept (default: refuse a folder that is not empty)",
        group="output",
        roles=(RESUMABLE, PER_PROCESS, UNSAVED),
        **_switch(),
    )
    checkpoint_every: int = setting(
        1,
        help="save the resumable checkpoint every N epochs (a kill loses at most N; the last epoch and "
        "best.keras are always saved)",
        show_default=True,
        group="output",
        roles=(RESUMABLE,),
        type=int,
        metavar="N",
    )
    tta_flip: bool = setting(
        False,
        help="also report the test accuracy with horizontal-flip test-time augmentation (mean of the outputs "
        "for each image and its mirror), beside the single-view figure; exports stay single-view (default: off)",
        group="output",
        roles=(RESUMABLE,),
        **_switch(),
    )
    compile_cache: str | None = setting(
        None,
        help="JAX backend: persistent compilation cache folder, so a second run of the same model starts "
        "without recompiling; 'off' turns it off (default: $JAX_COMPILATION_CACHE_DIR, else "
        "~/.cache/kerascnn/jax)",
        group="output",
        roles=(RESUMABLE,),
        metavar="DIR",
    )
    tensorboard: bool = setting(
        True,
        help="write no TensorBoard logs (default: write them to <out>/tb)",
        flag="--no-tensorboard",
        group="output",
        roles=(RESUMABLE,),
        action="store_const",
        const=False,
    )

    @property
    def run_dir(self) -> Path:
        """--out, or runs/<preset or model>."""
        return Path(self.out or f"runs/{self.preset or self.model}")

    def validate(self) -> None:
        """Raises SettingError for a setting out of range or two that contradict each other (data settings:
        `DataSpec.check`).

        Raises:
            kerascnn.settings.SettingError: (a ValueError) the first failed check, its message naming the
                settings and the values received; `str(error)` in field names, `error.in_flags()` in flags.
        """
        checks = [
            (
                self.epochs < 1 or self.batch_size < 1,
                "{epochs:name} and {batch_size:name} must be >= 1 (got {epochs:value}, {batch_size:value}).",
            ),
            (
                self.optimizer not in ("adamw", "sgd"),
                "{optimizer:name} must be 'adamw' or 'sgd', not {optimizer:value}.",
            ),
            (
                not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.label_smoothing < 1,
                "{lr:name} must be > 0, {weight_decay:name} >= 0 and {label_smoothing:name} in [0, 1).",
            ),
            (
                self.lr_decay not in LR_DECAYS,
                f"{{lr_decay:name}} must be {' or '.join(LR_DECAYS)}, not {{lr_decay:value}}.",
            ),
            (
                self.keep is not None and self.keep not in KEEPS,
                f"{{keep:name}} must be {' or '.join(KEEPS)}, not {{keep:value}}.",
            ),
            (
                self.keep == "last" and self.early_stopping,
                "{early_stopping} with {keep} would keep the network of the epoch it stops on, that many epochs "
                "past the best one. Use {keep:name} best with {early_stopping:name}.",
            ),
            (
                self.jit_compile not in ("auto", "on", "off"),
                "{jit_compile:name} must be auto, on or off, not {jit_compile:value}.",
            ),
            (
                not 0 <= self.augment_erase <= 1,
                "{augment_erase:name} must be a probability in [0, 1] (got {augment_erase:value}).",
            ),
            (not 0 <= self.ema < 1, "{ema:name} must be a momentum in [0, 1), e.g. 0.999; 0 is off (got {ema:value})."),
            (
                self.steps_per_execution < 1,
                "{steps_per_execution:name} must be >= 1 (got {steps_per_execution:value}).",
            ),
            (self.checkpoint_every < 1, "{checkpoint_every:name} must be >= 1 epoch (got {checkpoint_every:value})."),
            (
                self.input_pipeline not in ("auto", "memory", "stream"),
                "{input_pipeline:name} must be auto, memory or stream, not {input_pipeline:value}.",
            ),
            (not self.startup_timeout > 0, "{startup_timeout:name} must be > 0 seconds (got {startup_timeout:value})."),
            (
                self.freeze_epochs < 0 or (self.finetune_lr is not None and not self.finetune_lr > 0),
                "{freeze_epochs:name} must be >= 0 and {finetune_lr:name} > 0 (got {freeze_epochs:value}, "
                "{finetune_lr:value}).",
            ),
            (
                (self.init_from or self.weights) and self.freeze_epochs > self.epochs,
                "{freeze_epochs} is more than {epochs}: the head-only phase is part of the epochs. Lower "
                "{freeze_epochs:name} or raise {epochs:name}.",
            ),
        ]
        if self.data_dir and self.test_dir:
            data, test = Path(self.data_dir).resolve(), Path(self.test_dir).resolve()
            checks.append(
                (
                    test.is_relative_to(data),
                    "{test_dir} is " + ("" if test == data else "inside ") + "{data_dir}: the test images would be "
                    "training images too. Give a {test_dir:name} outside {data_dir:name}, or leave it out to hold out "
                    "{test_fraction:name} of {data_dir:name}.",
                )
            )
        for failed, template in checks:
            if failed:
                raise SettingError(TrainConfig, template, **vars(self))
        # the data settings (fractions, image_size, limit, test_dir, out inside data_dir): checked once, there
        DataSpec.from_settings(dataclasses.asdict(self)).check(out=self.run_dir)


# what each setting is to a run, from its roles (kerascnn.settings)
RESUME_MAY_CHANGE = having(TrainConfig, RESUMABLE)  # any other change would make the checkpoint meaningless
PER_PROCESS_SETTINGS = having(TrainConfig, PER_PROCESS)  # never compared across the processes of one run
LAUNCH_ONLY = having(TrainConfig, LAUNCH)  # a --resume never takes these from config.yaml
DATA_FOLDERS = tuple(sorted(having(TrainConfig, FOLDER)))  # stored absolute: the run opens from any working directory
FLAGS = flags(TrainConfig)


def flag(name: str) -> str:
    """The command-line flag of the TrainConfig field `name`, for messages: flag("batch_size") == "--batch-size"."""
    return FLAGS[name]


def resume_flags() -> str:
    """The flags a --resume may change, less those that name the run or belong to the launch, for its help."""
    names = RESUME_MAY_CHANGE - having(TrainConfig, NAMES_RUN) - LAUNCH_ONLY - having(TrainConfig, UNSAVED)
    return ", ".join(flag(name) for name in sorted(names))


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

    Data folders become absolute paths. With `init_from` or `weights` and no `freeze_epochs` given, the
    head-only phase is cut to `epochs` if it would be longer.

    Args:
        values: TrainConfig fields by name (a config file's or the command line's settings), "preset"
            among them or not.

    Returns:
        The checked `TrainConfig`.

    Raises:
        ValueError: an unknown key or preset, a value of the wrong type, or a value out of range
            (`kerascnn.settings.SettingError`, a ValueError, names the setting).

    Example:
        >>> from kerascnn.train import resolve
        >>> config = resolve({"preset": "quick", "epochs": 1})  # the preset's values, epochs overridden
        >>> config.model, config.model_options, config.epochs, config.run_dir.as_posix()
        ('vgg', {'widths': (24, 48, 96)}, 1, 'runs/quick')
        >>> resolve({"epoch": 3})
        Traceback (most recent call last):
        ...
        ValueError: Unknown config keys: epoch. Valid keys: ...
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
    """config.yaml's text: every field but the UNSAVED ones (resume, overwrite)."""
    unsaved = having(TrainConfig, UNSAVED)
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in unsaved}
    values["model_options"] = json.loads(json.dumps(values["model_options"]))  # tuples -> lists
    return yaml.safe_dump(values, sort_keys=False)


document(TrainConfig)  # each field's help into the API reference, once resume_flags() can run
