"""Export a trained run: convert each preset, audit it, write it with its manifest, and report on it."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

from kerascnn.export import manifest as manifests
from kerascnn.export import report as reports
from kerascnn.export.audit import audit
from kerascnn.export.converter import QUANT_PRESETS, convert


def _atomic_write(path: Path, data: bytes | str) -> None:
    """Writes a temp file beside `path`, then renames it over `path`: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def load_keras_model(model_path: Path):
    import keras

    import kerascnn  # noqa: F401  (registers the layers)

    try:
        return keras.saving.load_model(model_path)
    except Exception as error:  # zip, h5, json and registration errors all land here
        raise ValueError(f"Cannot load {model_path} as a Keras model ({type(error).__name__}: {error}). Is it a "
                         ".keras file saved by kerascnn?") from error


def export_run(source, quants=("float32", "int8"), calibration: int = 500, out: str | os.PathLike | None = None,
               limit: int | None = None, latency_rounds: int = 7) -> dict:
    """Exports `source` under each preset in `quants` into `out` and returns the report (also written
    as report.json and report.md)."""
    import yaml

    from kerascnn.data import load_dataset

    unknown = [q for q in quants if q not in QUANT_PRESETS]
    if unknown:
        raise ValueError(f"Unknown quantization {', '.join(unknown)}. Valid: {', '.join(QUANT_PRESETS)}, all.")
    model_path, run_dir = locate_run(source)
    model = load_keras_model(model_path)
    dataset_meta = json.loads((run_dir / "dataset.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    dataset = load_dataset(config["dataset"], config.get("data_dir"), config["validation_fraction"], config["seed"])
    x_test, y_test = (a[:limit] for a in dataset.splits["test"])
    x_test = dataset.normalize(x_test)
    train_images = dataset.splits["train"][0]
    picked = np.random.default_rng(config["seed"]).choice(len(train_images), min(calibration, len(train_images)),
                                                          replace=False)
    calibration_images = dataset.normalize(train_images[np.sort(picked)])

    name = model.name
    out = Path(out or Path("export") / run_dir.name)
    out.mkdir(parents=True, exist_ok=True)
    keras_predicted = model.predict(x_test, batch_size=512, verbose=0).argmax(axis=1)
    report = {"model": name, "parameters": int(model.count_params()), "dataset": dataset.name,
              "source": str(model_path), "test_images": int(len(x_test)),
              "keras": {"accuracy": round(100 * float((keras_predicted == y_test).mean()), 2)},
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "variants": {}}
    variants = {}
    for quant in quants:
        uses_calibration = quant in ("int8", "int8-io")
        tflite_model = convert(model, quant, calibration_images if uses_calibration else None)
        audit(tflite_model, quant)
        stem = f"{name}_{quant}"
        manifest = manifests.build_manifest(
            tflite_model, name=name, parameters=model.count_params(), dataset=dataset_meta, quant=quant,
            seed=config["seed"], calibration=calibration_images if uses_calibration else None)
        _atomic_write(out / f"{stem}.tflite", tflite_model)
        _atomic_write(out / f"{stem}.json", manifests.to_json(manifest))
        variants[quant] = tflite_model
        report["variants"][quant] = {"file": f"{stem}.tflite",
                                     **reports.accuracy_row(tflite_model, x_test, y_test, keras_predicted,
                                                            dataset.labels)}
    latencies = reports.median_latency_ms(variants, x_test[:1], rounds=latency_rounds)
    for quant, row in report["variants"].items():
        row["latency_ms"] = latencies[quant]
    _atomic_write(out / "report.json", reports.to_json(report))
    _atomic_write(out / "report.md", reports.markdown(report))
    return report
