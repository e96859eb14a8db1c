# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""The quantization report: for each exported variant, size, accuracy, agreement with Keras, per-class
accuracy change, latency at 1 thread and at all cores, and the op list."""

from __future__ import annotations

import gzip
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from kerascnn.export.audit import op_counts
from kerascnn.export.edge import (  # noqa: F401  (callers and tests read them as report.X)
    EDGE_PYTHON_VARIABLE,
    MEDIAPIPE_CHECK_VARIABLE,
    MEDIAPIPE_MODULE,
    NOT_MEASURED,
    edge_tools,
    run_edge_tool,
)
from kerascnn.export.runner import TFLiteClassifier
from kerascnn.export.tflite_file import TFLiteFile
from kerascnn.export.tflm import markdown_section


def weight_sparsity(tflite_model: bytes | TFLiteFile) -> float | None:
    """Fraction of exact zeros among the constant filters of CONV_2D and FULLY_CONNECTED ops (what magnitude
    pruning zeroes); None when no filter is stored as a constant (float16 models dequantize them at load)."""
    opened = TFLiteFile.of(tflite_model)
    interpreter = opened.interpreter
    zeros = total = 0
    for op in opened.raw_ops:
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
            try:
                weights = interpreter.get_tensor(op["inputs"][1])
            except ValueError:  # not a constant tensor
                continue
            zeros, total = zeros + int((weights == 0).sum()), total + weights.size
    return round(zeros / total, 4) if total else None


def per_class_change(predicted, keras_predicted, y_test, labels) -> dict[str, float]:
    """Per class: the exported model's accuracy minus the Keras model's, in points (negative = the export is worse),
    over the test images of that class."""
    per_class = {}
    for index, label in enumerate(labels):
        mask = y_test == index
        if mask.any():
            ours, theirs = (predicted[mask] == index).mean(), (keras_predicted[mask] == index).mean()
            per_class[label] = round(100 * float(ours - theirs), 2)
    return per_class


def accuracy_row(
    tflite_model: bytes, x_test, y_test, keras_predicted, labels, opened: TFLiteFile | None = None
) -> dict:
    """Accuracy, top-1 agreement with the Keras model and per-class accuracy change, on the test images; size,
    gzip size, weight sparsity and op counts of the file.

    Args:
        opened: the same graph already opened (the exporter's `TFLiteFile` of the variant), read instead of opening
            `tflite_model` again for the sparsity and the op counts.
    """
    opened = opened or TFLiteFile(tflite_model)
    predicted = TFLiteClassifier(tflite_model).predict(x_test).argmax(axis=1)
    per_class = per_class_change(predicted, keras_predicted, y_test, labels)
    return {
        "size_bytes": len(tflite_model),
        "gzip_bytes": len(gzip.compress(tflite_model, 9)),
        "weight_sparsity": weight_sparsity(opened),
        "accuracy": round(100 * float((predicted == y_test).mean()), 2),
        "agreement_with_keras": round(100 * float((predicted == keras_predicted).mean()), 2),
        "per_class_accuracy_change_points": per_class,
        "ops": op_counts(opened),
    }


def median_latency_ms(
    variants: dict[str, bytes],
    images: np.ndarray | dict[str, np.ndarray],
    rounds: int = 7,
    runs: int = 30,
    threads: tuple[int, ...] | None = None,
) -> dict[str, dict[str, float]]:
    """Median milliseconds per image at batch 1, per variant and thread count, over interleaved rounds
    (every round times every variant once, in rotating order, so machine noise hits all alike).

    `images`: one (1, H, W, C) image for all variants, or one per variant name (inputs of other shapes)."""
    threads = threads or tuple(sorted({1, os.cpu_count() or 1}))
    image_of = images if isinstance(images, dict) else {name: images for name in variants}
    runners = {(name, t): TFLiteClassifier(model, num_threads=t) for name, model in variants.items() for t in threads}
    for (name, _), runner in runners.items():
        runner(image_of[name])  # allocate and warm up
    samples = {key: [] for key in runners}
    keys = list(runners)
    for round_index in range(rounds):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            start = time.perf_counter()
            for _ in range(runs):
                runners[key](image_of[key[0]])
            samples[key].append(1000 * (time.perf_counter() - start) / runs)
    return {
        name: {f"{t}_thread{'s' if t > 1 else ''}": round(statistics.median(samples[(name, t)]), 4) for t in threads}
        for name in variants
    }


def add_mediapipe(
    report: dict,
    out: Path,
    images: np.ndarray,
    labels: np.ndarray,
    log=print,
    python: str | os.PathLike | None = None,
    script: str | os.PathLike | None = None,
    timeout: int = 1800,
    test_files: list[tuple[str, int]] | None = None,
) -> None:
    """Runs kerascnn-check-mediapipe in the edge environment on every variant in `out` and adds a "mediapipe"
    entry to each row (accuracy and ms per image, or why MediaPipe refused it); with no edge environment,
    report["mediapipe"] says so and the rows are left as they are.

    Args:
        images: the test images as uint8 pixels (N, H, W, C), the same ones the rows were evaluated on.
        labels: their class indices.
        python, script: the edge Python and check_mediapipe.py (default: `edge_tools()`).
        test_files: the same test images as (file path, class index), for folder runs: each supported row's
            "mediapipe" entry then gets "files", the accuracy of each client given the files at their original size
            (predict.py, MediaPipe full-size, MediaPipe pre-resized with the training filter; check_mediapipe.py
            --files).
    """
    python, script = edge_tools(python, script)
    if not (python.exists() and (script is None or script.exists())):
        report["mediapipe"] = NOT_MEASURED
        return
    files = {name: Path(out) / row["file"] for name, row in report["variants"].items()}
    log(f"MediaPipe Tasks ImageClassifier on {len(files)} variants, {len(images):,} images ({python})")
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "test.npz", images=images, labels=labels)
        extra = []
        if test_files:
            (Path(tmp) / "files.json").write_text(json.dumps([[str(p), int(label)] for p, label in test_files]))
            extra = ["--files", str(Path(tmp) / "files.json")]
        tool = ["-m", MEDIAPIPE_MODULE] if script is None else [str(script)]
        command = [str(python), *tool, "--data", str(Path(tmp) / "test.npz"), *extra, *map(str, files.values())]
        result, error = run_edge_tool(command, timeout)
    if error is not None:
        report["mediapipe"] = f"failed: {error}"
        return
    report["mediapipe"] = f"mediapipe {result['mediapipe']}"
    for name, checked in zip(files, result["results"]):
        report["variants"][name]["mediapipe"] = {
            **checked["mediapipe"],
            "ai_edge_litert_accuracy": checked["ai_edge_litert"]["accuracy"],
            **({"top1_agreement": checked["top1_agreement"]} if "top1_agreement" in checked else {}),
            **({"files": checked["files"]} if "files" in checked else {}),
        }


def _mediapipe_cells(row: dict) -> list[str]:
    checked = row.get("mediapipe")
    if checked is None:
        return ["-", "-"]
    if not checked["supported"]:
        return ["refused", "-"]
    return [f"{checked['accuracy']:.2f}", f"{checked['ms_per_image']:.3f}"]


def markdown(report: dict) -> str:
    keras_row = report["keras"]
    threads = list(next(iter(report["variants"].values()))["latency_ms"])
    lines = [
        f"# Quantization report: {report['model']} on {report['dataset']} ({report['test_images']:,} test images)",
        "",
        f"Keras model: {keras_row['accuracy']:.2f} % test accuracy. {report.get('input', '')}",
        "",
        "| variant | size (KB) | gzip (KB) | zero weights (%) | accuracy (%) | change (points) | "
        "top-1 agreement (%) | worst class change | "
        + " | ".join(f"latency {t.replace('_', ' ')} (ms)" for t in threads)
        + " | MediaPipe accuracy (%) | MediaPipe latency (ms) |",
        "|---" * (10 + len(threads)) + "|",
    ]
    for name, row in report["variants"].items():
        worst = min(row["per_class_accuracy_change_points"].items(), key=lambda kv: kv[1])
        zeros = "-" if row.get("weight_sparsity") is None else f"{100 * row['weight_sparsity']:.1f}"
        lines.append(
            f"| {name} | {row['size_bytes'] / 1000:.1f} | {row['gzip_bytes'] / 1000:.1f} | {zeros} | "
            f"{row['accuracy']:.2f} | {row['accuracy'] - keras_row['accuracy']:+.2f} | "
            f"{row['agreement_with_keras']:.2f} | {worst[0]} {worst[1]:+.2f} | "
            + " | ".join(f"{row['latency_ms'][t]:.3f}" for t in threads)
            + " | "
            + " | ".join(_mediapipe_cells(row))
            + " |"
        )
    lines += [
        "",
        "Latency: median per image at batch 1 over interleaved rounds, ai-edge-litert with its default "
        f"XNNPACK delegate, on {report['machine']}. Zero weights: share of exact zeros in the CONV_2D and "
        "FULLY_CONNECTED filters (what pruning zeroes; gzip shows what it saves on disk).",
        "",
        "MediaPipe: MediaPipe Tasks' Python ImageClassifier on the same test images given as 8-bit RGB, "
        "labels and normalization from the model's metadata (`python -m kerascnn_edge.check_mediapipe` in .venv-edge); "
        "latency: median classify() call with its own pre-processing. " + _mediapipe_note(report),
        "",
    ]
    lines += _files_section(report)
    pruned = {name: row for name, row in report["variants"].items() if row.get("sparsity_per_layer")}
    for name, row in pruned.items():
        lines += [
            f"## Sparsity per layer ({name}, target {row['target_sparsity']:.0%})",
            "",
            ", ".join(f"{layer} {value:.0%}" for layer, value in row["sparsity_per_layer"].items()),
            "",
        ]
    lines += markdown_section(report)
    lines += ["## Ops", ""]
    for name, row in report["variants"].items():
        lines.append(f"- {name}: " + ", ".join(f"{op} x{n}" for op, n in row["ops"].items()))
    return "\n".join(lines) + "\n"


def _files_section(report: dict) -> list[str]:
    """The clients given the test images as files at their original size (folder runs with MediaPipe measured)."""
    rows = {
        name: row["mediapipe"]["files"]
        for name, row in report["variants"].items()
        if "files" in row.get("mediapipe", {})
    }
    if not rows:
        return []
    cell = lambda v: f"{v:.2f}" if isinstance(v, (int, float)) else "refused"  # noqa: E731
    lines = [
        "## The test images as files, at their original size",
        "",
        "Each client given the test photos as an app would (upright: EXIF orientation applied): predict.py "
        "(ai-edge-litert, resizes as training did), MediaPipe given the full-size image (it resizes with its own "
        "filter), MediaPipe given the image pre-resized by the app with the training filter (Pillow's antialiased "
        "bilinear, predict.py's `load_pixels`). Accuracy in %.",
        "",
        "| variant | images | predict.py | MediaPipe full-size | MediaPipe pre-resized |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['images']:,} | {cell(row['predict_py'])} | {cell(row['mediapipe_full_size'])} | "
            f"{cell(row['mediapipe_pre_resized'])} |"
        )
    return lines + [""]


def _mediapipe_note(report: dict) -> str:
    status = report.get("mediapipe", NOT_MEASURED)
    if not status.startswith("mediapipe "):
        return f"MediaPipe: {status}."
    refused = {
        row["mediapipe"]["error"]
        for row in report["variants"].values()
        if "mediapipe" in row and not row["mediapipe"]["supported"]
    }
    return f"Measured with {status}." + "".join(f" Refused: {error}" for error in sorted(refused))


def to_json(report: dict) -> str:
    return json.dumps(report, indent=1)
