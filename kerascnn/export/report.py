"""The quantization report: for each exported variant, size, accuracy, agreement with Keras, per-class
accuracy change, latency at 1 thread and at all cores, and the op list."""

from __future__ import annotations

import gzip
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from kerascnn.export.audit import op_counts
from kerascnn.export.runner import TFLiteClassifier


def weight_sparsity(tflite_model: bytes) -> float | None:
    """Fraction of exact zeros among the constant filters of CONV_2D and FULLY_CONNECTED ops (what magnitude
    pruning zeroes); None when no filter is stored as a constant (float16 models dequantize them at load)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_model)
    zeros = total = 0
    for op in interpreter._get_ops_details():
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


def accuracy_row(tflite_model: bytes, x_test, y_test, keras_predicted, labels) -> dict:
    """Accuracy, top-1 agreement with the Keras model and per-class accuracy change, on the test images."""
    predicted = TFLiteClassifier(tflite_model).predict(x_test).argmax(axis=1)
    per_class = per_class_change(predicted, keras_predicted, y_test, labels)
    return {
        "size_bytes": len(tflite_model),
        "gzip_bytes": len(gzip.compress(tflite_model, 9)),
        "weight_sparsity": weight_sparsity(tflite_model),
        "accuracy": round(100 * float((predicted == y_test).mean()), 2),
        "agreement_with_keras": round(100 * float((predicted == keras_predicted).mean()), 2),
        "per_class_accuracy_change_points": per_class,
        "ops": op_counts(tflite_model),
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


ROOT = Path(__file__).resolve().parents[2]
EDGE_PYTHON = ROOT / ".venv-edge" / "bin" / "python"
CHECK_MEDIAPIPE = ROOT / "export" / "check_mediapipe.py"
NOT_MEASURED = "not measured (no .venv-edge: python export/edge_venv.py builds it)"


def add_mediapipe(
    report: dict,
    out: Path,
    images: np.ndarray,
    labels: np.ndarray,
    log=print,
    python: Path = EDGE_PYTHON,
    timeout: int = 1800,
) -> None:
    """Runs export/check_mediapipe.py in the edge environment on every variant in `out` and adds a "mediapipe"
    entry to each row (accuracy and ms per image, or why MediaPipe refused it); with no edge environment,
    report["mediapipe"] says so and the rows are left as they are.

    Args:
        images: the test images as uint8 pixels (N, H, W, C), the same ones the rows were evaluated on.
        labels: their class indices.
    """
    if not (Path(python).exists() and CHECK_MEDIAPIPE.exists()):
        report["mediapipe"] = NOT_MEASURED
        return
    files = {name: Path(out) / row["file"] for name, row in report["variants"].items()}
    log(f"MediaPipe Tasks ImageClassifier on {len(files)} variants, {len(images):,} images ({python})")
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "test.npz", images=images, labels=labels)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(
            [str(python), str(CHECK_MEDIAPIPE), "--data", str(Path(tmp) / "test.npz"), *map(str, files.values())],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    if done.returncode:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        report["mediapipe"] = f"failed: {last}"
        return
    result = json.loads(done.stdout)
    report["mediapipe"] = f"mediapipe {result['mediapipe']}"
    for name, checked in zip(files, result["results"]):
        report["variants"][name]["mediapipe"] = {
            **checked["mediapipe"],
            "ai_edge_litert_accuracy": checked["ai_edge_litert"]["accuracy"],
            **({"top1_agreement": checked["top1_agreement"]} if "top1_agreement" in checked else {}),
        }


CHECK_TFLM = ROOT / "export" / "tflm" / "check.py"
TFLM_IMAGES = 1000  # test images the TFLM check runs by default (reference kernels: ~0.1 s per image on x86)
INTEGER_INPUTS = ("int8", "uint8")


def parse_size(text: str) -> int:
    """Bytes from "131072", "128K", "128KB", "128KiB", "0.5M" (K = 1,024 bytes, M = 1,024 K): --mcu-ram. The same
    rule as export/tflm/check.py's parse_size, which gets the bytes.

    Raises:
        ValueError: not a positive size.
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)(?:i?B)?\s*", text)
    if not found:
        raise ValueError(f"{text!r} is not a size: give bytes or K/M, e.g. 131072, 128K or 0.5M")
    value = float(found.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[found.group(2).lower()]
    if value < 1:
        raise ValueError(f"{text!r} is not a positive size")
    return int(value)


def add_tflm(
    report: dict,
    out: Path,
    images: np.ndarray,
    labels: np.ndarray,
    mcu_ram: int | None = None,
    log=print,
    python: Path = EDGE_PYTHON,
    timeout: int = 3600,
) -> dict[str, dict]:
    """Runs export/tflm/check.py (TensorFlow Lite Micro) in the edge environment on every variant in `out` with an
    integer input (int8-io, uint8: what a microcontroller feeds from a camera's bytes) and adds a "tflm" entry to
    each row: flash and arena bytes, the board-class sentences, TFLM's accuracy and top-1 agreement with
    ai-edge-litert on `images`, ms per image. Returns {variant: check.py's whole result}; with no edge environment,
    or no tflite-micro in it, report["tflm"] says so and nothing is added.

    Args:
        images: test images as uint8 pixels (N, H, W, C); labels: their class indices.
        mcu_ram: bytes of SRAM to say the fit for (--mcu-ram), besides the 256 KB and 512 KB board classes.
    """
    rows = {name: row for name, row in report["variants"].items() if _input_dtype(Path(out) / row["file"])}
    if not (Path(python).exists() and CHECK_TFLM.exists()):
        report["tflm"] = NOT_MEASURED
        return {}
    if not rows:
        report["tflm"] = "not measured (no variant with an integer input: export int8-io or uint8)"
        return {}
    log(f"TensorFlow Lite Micro on {len(rows)} variants, {len(images):,} images ({python})")
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "test.npz", images=images, labels=labels)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        command = [str(python), str(CHECK_TFLM), "--data", str(Path(tmp) / "test.npz")]
        command += [] if mcu_ram is None else ["--mcu-ram", str(mcu_ram)]
        done = subprocess.run(
            [*command, *(str(Path(out) / row["file"]) for row in rows.values())],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    if done.returncode:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        report["tflm"] = f"not measured: {last}"
        return {}
    result = json.loads(done.stdout)
    report["tflm"] = f"tflite-micro {result['tflite_micro']}, {result['kernels']}"
    checked = {name: {**entry, "tflite_micro": result["tflite_micro"]} for name, entry in zip(rows, result["results"])}
    for name, entry in checked.items():
        keys = ("supported", "error", "flash_bytes", "strippable_bytes", "arena_bytes", "arena_bytes_with_margin")
        keys += ("boards", "mcu_ram", "images", "accuracy", "top1_agreement", "identical_outputs")
        keys += ("ms_per_image", "cpu_ms_per_image")
        report["variants"][name]["tflm"] = {key: entry[key] for key in keys if key in entry}
        if "xnnpack" in entry:
            report["variants"][name]["tflm"]["top1_agreement_xnnpack"] = entry["xnnpack"]["top1_agreement"]
    return checked


def _input_dtype(model_path: Path) -> str | None:
    """The integer input dtype ("int8", "uint8") of the model beside this manifest, or None (a float input)."""
    try:
        dtype = json.loads(model_path.with_suffix(".json").read_text())["input"]["dtype"]
    except (OSError, ValueError, KeyError):
        return None
    return dtype if dtype in INTEGER_INPUTS else None


def tflm_markdown(report: dict) -> list[str]:
    """The report's microcontroller section: per integer variant, flash and arena bytes and TFLM's results, then
    whether it fits each board class (and --mcu-ram)."""
    rows = {name: row["tflm"] for name, row in report["variants"].items() if "tflm" in row}
    status = report.get("tflm")
    if not rows:
        return [f"TensorFlow Lite Micro: {status}.", ""] if status else []
    lines = [
        "## Microcontrollers (TensorFlow Lite Micro)",
        "",
        "| variant | flash (bytes) | of it metadata (bytes) | arena (bytes) | arena + margin (bytes) | "
        "TFLM accuracy (%) | top-1 = ai-edge-litert builtin (%) | top-1 = XNNPACK (%) | "
        "ms per image (TFLM, x86: wall / CPU) |",
        "|---" * 9 + "|",
    ]
    for name, row in rows.items():
        if not row.get("supported"):
            lines.append(f"| {name} | {row['flash_bytes']:,} | refused: {row.get('error', '')} |" + " |" * 6)
            continue
        measured = [f"{row[key]:.2f}" if key in row else "-" for key in ("accuracy", "top1_agreement")]
        measured.append(f"{row['top1_agreement_xnnpack']:.2f}" if "top1_agreement_xnnpack" in row else "-")
        timed = "ms_per_image" in row
        measured.append(f"{row['ms_per_image']:.1f} / {row['cpu_ms_per_image']:.1f}" if timed else "-")
        lines.append(
            f"| {name} | {row['flash_bytes']:,} | {row['strippable_bytes']:,} | "
            f"{row['arena_bytes']:,} | {row['arena_bytes_with_margin']:,} | " + " | ".join(measured) + " |"
        )
    images = max(row.get("images", 0) for row in rows.values())
    lines += [
        "",
        f"Measured with {status} on {report['machine']}, first {images:,} test images. "
        "Flash: the whole .tflite (the model stays in flash; metadata and the appended labels.txt are what a "
        "firmware could strip, TFLM reads neither). Arena: the least tensor arena the model ran in "
        "(bisection over arena_size); with a margin of 20 % for optimized kernels' scratch buffers, the size "
        "export/tflm/check.py --c-out puts in model_data.h. Agreement: TFLM's top-1 against ai-edge-litert with "
        "its builtin kernels (the same integer arithmetic) and with its default XNNPACK delegate (rounds "
        "differently by a few output steps). Time: median invoke(), TFLM's reference kernels on this host, not a "
        "board (wall-clock, and CPU time, which a loaded machine inflates less). In the sentences below KB = 1,024 "
        "bytes.",
        "",
    ]
    for name, row in rows.items():
        for fit in row.get("boards", []) + ([row["mcu_ram"]] if "mcu_ram" in row else []):
            lines.append(f"- {name}, {fit['sentence']}")
    return lines + [""]


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
        "labels and normalization from the model's metadata (export/check_mediapipe.py in .venv-edge); "
        "latency: median classify() call with its own pre-processing. " + _mediapipe_note(report),
        "",
    ]
    pruned = {name: row for name, row in report["variants"].items() if row.get("sparsity_per_layer")}
    for name, row in pruned.items():
        lines += [
            f"## Sparsity per layer ({name}, target {row['target_sparsity']:.0%})",
            "",
            ", ".join(f"{layer} {value:.0%}" for layer, value in row["sparsity_per_layer"].items()),
            "",
        ]
    lines += tflm_markdown(report)
    lines += ["## Ops", ""]
    for name, row in report["variants"].items():
        lines.append(f"- {name}: " + ", ".join(f"{op} x{n}" for op, n in row["ops"].items()))
    return "\n".join(lines) + "\n"


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
