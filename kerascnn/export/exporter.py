# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""Export a trained run: convert each preset, audit it, write it with its manifest, and report on it."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerascnn import rundir
from kerascnn.export import manifest as manifests
from kerascnn.export import output
from kerascnn.export import report as reports
from kerascnn.export import tflm as microcontrollers
from kerascnn.export.config import ExportConfig
from kerascnn.export.converter import convert
from kerascnn.export.presets import PRESETS
from kerascnn.export.writer import (
    TestSet,
    TrainedModel,
    Variant,
    VariantWriter,
    input_description,
    model_space,
    normalization_description,
)
from kerascnn.rundir import Run, atomic_write
from kerascnn.train.config import TrainConfig, resolve


def locate_run(source: str | os.PathLike) -> tuple[Path, Run]:
    """(model file, run) for a run directory (its model: `Run.model_file`) or a .keras file inside one.

    Raises:
        FileNotFoundError: no model there, or the run's dataset.json or config.yaml is missing.
        ValueError: the file is not a .keras file.
    """
    source = Path(source)
    run = Run(source if source.is_dir() else source.parent, resolve)
    model_path = (run.model_file() or run.path(rundir.BEST_MODEL)) if source.is_dir() else source
    if not model_path.exists():
        raise FileNotFoundError(f"No model at {model_path}. Give a run directory of kerascnn.train or a .keras file.")
    if model_path.suffix != ".keras":
        raise ValueError(f"{model_path} is not a .keras file.")
    for needed in (rundir.DATASET, rundir.CONFIG):
        if not run.path(needed).exists():
            raise FileNotFoundError(
                f"{run.path(needed)} is missing: the export needs the labels, normalization and "
                "dataset of the run that trained the model (written by kerascnn.train)."
            )
    return model_path, run


def read_run_files(run: Run) -> tuple[dict, TrainConfig]:
    """(dataset.json, the run's TrainConfig): labels and normalization, and how its data was loaded."""
    try:
        dataset_meta, config = run.dataset(), run.config()
        dataset_meta["labels"], dataset_meta["normalization"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{run.folder} has a damaged dataset.json or config.yaml ({type(error).__name__}: {error}); "
            "they are written by kerascnn.train."
        ) from error
    return dataset_meta, config


TRAIN_IMAGES = 10_000  # training images a run's export decodes for calibration and fine-tuning (at most)


def run_dataset(dataset_meta: dict, settings: dict, test_limit: int | None, train_limit: int, run_dir: Path):
    """The run's own test split and a seeded class-balanced subset of `train_limit` of its training split, as
    arrays, replayed from the data spec the run recorded (`recorded_data`): the same split, the decoding, orientation
    and resize of training, and the statistics of its dataset.json (not recomputed). `settings`:
    the run's TrainConfig as a mapping (`dataclasses.asdict`).

    Raises:
        ValueError: the data changed since training (`check_same_data`), before anything is decoded.
    """
    from kerascnn.data.datasets import ImageDataset

    data = recorded_data(dataset_meta, settings)
    check_same_data(data, dataset_meta, run_dir)
    train = data.limited(train_limit, settings["seed"])
    splits = {"train": train.arrays("train"), "test": data.arrays("test", limit=test_limit)}
    return ImageDataset(data.name, data.labels, splits, data.mean, data.std)


def recorded_data(dataset_meta: dict, settings: dict):
    """The run's data replayed from the spec it recorded (`DataSpec.from_run`) and its dataset.json."""
    from kerascnn.data import DataSpec, open

    return open(DataSpec.from_run(dataset_meta, settings), recorded=dataset_meta)


def run_test_files(dataset_meta: dict, settings: dict, test_limit: int | None) -> list[tuple[str, int]] | None:
    """The files of the run's test split as (path, class index), in the order of `run_dataset`'s test arrays (their
    first `test_limit`); None for record datasets (IDX, tfds), which have no files."""
    part = recorded_data(dataset_meta, settings).splits["test"]
    if not part.files:
        return None
    return [(path, int(label)) for path, label in zip(part.files[:test_limit], part.labels[:test_limit])]


def check_same_data(data, at_training: dict, run_dir: Path) -> None:
    """Raises if the data opened now is not the data the run trained on (an image folder whose classes or files
    changed): the split, and so the test images, would differ. Compares what listing the data tells (labels, the
    number of files per class, recorded by training since the data spec exists) with dataset.json; nothing is
    decoded for it."""
    changed = []
    if data.labels != at_training["labels"]:
        changed.append(f"labels {at_training['labels']} -> {data.labels}")
    recorded = at_training.get("files_per_class")
    if recorded is not None and data.facts.get("files_per_class") != recorded:
        changed.append(f"files per class {recorded} -> {data.facts.get('files_per_class')}")
    if changed:
        raise ValueError(
            f"The dataset changed since {run_dir} was trained ({'; '.join(changed)[:300]}): export from the data "
            "the model was trained on."
        )


