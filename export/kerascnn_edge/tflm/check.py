#!/usr/bin/env python3
# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""Run kerascnn .tflite models in TensorFlow Lite Micro (TFLM) and say what a microcontroller needs for them: the
smallest tensor arena (SRAM), the flash size, the ops (checked against what TFLM registers), TFLM's top-1 accuracy
and its top-1 agreement with ai-edge-litert on the same input tensors; optionally the C++ files to flash.

ai-edge-litert runs twice: with TFLite's reference kernels (OpResolverType.BUILTIN_REF, the integer arithmetic
TFLM's reference kernels share: the outputs are expected to be the same bytes, 100 % top-1 agreement; LiteRT's
optimized builtin kernels already differ by one output step now and then) and with its default XNNPACK delegate (what
predict.py and phones run; it rounds differently by a few output steps, so a near tie can flip: each image where
its top-1 differs from TFLM's is listed with both top-2 scores).

Edge side: needs kerascnn-edge[tflm] (numpy, Pillow, ai-edge-litert, tflite-micro), never TensorFlow. TFLM's
Python interpreter runs the reference kernels a board compiles when it has no optimized ones, on this host's CPU:
its accuracy is a board's, its time per image is not (a board is slower; CMSIS-NN/ESP-NN kernels are faster).

    kerascnn-check-tflm --data test.npz fashion_mnist/vgg_int8-io.tflite fashion_mnist/vgg_uint8.tflite
    python -m kerascnn_edge.tflm.check --c-out firmware/ --mcu-ram 128K fashion_mnist/vgg_uint8.tflite

`--data`: an .npz with `images` (N, H, W) or (N, H, W, C) uint8 pixels and `labels` (N,) class indices (what
check_mediapipe.py reads); without it, no accuracy. Inputs are made as predict.py makes them, from the manifest
beside each model: (pixel - mean) / std, quantized with the input's scale and zero point (for uint8 that is the
pixel itself, for int8-io the pixel - 128). Prints one JSON object; `--c-out DIR` writes DIR/<model>/model_data.h
and model_data.cc. Exit 2 for bad input (a missing model, manifest or data file), naming it.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from kerascnn_edge import predict
from kerascnn_edge.files import KIB, EdgeError, check_labels, load_data, parse_size
from kerascnn_edge.tflm import arena as arenas
from kerascnn_edge.tflm import c_files
from kerascnn_edge.tflm import ops as tflm_ops

ARENA_MARGIN = 0.20  # kTensorArenaSize = measured * 1.2, rounded up to a KiB (see arena_with_margin)
# (SRAM in bytes, the board class as the report names it)
BOARDS = (
    (256 * KIB, "256 KB SRAM (e.g. Arduino Nano 33 BLE Sense, nRF52840 with 1 MB flash)"),
    (512 * KIB, "512 KB SRAM (e.g. ESP32-S3, 4-16 MB flash; Raspberry Pi Pico 2, RP2350 with 520 KB and 4 MB flash)"),
)


CheckError = EdgeError  # a problem with the user's files or flags; the message names it and what to do


def arena_with_margin(measured: int) -> int:
    """The arena to declare on a board: `measured` + 20 %, rounded up to a whole KiB. The measurement is TFLM's
    reference kernels on a 64-bit host; optimized kernels (CMSIS-NN, ESP-NN) ask for scratch buffers the reference
    ones don't, while a 32-bit board's smaller pointers shrink TFLM's own structs."""
    return math.ceil(measured * (1 + ARENA_MARGIN) / KIB) * KIB


def _kb(n: int) -> str:
    return f"{n / KIB:.1f} KB"


def fit(ram: int, arena: int, what: str) -> dict:
    """Whether an arena of `arena` bytes fits in `ram` bytes of SRAM, as a sentence ("KB" = 1,024 bytes)."""
    if arena <= ram:
        sentence = (
            f"{what}: fits; the arena ({_kb(arena)} with the margin) takes {100 * arena / ram:.0f} % of the SRAM, "
            f"leaving {_kb(ram - arena)} for the rest of the firmware (the model itself stays in flash)."
        )
    else:
        sentence = (
            f"{what}: does not fit; the arena needs {_kb(arena)} with the margin, {_kb(arena - ram)} "
            f"({arena - ram:,} bytes) more than its {_kb(ram)}."
        )
    return {"ram_bytes": ram, "fits": arena <= ram, "short_by_bytes": max(0, arena - ram), "sentence": sentence}


