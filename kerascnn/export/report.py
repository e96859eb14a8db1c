"""The quantization report: for each exported variant, size, accuracy, agreement with Keras, per-class
accuracy change, latency at 1 thread and at all cores, and the op list."""

from __future__ import annotations

import gzip
import json
import os
import statistics
import time

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


def accuracy_row(tflite_model: bytes, x_test, y_test, keras_predicted, labels) -> dict:
    """Accuracy, top-1 agreement with the Keras model and per-class accuracy change, on the test images."""
    predicted = TFLiteClassifier(tflite_model).predict(x_test).argmax(axis=1)
    per_class = {}
    for index, label in enumerate(labels):
        mask = y_test == index
        if mask.any():
            ours, theirs = (predicted[mask] == index).mean(), (keras_predicted[mask] == index).mean()
            per_class[label] = round(100 * float(ours - theirs), 2)
    return {
        "size_bytes": len(tflite_model),
        "gzip_bytes": len(gzip.compress(tflite_model, 9)),
        "weight_sparsity": weight_sparsity(tflite_model),
        "accuracy": round(100 * float((predicted == y_test).mean()), 2),
        "agreement_with_keras": round(100 * float((predicted == keras_predicted).mean()), 2),
        "per_class_accuracy_change_points": per_class,
        "ops": op_counts(tflite_model),
    }


def median_latency_ms(variants: dict[str, bytes], image: np.ndarray, rounds: int = 7, runs: int = 30,
                      threads: tuple[int, ...] | None = None) -> dict[str, dict[str, float]]:
    """Median milliseconds per image at batch 1, per variant and thread count, over interleaved rounds
    (every round times every variant once, in rotating order, so machine noise hits all alike)."""
    threads = threads or tuple(sorted({1, os.cpu_count() or 1}))
    runners = {(name, t): TFLiteClassifier(model, num_threads=t) for name, model in variants.items() for t in threads}
    for runner in runners.values():
        runner(image)  # allocate and warm up
    samples = {key: [] for key in runners}
    keys = list(runners)
    for round_index in range(rounds):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            start = time.perf_counter()
            for _ in range(runs):
                runners[key](image)
            samples[key].append(1000 * (time.perf_counter() - start) / runs)
    return {name: {f"{t}_thread{'s' if t > 1 else ''}": round(statistics.median(samples[(name, t)]), 4)
                   for t in threads} for name in variants}


def markdown(report: dict) -> str:
    keras_row = report["keras"]
    threads = list(next(iter(report["variants"].values()))["latency_ms"])
    lines = [f"# Quantization report: {report['model']} on {report['dataset']} ({report['test_images']:,} test images)",
             "", f"Keras model: {keras_row['accuracy']:.2f} % test accuracy.", "",
             "| variant | size (KB) | gzip (KB) | zero weights (%) | accuracy (%) | change (points) | "
             "top-1 agreement (%) | worst class change | "
             + " | ".join(f"latency {t.replace('_', ' ')} (ms)" for t in threads) + " |",
             "|---" * (8 + len(threads)) + "|"]
    for name, row in report["variants"].items():
        worst = min(row["per_class_accuracy_change_points"].items(), key=lambda kv: kv[1])
        zeros = "-" if row.get("weight_sparsity") is None else f"{100 * row['weight_sparsity']:.1f}"
        lines.append(f"| {name} | {row['size_bytes'] / 1000:.1f} | {row['gzip_bytes'] / 1000:.1f} | {zeros} | "
                     f"{row['accuracy']:.2f} | {row['accuracy'] - keras_row['accuracy']:+.2f} | "
                     f"{row['agreement_with_keras']:.2f} | {worst[0]} {worst[1]:+.2f} | "
                     + " | ".join(f"{row['latency_ms'][t]:.3f}" for t in threads) + " |")
    lines += ["", "Latency: median per image at batch 1 over interleaved rounds, ai-edge-litert with its default "
              f"XNNPACK delegate, on {report['machine']}. Zero weights: share of exact zeros in the CONV_2D and "
              "FULLY_CONNECTED filters (what pruning zeroes; gzip shows what it saves on disk).", ""]
    pruned = {name: row for name, row in report["variants"].items() if row.get("sparsity_per_layer")}
    for name, row in pruned.items():
        lines += [f"## Sparsity per layer ({name}, target {row['target_sparsity']:.0%})", "",
                  ", ".join(f"{layer} {value:.0%}" for layer, value in row["sparsity_per_layer"].items()), ""]
    lines += ["## Ops", ""]
    for name, row in report["variants"].items():
        lines.append(f"- {name}: " + ", ".join(f"{op} x{n}" for op, n in row["ops"].items()))
    return "\n".join(lines) + "\n"


def to_json(report: dict) -> str:
    return json.dumps(report, indent=1)
