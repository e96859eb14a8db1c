# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""The quantization report's microcontroller part: `python -m kerascnn_edge.tflm.check` (TensorFlow Lite Micro,
in the edge environment) on the integer-input variants, its rows and the report's "Microcontrollers" section (flash
and arena bytes, whether each board class and --mcu-ram fit, TFLM's accuracy and agreement with ai-edge-litert)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from kerascnn.export.edge import NOT_MEASURED, edge_tools, run_edge_tool
from kerascnn_edge.files import parse_size  # noqa: F401  (--mcu-ram: the edge check's rule, one definition)

CHECK_TFLM = "kerascnn_edge.tflm.check"  # run as `python -m` in the edge environment, where it is installed
TFLM_IMAGES = 1000  # test images the TFLM check runs by default (reference kernels: ~0.1 s per image on x86)
INTEGER_INPUTS = ("int8", "uint8")


def add_to_report(
    report: dict,
    out: Path,
    images: np.ndarray,
    labels: np.ndarray,
    mcu_ram: int | None = None,
    log=print,
    python: str | os.PathLike | None = None,
    timeout: int = 3600,
) -> dict[str, dict]:
    """Runs kerascnn_edge.tflm.check (TensorFlow Lite Micro) in the edge environment on every variant in `out` with an
    integer input (int8-io, uint8: what a microcontroller feeds from a camera's bytes) and adds a "tflm" entry to
    each row: flash and arena bytes, the board-class sentences, TFLM's accuracy and top-1 agreement with
    ai-edge-litert on `images`, ms per image. Returns {variant: check.py's whole result}; with no edge environment,
    or no tflite-micro in it, report["tflm"] says so and nothing is added.

    Args:
        images: test images as uint8 pixels (N, H, W, C); labels: their class indices.
        mcu_ram: bytes of SRAM to say the fit for (--mcu-ram), besides the 256 KB and 512 KB board classes.
        python: the edge environment's Python (default: `edge_tools()`, as for the MediaPipe columns).
    """
    python = edge_tools(python)[0]
    rows = {name: row for name, row in report["variants"].items() if _input_dtype(Path(out) / row["file"])}
    if not Path(python).exists():
        report["tflm"] = NOT_MEASURED
        return {}
    if not rows:
        report["tflm"] = "not measured (no variant with an integer input: export int8-io or uint8)"
        return {}
    log(f"TensorFlow Lite Micro on {len(rows)} variants, {len(images):,} images ({python})")
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "test.npz", images=images, labels=labels)
        command = [str(python), "-m", CHECK_TFLM, "--data", str(Path(tmp) / "test.npz")]
        command += [] if mcu_ram is None else ["--mcu-ram", str(mcu_ram)]
        result, error = run_edge_tool([*command, *(str(Path(out) / row["file"]) for row in rows.values())], timeout)
    if error is not None:
        report["tflm"] = f"not measured: {error}"
        return {}
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


def markdown_section(report: dict) -> list[str]:
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
        "TFLM accuracy (%) | top-1 = ai-edge-litert reference (%) | top-1 = XNNPACK (%) | "
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
        "kerascnn-check-tflm --c-out puts in model_data.h. Agreement: TFLM's top-1 against ai-edge-litert with "
        "TFLite's reference kernels (the same integer arithmetic) and with its default XNNPACK delegate (rounds "
        "differently by a few output steps). Time: median invoke(), TFLM's reference kernels on this host, not a "
        "board (wall-clock, and CPU time, which a loaded machine inflates less). In the sentences below KB = 1,024 "
        "bytes.",
        "",
    ]
    for name, row in rows.items():
        for fit in row.get("boards", []) + ([row["mcu_ram"]] if "mcu_ram" in row else []):
            lines.append(f"- {name}, {fit['sentence']}")
    return lines + [""]