def budget(arena: int, mcu_ram: int | None = None) -> dict:
    """The board-class sentences (BOARDS) and, with `mcu_ram`, the one for that RAM, for an arena of `arena`
    bytes (with the margin)."""
    result = {"boards": [fit(ram, arena, name) for ram, name in BOARDS]}
    if mcu_ram is not None:
        result["mcu_ram"] = fit(mcu_ram, arena, f"--mcu-ram {_kb(mcu_ram)}")
    return result


def flash_parts(tflite_model: bytes) -> dict:
    """The .tflite's bytes, and how many of them are metadata a firmware could strip: the TFLite metadata buffers
    (MediaPipe's TFLITE_METADATA: labels, normalization; the converter's small entries) and the zip of associated
    files appended after the flatbuffer (labels.txt). TFLM reads none of them."""
    from tflite_micro.python.tflite_micro import runtime

    schema = runtime.schema_fb
    model = schema.Model.GetRootAs(bytearray(tflite_model), 0)
    metadata = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        metadata[entry.Name().decode()] = int(model.Buffers(entry.Buffer()).DataLength())
    try:
        with zipfile.ZipFile(io.BytesIO(tflite_model)) as archive:
            start = min(info.header_offset for info in archive.infolist())
            files = archive.namelist()
    except zipfile.BadZipFile:
        start, files = len(tflite_model), []
    appended = len(tflite_model) - start
    return {
        "flash_bytes": len(tflite_model),
        "metadata_bytes": metadata,
        "associated_files": files,
        "associated_files_bytes": appended,
        "strippable_bytes": appended + sum(metadata.values()),
    }


def input_tensors(pixels: np.ndarray, manifest: dict, details: dict) -> np.ndarray:
    """The model's input tensors for 8-bit pixels (N, H, W, C), as predict.py makes them: (pixel - mean) / std per
    channel, then, for an integer input, q = round(x / scale) + zero_point. Grey pixels are repeated into R = G = B
    for an RGB model.

    Raises:
        CheckError: the images are not the model's size.
    """
    _, height, width, channels = (int(n) for n in details["shape"])
    if pixels.shape[-1] == 1 and channels == 3:
        pixels = np.repeat(pixels, 3, axis=-1)
    if pixels.shape[1:] != (height, width, channels):
        raise CheckError(
            f"the --data images are {pixels.shape[1:]}, the model takes {(height, width, channels)}: give the "
            "test images of the dataset the model was trained on"
        )
    x = (pixels.astype(np.float32) - np.float32(manifest.mean)) / np.float32(manifest.std)
    if details["dtype"] == np.float32:
        return x
    quantization = details["quantization_parameters"]
    scale, zero_point = float(quantization["scales"][0]), int(quantization["zero_points"][0])
    return predict.quantize(x, scale, zero_point, details["dtype"])


def tensor_info(details: dict, pixel_offset: int | None = None) -> dict:
    """{"shape", "dtype", "scale", "zero_point"} of a TFLM tensor (scale 0 for a float one), and the manifest's
    pixel offset for an integer input."""
    quantization = details["quantization_parameters"]
    scales, zero_points = quantization["scales"], quantization["zero_points"]
    info = {
        "shape": [int(n) for n in details["shape"]],
        "dtype": np.dtype(details["dtype"]).name,
        "scale": float(scales[0]) if len(scales) else 0.0,
        "zero_point": int(zero_points[0]) if len(zero_points) else 0,
    }
    if pixel_offset is not None:
        info["pixel_offset"] = int(pixel_offset)
    return info