def load_keras_model(model_path: Path):
    import zipfile

    import keras

    from kerascnn.saving import register_serializables

    register_serializables()

    try:
        with zipfile.ZipFile(model_path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(
            f"{model_path} is truncated or damaged: not a complete .keras (zip) archive ({error}). "
            "Copy it again, or export another checkpoint of the run."
        ) from error
    if damaged:
        raise ValueError(f"{model_path} is damaged ({damaged} fails its checksum): copy it again.")
    try:
        return keras.saving.load_model(model_path)
    except Exception as error:  # zip, h5, json and registration errors all land here
        raise ValueError(
            f"Cannot load {model_path} as a Keras model ({type(error).__name__}: {error}). Is it a "
            ".keras file saved by kerascnn?"
        ) from error


def _log(message: str) -> None:
    print(f"[kerascnn.export] {message}", file=sys.stderr, flush=True)


def _epochs(count: int) -> str:
    return f"{count} epoch{'s' if count != 1 else ''}"


def default_out(run_dir: Path) -> Path:
    """Where an export goes without --out: the run's own folder, RUN/export."""
    return Path(run_dir) / rundir.EXPORT_DIR


def export_run(source, export: ExportConfig | Sequence[str] | None = None, /, **settings) -> dict:
    """Exports `source` under each preset in `export.quants` into `export.out` (default RUN/export) and returns the
    report (also written as report.json and report.md). `export` is an ExportConfig (kerascnn.export.config, which
    documents each setting); or, as before it existed, the list of presets, the other settings given as keywords:
    `export_run(run, ["int8"], calibration=100)` is `export_run(run, ExportConfig(quants=("int8",), calibration=100))`.

    Every .tflite carries TFLite metadata (kerascnn.export.metadata: labels, normalization, input colour), so
    MediaPipe Tasks and the TFLite Task Library run it with no extra code. With `input_color="rgb"` a model trained
    on grey images is exported with an RGB input, the luminance folded into its first convolution
    (kerascnn.export.rgb); "native" keeps the trained channels. A run normalized per channel (an RGB folder) is
    exported with one mean/std for all channels, what MediaPipe's NormalizationOptions and a uint8 input need, the
    per-channel statistics folded into the model (kerascnn.export.normalization). int8 calibration uses
    `calibration` seeded random training images plus an all-black and an all-white one, so integer inputs cover
    the whole 0..255 pixel range (a uint8 input then takes the raw pixels: q = pixel).

    With `qat_epochs` > 0 the report adds "int8 (QAT)": quantization-aware fine-tuning of the model's tf_keras
    twin (kerascnn.optimize). With `prune_sparsity` S > 0 it adds "pruned S" (magnitude pruning over
    `prune_epochs`, then int8 with calibration) and, with `qat_epochs` too, "pruned S + QAT"
    (pruning-preserving QAT); these rows keep the trained channels. Fine-tuning uses a seeded random
    `finetune_images` of the training images (all by default).

    The export is written into a staging folder beside `out` and moved into place only when every variant passed
    (kerascnn.export.output): a failure leaves an earlier export as it was. A non-empty `out` that is not an export
    of this run is refused unless `overwrite` (then same-named files are replaced and the others kept).

    With `mediapipe` and the edge environment (`edge_python`, `mediapipe_check`; default
    kerascnn.export.report.edge_tools: KERASCNN_EDGE_PYTHON, KERASCNN_MEDIAPIPE_CHECK, else the repository
    checkout's .venv-edge and kerascnn-check-mediapipe), each variant is also run through MediaPipe Tasks'
    ImageClassifier for the report's MediaPipe columns.

    With `tflm_images` > 0 and tflite-micro in the edge environment (`edge_python`), each variant with an integer
    input is run in TensorFlow Lite Micro (kerascnn-check-tflm) on the first `tflm_images` test images: the report's
    microcontroller section and the manifests' "tflm" entry get its flash and arena bytes and whether it fits
    256 KB and 512 KB SRAM boards (and `mcu_ram` bytes).

    Args:
        source: a run directory of kerascnn.train (its model: `Run.model_file`), or a .keras file inside one.
        export: an `ExportConfig`; or a sequence of preset names (`kerascnn.export.PRESETS`, or "all"); None for
            the default presets, float32 and int8.
        **settings: with a list or None as `export`, the other ExportConfig fields by name (`calibration`, `out`,
            `limit`, `qat_epochs`, ...).

    Returns:
        The report (as written to report.json), with the model, its parameter count, dataset, source, run
        fingerprint, test image count, input description, the Keras model's test accuracy ("keras") and the
        machine, and under "variants" one row per exported variant (file, input, converter settings, size,
        accuracy, agreement with Keras, latency at batch 1, MediaPipe and TFLM entries when measured).

    Raises:
        ValueError: a bad argument, source, output folder (OutputFolderError), or run files (labels or
            normalization missing, a label count other than the model's outputs); a setting out of range
            (`kerascnn.settings.SettingError`); Keras not on the TensorFlow backend; the run's data changed since
            training; NotFoldableError (a ValueError) for an RGB export of a model whose input does not feed one
            foldable convolution; ConversionError or AuditError (ValueErrors) for a variant that needs a Flex op
            or breaks the preset's rules.
        FileNotFoundError: no model or run files at `source`.

    Example:
        >>> from kerascnn.export import export_run
        >>> report = export_run("runs/quick", ["float32", "int8"], calibration=200, limit=1000)
        >>> sorted(report["variants"])
        ['float32', 'int8']
    """
    from kerascnn.export import metadata as metadata_writer
    from kerascnn.export.normalization import share_normalization
    from kerascnn.export.rgb import grey_to_rgb

    if not isinstance(export, ExportConfig):
        export = ExportConfig(**({} if export is None else {"quants": tuple(export)}), **settings)
    export.check()
    _check_backend()
    model_path, run = locate_run(source)
    run_dir = run.folder
    dataset_meta, config = read_run_files(run)
    model = load_keras_model(model_path)
    channels = int(model.inputs[0].shape[-1])
    metadata_writer.check_labels(dataset_meta["labels"], int(model.outputs[0].shape[-1]))
    metadata_writer.input_normalization(
        dataset_meta["normalization"]["mean"], dataset_meta["normalization"]["std"], channels, "float32"
    )
    out = Path(export.out) if export.out else default_out(run_dir)
    folder = output.target(out)  # where a symbolic link --out points: that folder is replaced, the link kept
    fingerprint = run.fingerprint()
    output.check_out(folder, model_path, fingerprint, export.overwrite)
    run_settings = dataclasses.asdict(config)  # what the data spec of a run from before dataset.json's "spec" reads
    images_needed = max(export.calibration, export.finetune_images or 0, TRAIN_IMAGES)
    dataset = run_dataset(dataset_meta, run_settings, export.limit, images_needed, run_dir)
    test_pixels, y_test = (a[: export.limit] for a in dataset.splits["test"])
    x_test = dataset.normalize(test_pixels)
    train_images, train_labels = dataset.splits["train"]
    rng = np.random.default_rng(config.seed)
    picked = rng.choice(len(train_images), min(export.calibration, len(train_images)), replace=False)
    calibration_pixels = np.concatenate([train_images[np.sort(picked)], black_and_white(train_images.shape[1:])])
    calibration_images = dataset.normalize(calibration_pixels)
    tuning = np.sort(
        rng.permutation(len(train_images))[: export.finetune_images]
    )  # all classes, even for sorted folders

    fold = export.input_color == "rgb" and channels == 1
    mean, std = dataset_meta["normalization"]["mean"], dataset_meta["normalization"]["std"]
    # one mean/std for all channels (MediaPipe, q = pixel): per-channel statistics fold into the first layer
    shared = share_normalization(grey_to_rgb(model) if fold else model, mean, std)
    trained = TrainedModel(model.name, int(model.count_params()), dataset_meta, dataset.name, config.seed, channels)
    keras_predicted = model.predict(x_test, batch_size=512, verbose=0).argmax(axis=1)
    report = {
        "model": model.name,
        "parameters": trained.parameters,
        "dataset": dataset.name,
        "source": str(model_path),
        "run_fingerprint": fingerprint,
        "test_images": int(len(x_test)),
        "input": input_description(dataset_meta["input_shape"], trained.color(fold), fold)
        + normalization_description(shared),
        "keras": {"accuracy": round(100 * float((keras_predicted == y_test).mean()), 2)},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "variants": {},
    }
    staging = output.stage(folder)
    try:
        writer = VariantWriter(
            staging,
            trained,
            TestSet(test_pixels, y_test, keras_predicted),
            calibration_pixels,
            shared,
            kerascnn_version(),
            _log,
        )
        for quant in export.quants:
            preset = PRESETS[quant]
            _log(f"{quant}: converting ({preset.description})")
            images = model_space(calibration_pixels, fold, shared.mean, shared.std) if preset.calibrated else None
            writer.write(
                Variant(quant, f"{model.name}_{quant}", quant, preset.calibrated, fold),
                convert(shared.model, preset, images),
            )
        if export.qat_epochs or export.prune_sparsity:
            tuning_set = (dataset.normalize(train_images[tuning]), train_labels[tuning], x_test[:64])
            _optimized_rows(
                writer,
                model,
                tuning_set,
                calibration_images,
                export.qat_epochs,
                export.prune_sparsity,
                export.prune_epochs,
            )
        report["variants"] = writer.rows
        _log(f"timing {len(writer.models)} variants at batch 1 ({export.latency_rounds} interleaved rounds)")
        latencies = reports.median_latency_ms(writer.models, writer.first_inputs, rounds=export.latency_rounds)
        for row_name, row in report["variants"].items():
            row["latency_ms"] = latencies[row_name]
        if export.mediapipe:
            python, script = reports.edge_tools(export.edge_python, export.mediapipe_check)
            files = run_test_files(dataset_meta, run_settings, export.limit)
            reports.add_mediapipe(
                report, staging, test_pixels, y_test, log=_log, python=python, script=script, test_files=files
            )
        if export.tflm_images:
            python, _ = reports.edge_tools(export.edge_python)
            test_images = dataset.splits["test"][0][: min(len(y_test), export.tflm_images)]
            checked = microcontrollers.add_to_report(
                report, staging, test_images, y_test[: len(test_images)], export.mcu_ram, log=_log, python=python
            )
            for row_name, entry in checked.items():
                path = staging / Path(report["variants"][row_name]["file"]).with_suffix(output.MANIFEST_SUFFIX)
                manifest = manifests.with_tflm(json.loads(path.read_text()), entry)
                atomic_write(path, manifests.to_json(manifest))
        atomic_write(staging / output.REPORT_JSON, reports.to_json(report))
        atomic_write(staging / output.REPORT_MD, reports.markdown(report))
        output.commit(staging, folder, export.overwrite)
    finally:
        output.discard(staging)
    _log(f"wrote {len(writer.models)} variants and the report to {out}")
    return report


def black_and_white(shape) -> np.ndarray:
    """An all-black and an all-white image (uint8, `shape`): calibrated with the training images, they make the
    integer input span every pixel value 0..255, so a uint8 input takes the raw pixels (q = pixel) even when the
    training images never reach black or white (most photos)."""
    return np.stack([np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)])


