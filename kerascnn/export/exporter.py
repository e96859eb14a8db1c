"""Export a trained run: convert each preset, audit it, write it with its manifest, and report on it."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from kerascnn.export import manifest as manifests
from kerascnn.export import report as reports
from kerascnn.export.audit import audit
from kerascnn.export.converter import convert
from kerascnn.export.presets import PRESETS
from kerascnn.rundir import atomic_write


def locate_run(source: str | os.PathLike) -> tuple[Path, Path]:
    """(model file, run directory) for a run directory (its best.keras) or a .keras file inside one."""
    source = Path(source)
    model_path = source / "best.keras" if source.is_dir() else source
    run_dir = model_path.parent
    if not model_path.exists():
        raise FileNotFoundError(f"No model at {model_path}. Give a run directory of kerascnn.train or a .keras file.")
    if model_path.suffix != ".keras":
        raise ValueError(f"{model_path} is not a .keras file.")
    for needed in ("dataset.json", "config.yaml"):
        if not (run_dir / needed).exists():
            raise FileNotFoundError(f"{run_dir / needed} is missing: the export needs the labels, normalization and "
                                    "dataset of the run that trained the model (written by kerascnn.train).")
    return model_path, run_dir


def read_run_files(run_dir: Path) -> tuple[dict, dict]:
    """(dataset.json, config.yaml) of a run: labels and normalization, and how its data was loaded."""
    import yaml

    try:
        dataset_meta = json.loads((run_dir / "dataset.json").read_text())
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        dataset_meta["labels"], dataset_meta["normalization"], config["dataset"], config["seed"]
    except (ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        raise ValueError(f"{run_dir} has a damaged dataset.json or config.yaml ({type(error).__name__}: {error}); "
                         "they are written by kerascnn.train.") from error
    return dataset_meta, config


def check_same_data(now: dict, at_training: dict, run_dir: Path) -> None:
    """Raises if the data loaded now differs from the data the run trained on (an image folder that changed):
    the manifest's labels and normalization would then not match the calibration and the evaluation."""
    same = (now["labels"] == at_training["labels"] and list(now["input_shape"]) == list(at_training["input_shape"])
            and all(np.allclose(now["normalization"][key], at_training["normalization"][key], rtol=1e-3, atol=1e-3)
                    for key in ("mean", "std")))
    if not same:
        raise ValueError(f"The dataset changed since {run_dir} was trained (labels, image shape or normalization "
                         "differ from its dataset.json): export from the data the model was trained on.")


def load_keras_model(model_path: Path):
    import keras

    import kerascnn  # noqa: F401  (registers the layers)

    try:
        return keras.saving.load_model(model_path)
    except Exception as error:  # zip, h5, json and registration errors all land here
        raise ValueError(f"Cannot load {model_path} as a Keras model ({type(error).__name__}: {error}). Is it a "
                         ".keras file saved by kerascnn?") from error


def _log(message: str) -> None:
    print(f"[kerascnn.export] {message}", file=sys.stderr, flush=True)


def _epochs(count: int) -> str:
    return f"{count} epoch{'s' if count != 1 else ''}"