def run_tflm(interpreter, tensors: np.ndarray) -> tuple[np.ndarray, float, float]:
    """TFLM's outputs (N, classes) for the input tensors, and the median ms of one invoke(): wall-clock, and the
    process's CPU time (TFLM runs on one thread, so on a shared, loaded machine the CPU time is close to what the
    invoke takes on an idle one, while the wall-clock time includes the waits for a core)."""
    outputs, wall, cpu = [], [], []
    for tensor in tensors:
        interpreter.set_input(tensor[None], 0)
        start, start_cpu = time.perf_counter(), time.process_time()
        interpreter.invoke()
        wall.append(1000 * (time.perf_counter() - start))
        cpu.append(1000 * (time.process_time() - start_cpu))
        outputs.append(interpreter.get_output(0)[0].copy())
    return np.stack(outputs), statistics.median(wall), statistics.median(cpu)


def run_litert(tflite_model: bytes, tensors: np.ndarray, xnnpack: bool) -> np.ndarray:
    """ai-edge-litert's outputs (N, classes) for the same input tensors: with its default XNNPACK delegate (what
    predict.py and phones use), or with TFLite's reference kernels (the integer arithmetic TFLM's reference
    kernels share)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_REF
    interpreter = Interpreter(model_content=tflite_model, experimental_op_resolver_type=kind)
    interpreter.allocate_tensors()
    given, returned = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for tensor in tensors:
        interpreter.set_tensor(given["index"], tensor[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(returned["index"])[0].copy())
    return np.stack(outputs)


def _top2(scores: np.ndarray, names: list[str]) -> list:
    order = np.argsort(-scores.astype(np.float64), kind="stable")[:2]
    return [[names[i], scores[i].item()] for i in order]


def compare(tflm: np.ndarray, litert: np.ndarray, xnnpack: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Top-1 accuracy of TFLM and of ai-edge-litert (reference kernels; with XNNPACK), TFLM's top-1 agreement and
    share of identical outputs with each, and every image where TFLM's top-1 and XNNPACK's differ, with both top-2
    scores (argmax takes the first of tied classes)."""
    top = {name: out.argmax(axis=1) for name, out in (("tflm", tflm), ("litert", litert), ("xnnpack", xnnpack))}

    def same(other):
        difference = np.abs(tflm.astype(np.float64) - other.astype(np.float64)).max(axis=1)
        return round(100 * float((difference == 0).mean()), 2), float(difference.max())

    identical, largest = same(litert)
    identical_xnnpack, largest_xnnpack = same(xnnpack)
    return {
        "accuracy": round(100 * float((top["tflm"] == labels).mean()), 2),
        "ai_edge_litert_accuracy": round(100 * float((top["litert"] == labels).mean()), 2),
        "top1_agreement": round(100 * float((top["tflm"] == top["litert"]).mean()), 2),
        "identical_outputs": identical,
        "max_output_difference": largest,
        "xnnpack": {
            "accuracy": round(100 * float((top["xnnpack"] == labels).mean()), 2),
            "top1_agreement": round(100 * float((top["tflm"] == top["xnnpack"]).mean()), 2),
            "identical_outputs": identical_xnnpack,
            "max_output_difference": largest_xnnpack,
            "differences": [
                {
                    "image": int(i),
                    "label": names[labels[i]],
                    "tflm_top2": _top2(tflm[i], names),
                    "xnnpack_top2": _top2(xnnpack[i], names),
                }
                for i in np.flatnonzero(top["tflm"] != top["xnnpack"])
            ],
        },
    }


