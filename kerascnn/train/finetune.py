"""Fine-tuning: start a network from another one's weights, with a new head for the new classes, in two phases.

The recipe is the Keras transfer-learning guide's: phase 1 trains only the head for `freeze_epochs` epochs
with the backbone frozen, its batch norms in inference mode (running statistics, no updates); phase 2 trains
every convolution at the lower `finetune_lr`. The batch norms stay in inference mode in phase 2 too (their
statistics and scale/shift stay the backbone's), as the guide advises for small datasets: a few hundred
images give batch statistics too noisy to replace ImageNet's. In kerascnn a frozen `ConvBNAct` computes
its folded form, X * (V * scale) + shift, so BN costs nothing in either phase.

Where the weights come from (`WeightSource`): a kerascnn run directory (its model, `Run.model_file`, with the run's
normalization from `dataset.json`), a kerascnn `.keras` model (the `dataset.json` beside it, if any), or
`--weights imagenet|PATH` for `mobilenetv2` (Keras's MobileNetV2 weights; ImageNet's preprocessing,
x / 127.5 - 1 = (x - 127.5) / 127.5, as (x - 128) / 127.5: half a pixel level off, so integer inputs take whole
pixels).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

# Keras is imported by the functions that need it: the CLI checks flags without it
from kerascnn import rundir
from kerascnn.rundir import Run
from kerascnn.saving import load_model
from kerascnn.train.config import resolve

# keras.applications.mobilenet_v2.preprocess_input is x / 127.5 - 1 == (x - 127.5) / 127.5; the mean is 128 here,
# half a pixel level away, so that an integer input maps every pixel to a whole step (int8: q = pixel - 128), which
# the export requires (a mean of 127.5 would put pixels halfway between steps)
IMAGENET_NORMALIZATION = {"mean": [128.0, 128.0, 128.0], "std": [127.5, 127.5, 127.5]}
# torchvision's ImageNet preprocessing in pixel units, for a .pth state dict (kerascnn.models.torch_weights, which
# imports Keras: the CLI checks flags without it)
TORCHVISION_NORMALIZATION = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}
# the builder option that loads Keras's weights, per model
KERAS_WEIGHTS_MODELS = {"mobilenetv2"}


class FineTuneError(ValueError):
    """--init-from / --weights cannot be used as given; the message names the flag and the fix."""


@dataclasses.dataclass
class WeightSource:
    """Where a fine-tuned run's starting weights come from.

    `model` and `model_options` are the source run's (None: the new run's own); `normalization` is the
    {"mean", "std"} the backbone was trained with (None: the new data's statistics); `labels` the source's
    classes, to keep its head when they match.
    """

    description: str
    network_path: Path | None = None
    model: str | None = None
    model_options: dict | None = None
    normalization: dict | None = None
    labels: list[str] | None = None


def _dataset_json(run: Run) -> dict | None:
    try:
        return run.dataset()
    except ValueError as error:
        raise FineTuneError(f"--init-from: {error}") from error


def weight_source(init_from: str | None, weights: str | None, model: str) -> WeightSource | None:
    """The `WeightSource` for --init-from PATH or --weights imagenet|PATH (None when neither is given).

    Raises:
        FineTuneError: both flags, a missing path, a folder that is not a run, a file that is not .keras,
            or --weights with a model that has no Keras weights.
    """
    if init_from and weights:
        raise FineTuneError("Give --init-from (a kerascnn run or .keras model) or --weights, not both.")
    if weights:
        if model not in KERAS_WEIGHTS_MODELS:
            raise FineTuneError(
                f"--weights loads keras.applications weights into {', '.join(sorted(KERAS_WEIGHTS_MODELS))}, "
                f"not --model {model}. Use --model mobilenetv2, or --init-from a kerascnn run."
            )
        if weights != "imagenet" and not Path(weights).is_file():
            raise FineTuneError(f"--weights {weights}: no such file. Give 'imagenet' or a MobileNetV2 weights file.")
        if Path(weights).suffix in (".pth", ".pt"):
            return WeightSource(f"torchvision weights: {weights}", normalization=dict(TORCHVISION_NORMALIZATION))
        return WeightSource(f"keras.applications weights: {weights}", normalization=dict(IMAGENET_NORMALIZATION))
    if not init_from:
        return None
    path = Path(init_from)
    if path.is_dir():
        network_path = Run(path).model_file()
        if network_path is None:
            raise FineTuneError(
                f"--init-from {path}: no {rundir.BEST_MODEL} or {rundir.LAST_MODEL} in it (not a finished "
                "kerascnn run). Give a run directory or a .keras model."
            )
    elif path.suffix == ".keras" and path.is_file():
        network_path = path
    else:
        raise FineTuneError(f"--init-from {path}: not a run directory or a .keras file. Give one of those.")
    run = Run(network_path.parent, resolve)
    meta = _dataset_json(run)
    saved = run.config() if run.is_run() else None  # a .keras file beside a run's files: that run's architecture
    normalization = meta.get("normalization") if meta else None
    return WeightSource(
        f"kerascnn model: {network_path}",
        network_path=network_path,
        model=saved.model if saved else None,
        model_options=saved.model_options if saved else None,
        normalization={"mean": normalization["mean"], "std": normalization["std"]} if normalization else None,
        labels=meta.get("labels") if meta else None,
    )


def head_of(network):
    """The one GAPHead of `network` (raises FineTuneError otherwise)."""
    from kerascnn.layers import GAPHead

    heads = [layer for layer in network.layers if isinstance(layer, GAPHead)]
    if len(heads) != 1:
        raise FineTuneError(f"Fine-tuning needs a model with one GAP head; {network.name!r} has {len(heads)}.")
    return heads[0]


def transfer_weights(source, target, keep_head: bool = False) -> list[str]:
    """Copies every layer of `target` that holds weights from the same-named layer of `source`, except the GAP
    head (new, random) unless `keep_head` and its shapes agree. Returns the names of the copied layers.

    Raises:
        FineTuneError: a layer of `target` is missing from `source` or has other shapes (another model, width
            or number of input channels).
    """
    head = head_of(target)
    copied = []
    for layer in target.layers:
        if not layer.weights or (layer is head and not keep_head):
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError as error:
            raise FineTuneError(
                f"The source model has no layer {layer.name!r}: it is not the same architecture as "
                f"--model. Use the source run's --model and --model-options."
            ) from error
        values = other.get_weights()
        shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != shapes:
            if layer is head:
                continue
            raise FineTuneError(
                f"Layer {layer.name!r} has weights of shapes {[v.shape for v in values]} in the source and "
                f"{shapes} here (another width or number of channels?). Use the source run's --model-options "
                "and an input with as many channels."
            )
        layer.set_weights(values)
        copied.append(layer.name)
    return copied


def set_phase(network, head_only: bool) -> None:
    """Phase 1 (`head_only`): only the GAP head trains, the backbone is frozen with its batch norms in
    inference mode. Phase 2: every layer trains except the batch norms, which stay in inference mode.

    Either change takes effect at the next `compile`.
    """
    import keras

    from kerascnn.layers import ConvBNAct

    head = head_of(network)
    for layer in network.layers:
        layer.trainable = layer is head or not head_only
    for layer in network.layers:
        if isinstance(layer, ConvBNAct):
            layer.bn.trainable = False
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def check_normalization(normalization: dict | None, channels: int, flag: str) -> None:
    """Raises FineTuneError when the backbone's normalization has another number of channels than the data."""
    if normalization is not None and len(normalization["mean"]) != channels:
        raise FineTuneError(
            f"{flag}: the weights are for {len(normalization['mean'])}-channel images, the data has {channels} "
            f"channels. Pass --color {'grayscale' if len(normalization['mean']) == 1 else 'rgb'} to convert the "
            "images to as many channels (RGB for ImageNet weights), or use such images."
        )


def resumed_source(run_dir: Path) -> WeightSource:
    """The `WeightSource` of a fine-tuned run that --resume continues: its weights come from its own checkpoint, its
    normalization and the source's description from its own dataset.json, so the --init-from run or --weights file
    it started from may have moved or been deleted since."""
    meta = _dataset_json(Run(run_dir)) or {}
    recorded = meta.get("normalization") or {}
    if "from" not in recorded:  # the run normalized with its data's own statistics, recomputed the same way
        return WeightSource(f"the checkpoint of {run_dir}")
    return WeightSource(recorded["from"], normalization={key: recorded[key] for key in ("mean", "std")})


def source_model_values(values: dict) -> dict:
    """`values` with the source run's `model` and `model_options` when --init-from names a run and --model is not
    given (flags and --preset win): fine-tuning a run needs its architecture."""
    if not values.get("init_from") or "model" in values or values.get("preset"):
        return values
    source = weight_source(values["init_from"], None, "")
    if source.model is None:
        return values
    return {**values, "model": source.model, "model_options": values.get("model_options", source.model_options or {})}


def build_network(config, source: WeightSource, input_shape, labels: list[str]):
    """The new run's network, `config.model` for `labels`, with the source's weights: Keras's MobileNetV2 file
    through the builder's `weights` option, or a kerascnn model's layers by name (`transfer_weights`; its head
    too when the labels match).

    Raises:
        FineTuneError: the source model cannot be read or does not fit `config.model`.
        ValueError: the builder refuses the options or the weights (kerascnn.models.OptionError).
    """

    from kerascnn import models

    options = dict(config.model_options)
    if source.network_path is None:
        return models.create(config.model, input_shape, len(labels), **options, weights=config.weights)
    network = models.create(config.model, input_shape, len(labels), **options)
    try:
        other = load_model(source.network_path, compile=False)
    except Exception as error:  # zipfile, h5py and Keras raise many kinds for a file that is not a model
        raise FineTuneError(
            f"--init-from: {source.network_path} is not a readable .keras model ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:160]})."
        ) from error
    transfer_weights(other, network, keep_head=source.labels == list(labels))
    return network


def phase_config(config, head_only: bool):
    """The config whose learning-rate schedule a phase runs: phase 1 (head only) spans `freeze_epochs` at `lr`
    with its warm-up; phase 2 spans the remaining epochs at `finetune_lr` (default lr / 10), `lr_decay` from
    the start (no warm-up: the network is trained already)."""
    if head_only:
        return dataclasses.replace(config, epochs=config.freeze_epochs)
    return dataclasses.replace(
        config,
        epochs=config.epochs - config.freeze_epochs,
        lr=config.finetune_lr or config.lr / 10,
        warmup_epochs=0.0,
    )


def phases(config, initial_epoch: int) -> list[tuple[int, int, bool]]:
    """The (first epoch, end epoch, head only) of each phase still to run from `initial_epoch`."""
    bounds = [(0, config.freeze_epochs, True), (config.freeze_epochs, config.epochs, False)]
    return [(max(start, initial_epoch), end, head) for start, end, head in bounds if end > max(start, initial_epoch)]