def kerascnn_version() -> str:
    import kerascnn

    return kerascnn.__version__


def _check_backend() -> None:
    """Raises unless Keras runs on TensorFlow: the TFLite converter traces TensorFlow graphs."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"The export runs on the TensorFlow backend (the TFLite converter traces TensorFlow graphs), "
            f"but Keras is on {keras.backend.backend()!r}: run it with KERAS_BACKEND=tensorflow. "
            "Models trained on any backend export."
        )


def _optimized_rows(
    writer: VariantWriter,
    model,
    tuning_set,
    calibration_images,
    qat_epochs: int,
    prune_sparsity: float,
    prune_epochs: int,
) -> None:
    """The tfmot rows: "int8 (QAT)", "pruned S", "pruned S + QAT", each fine-tuned from a fresh twin of `model` on
    `tuning_set` (normalized images, labels, and the images the twin is checked on); they keep the trained channels
    and the run's own normalization (the twin has no equivalent of the normalization fold).
    """
    from kerascnn import optimize

    images, labels, check_images = tuning_set
    name = model.name
    if qat_epochs:
        _log(f"int8 (QAT): {_epochs(qat_epochs)} of quantization-aware training on {len(images):,} images")
        qat = optimize.quantization_aware(optimize.to_tf_keras(model, check_images), images, labels, qat_epochs)
        writer.write(
            Variant(
                "int8 (QAT)", f"{name}_int8_qat", "int8", False, False, {"qat_epochs": qat_epochs}, shared_input=False
            ),
            convert(qat, "int8", quantization_aware=True),
        )
    if prune_sparsity:
        label = f"pruned {prune_sparsity:.0%}"
        _log(f"{label}: {_epochs(prune_epochs)} of magnitude pruning on {len(images):,} images")
        pruned = optimize.prune(optimize.to_tf_keras(model, check_images), images, labels, prune_sparsity, prune_epochs)
        settings = {
            "prune_epochs": prune_epochs,
            "target_sparsity": prune_sparsity,
            "sparsity_per_layer": optimize.sparsity_per_layer(pruned),
        }
        stem = f"{name}_pruned{round(100 * prune_sparsity)}"
        writer.write(
            Variant(label, f"{stem}_int8", "int8", True, False, settings, shared_input=False),
            convert(pruned, "int8", calibration_images),
        )
        if qat_epochs:
            _log(f"{label} + QAT: {_epochs(qat_epochs)} of pruning-preserving QAT")
            both = optimize.quantization_aware(pruned, images, labels, qat_epochs, preserve_sparsity=True)
            settings = {"prune_epochs": prune_epochs, "qat_epochs": qat_epochs, "target_sparsity": prune_sparsity}
            writer.write(
                Variant(f"{label} + QAT", f"{stem}_qat_int8", "int8", False, False, settings, shared_input=False),
                convert(both, "int8", quantization_aware=True),
            )