def check(
    model_path: Path,
    data: tuple[np.ndarray, np.ndarray] | None = None,
    mcu_ram: int | None = None,
    c_out: Path | None = None,
) -> dict:
    """The TFLM check of one model (see the module docstring); a model TFLM refuses gets "supported": false and
    TFLM's message.

    Raises:
        EdgeError: a missing model or manifest, images of another size, labels that are no class of the model.
    """
    manifest = predict.load_manifest(model_path, None)
    if data is not None:
        check_labels(data[1], manifest.labels, model_path)
    tflite_model = model_path.read_bytes()
    model_ops = tflm_ops.model_ops(tflite_model)
    row = {"model": str(model_path), "ops": model_ops, **flash_parts(tflite_model)}
    missing = tflm_ops.unsupported(model_ops)
    if missing:
        return {**row, "supported": False, "error": f"ops TFLM does not register: {', '.join(missing)}"}
    row["resolver"] = [tflm_ops.resolver_method(op) for op in model_ops]
    try:
        probe_interpreter = arenas.load(tflite_model, arenas.LARGEST)
        details = probe_interpreter.get_input_details(0)
        probe = np.zeros(details["shape"], details["dtype"])
        if data is not None:
            probe = input_tensors(data[0][:1], manifest, details)
        measured = arenas.smallest_arena(tflite_model, probe)
    except arenas.TFLMError as error:
        return {**row, "supported": False, "error": str(error)}
    interpreter = arenas.load(tflite_model, measured)
    expected = arenas.invoke(probe_interpreter, probe)
    if not np.array_equal(arenas.invoke(interpreter, probe), expected):
        raise arenas.TFLMError(f"{model_path}: the smallest arena gives other outputs than a large one")
    declared = arena_with_margin(measured)
    row.update(
        supported=True,
        input=tensor_info(details, manifest.pixel_offset),
        output=tensor_info(interpreter.get_output_details(0)),
        arena_bytes=measured,
        arena_allocations=arenas.allocations(interpreter),
        arena_bytes_with_margin=declared,
        **budget(declared, mcu_ram),
    )
    if data is not None:
        tensors = input_tensors(data[0], manifest, details)
        outputs, ms, cpu_ms = run_tflm(interpreter, tensors)
        litert, xnnpack = (run_litert(tflite_model, tensors, xnnpack=x) for x in (False, True))
        row.update(images=int(len(tensors)), **compare(outputs, litert, xnnpack, data[1], list(manifest.labels)))
        row["ms_per_image"], row["cpu_ms_per_image"] = round(ms, 3), round(cpu_ms, 3)
    if c_out is not None:
        written = c_files.write_c_files(
            c_out / model_path.stem,
            tflite_model,
            namespace=model_path.stem,
            arena_bytes=measured,
            arena_size=declared,
            methods=row["resolver"],
            labels=list(manifest.labels),
            input_info=row["input"],
            output_info=row["output"],
            source=model_path.name,
            tflite_micro=_version("tflite-micro"),
        )
        row["c_files"] = [str(path) for path in written]
    return row


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help=".npz with images (uint8) and labels (indices); default: none")
    parser.add_argument("--limit", type=int, help="use the first N >= 1 images of --data (default all)")
    parser.add_argument(
        "--mcu-ram", help="also say whether the arena fits this much SRAM, e.g. 128K or 262144 (default: none)"
    )
    parser.add_argument("--c-out", type=Path, help="write DIR/<model>/model_data.h and .cc (default: none)")
    parser.add_argument("models", nargs="+", type=Path, help=".tflite files, each with its manifest beside it")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    try:
        mcu_ram = None if args.mcu_ram is None else parse_size(args.mcu_ram)
    except ValueError as error:
        parser.error(f"--mcu-ram: {error}")
    stems = [path.stem for path in args.models]
    same = sorted({stem for stem in stems if stems.count(stem) > 1})
    if args.c_out is not None and same:  # DIR/<stem>/model_data.* of the first would be replaced by the second
        parser.error(
            f"--c-out {args.c_out}: {stems.count(same[0])} models are named {same[0]}.tflite, and each "
            f"writes {args.c_out / same[0]}/model_data.*: check them in separate runs with their own --c-out, or "
            "rename one"
        )
    try:
        from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    except ImportError as error:
        print(
            f"error: tflite-micro is not installed ({error}): pip install 'kerascnn-edge[tflm]' "
            "(its wheels are for Linux x86-64; run this check there)",
            file=sys.stderr,
        )
        return 2
    try:
        data = None if args.data is None else load_data(args.data, args.limit)
        results = [check(path, data, mcu_ram, args.c_out) for path in args.models]
    except EdgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 2
    report = {
        "tflite_micro": _version("tflite-micro"),
        "ai_edge_litert": _version("ai-edge-litert"),
        "kernels": "TFLM reference kernels on this host's CPU (not a board)",
        "results": results,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