def export_run(source, quants=("float32", "int8"), calibration: int = 500, out: str | os.PathLike | None = None,
               limit: int | None = None, latency_rounds: int = 7, qat_epochs: int = 0,
               prune_sparsity: float = 0.0, prune_epochs: int = 2, finetune_images: int | None = None) -> dict:
    """Exports `source` under each preset in `quants` into `out` and returns the report (also written
    as report.json and report.md).

    With `qat_epochs` > 0 the report adds "int8 (QAT)": quantization-aware fine-tuning of the model's tf_keras
    twin (kerascnn.optimize). With `prune_sparsity` S > 0 it adds "pruned S" (magnitude pruning over
    `prune_epochs`, then int8 with calibration) and, with `qat_epochs` too, "pruned S + QAT"
    (pruning-preserving QAT). Fine-tuning uses a seeded random `finetune_images` of the training images (all by
    default).
    """
    from kerascnn.data import load_dataset

    unknown = [q for q in quants if q not in PRESETS]
    if unknown:
        raise ValueError(f"Unknown quantization {', '.join(unknown)}. Valid: {', '.join(PRESETS)}, all.")
    if not 0.0 <= prune_sparsity < 1.0:
        raise ValueError(f"prune_sparsity must be in [0, 1), e.g. 0.5. Received: prune_sparsity={prune_sparsity}.")
    model_path, run_dir = locate_run(source)
    model = load_keras_model(model_path)
    dataset_meta, config = read_run_files(run_dir)
    dataset = load_dataset(config["dataset"], config.get("data_dir"), config["validation_fraction"], config["seed"])
    check_same_data(dataset.metadata(), dataset_meta, run_dir)
    x_test, y_test = (a[:limit] for a in dataset.splits["test"])
    x_test = dataset.normalize(x_test)
    train_images, train_labels = dataset.splits["train"]
    if calibration < 1:
        raise ValueError(f"--calibration must be at least 1 image (500 is a good default). Received: {calibration}.")
    rng = np.random.default_rng(config["seed"])
    picked = rng.choice(len(train_images), min(calibration, len(train_images)), replace=False)
    calibration_images = dataset.normalize(train_images[np.sort(picked)])
    tuning = np.sort(rng.permutation(len(train_images))[:finetune_images])  # all classes, even for sorted folders

    name = model.name
    out = Path(out or Path("export") / run_dir.name)
    out.mkdir(parents=True, exist_ok=True)
    keras_predicted = model.predict(x_test, batch_size=512, verbose=0).argmax(axis=1)
    report = {"model": name, "parameters": int(model.count_params()), "dataset": dataset.name,
              "source": str(model_path), "test_images": int(len(x_test)),
              "keras": {"accuracy": round(100 * float((keras_predicted == y_test).mean()), 2)},
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "variants": {}}
    variants = {}

    def add(row_name: str, stem: str, tflite_model: bytes, quant: str, calibrated: bool, **extra):
        audit(tflite_model, quant)
        manifest = manifests.build_manifest(
            tflite_model, name=name, parameters=model.count_params(), dataset=dataset_meta, quant=quant,
            seed=config["seed"], calibration=calibration_images if calibrated else None)
        manifest["converter"].update(extra)
        atomic_write(out / f"{stem}.tflite", tflite_model)
        atomic_write(out / f"{stem}.json", manifests.to_json(manifest))
        _log(f"{row_name}: wrote {out / stem}.tflite ({len(tflite_model) / 1000:.1f} KB); evaluating on "
             f"{len(x_test):,} test images")
        variants[row_name] = tflite_model
        report["variants"][row_name] = {"file": f"{stem}.tflite", **extra,
                                        **reports.accuracy_row(tflite_model, x_test, y_test, keras_predicted,
                                                               dataset.labels)}

    for quant in quants:
        calibrated = PRESETS[quant].calibrated
        _log(f"{quant}: converting ({PRESETS[quant].description})")
        add(quant, f"{name}_{quant}", convert(model, quant, calibration_images if calibrated else None), quant,
            calibrated)
    if qat_epochs or prune_sparsity:
        _optimized_rows(add, model, dataset, train_images[tuning], train_labels[tuning],
                        calibration_images, x_test[:64], name, qat_epochs, prune_sparsity, prune_epochs)

    _log(f"timing {len(variants)} variants at batch 1 ({latency_rounds} interleaved rounds)")
    latencies = reports.median_latency_ms(variants, x_test[:1], rounds=latency_rounds)
    for row_name, row in report["variants"].items():
        row["latency_ms"] = latencies[row_name]
    atomic_write(out / "report.json", reports.to_json(report))
    atomic_write(out / "report.md", reports.markdown(report))
    return report


def _optimized_rows(add, model, dataset, images, labels, calibration_images, check_images, name, qat_epochs,
                    prune_sparsity, prune_epochs):
    """The tfmot rows: "int8 (QAT)", "pruned S", "pruned S + QAT", each fine-tuned from a fresh twin."""
    from kerascnn import optimize

    images = dataset.normalize(images)
    if qat_epochs:
        _log(f"int8 (QAT): {_epochs(qat_epochs)} of quantization-aware training on {len(images):,} images")
        qat = optimize.quantization_aware(optimize.to_tf_keras(model, check_images), images, labels, qat_epochs)
        add("int8 (QAT)", f"{name}_int8_qat", convert(qat, "int8", quantization_aware=True), "int8", False,
            qat_epochs=qat_epochs)
    if prune_sparsity:
        label = f"pruned {prune_sparsity:.0%}"
        _log(f"{label}: {_epochs(prune_epochs)} of magnitude pruning on {len(images):,} images")
        pruned = optimize.prune(optimize.to_tf_keras(model, check_images), images, labels, prune_sparsity,
                                prune_epochs)
        sparsity = optimize.sparsity_per_layer(pruned)
        stem = f"{name}_pruned{round(100 * prune_sparsity)}"
        add(label, f"{stem}_int8", convert(pruned, "int8", calibration_images), "int8", True,
            prune_epochs=prune_epochs, target_sparsity=prune_sparsity, sparsity_per_layer=sparsity)
        if qat_epochs:
            _log(f"{label} + QAT: {_epochs(qat_epochs)} of pruning-preserving QAT")
            both = optimize.quantization_aware(pruned, images, labels, qat_epochs, preserve_sparsity=True)
            add(f"{label} + QAT", f"{stem}_qat_int8", convert(both, "int8", quantization_aware=True), "int8", False,
                prune_epochs=prune_epochs, qat_epochs=qat_epochs, target_sparsity=prune_sparsity)
