# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""python -m kerascnn.export: convert a trained run to TFLite (builtin ops only), audit and report.

Examples:
    python -m kerascnn.export runs/quick                          # float32 and int8, into runs/quick/export
    python -m kerascnn.export runs/quick --quant all --out export/fashion_mnist
    python -m kerascnn.export runs/mobilenet/last.keras --quant int8-io --calibration 1000
    python -m kerascnn.export runs/quick --qat-epochs 2 --prune-sparsity 0.5    # + QAT and pruning rows
    python -m kerascnn.export runs/mobilenet --quant int8-io uint8 --mcu-ram 128K  # does it fit 128 KB of SRAM?
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kerascnn import cli
from kerascnn.export.presets import PRESETS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kerascnn.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", help="run directory of kerascnn.train (uses best.keras) or a .keras file in one")
    parser.add_argument(
        "--quant",
        nargs="+",
        default=["float32", "int8"],
        choices=[*PRESETS, "all"],
        help="; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()),
    )
    parser.add_argument(
        "--calibration",
        type=int,
        default=500,
        help="seeded random training images for int8 calibration, plus a black and a white one (default 500)",
    )
    parser.add_argument(
        "--out",
        help="output folder (default RUN/export); a folder holding other files than an earlier export of this run "
        "is refused (see --overwrite)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an --out that holds other files: same-named files are replaced, the others kept",
    )
    parser.add_argument("--limit", type=int, help="evaluate on the first N >= 1 test images only (default all)")
    parser.add_argument(
        "--input-color",
        choices=["rgb", "native"],
        default="rgb",
        help="rgb: a grey-trained model takes RGB images, the luminance folded into its first "
        "convolution (what MediaPipe and phone cameras need); native: the trained channels "
        "(default rgb)",
    )
    parser.add_argument(
        "--no-mediapipe",
        action="store_true",
        help="skip the report's MediaPipe columns (measured only when the edge environment exists)",
    )
    parser.add_argument(
        "--edge-python",
        help="the edge environment's Python for the MediaPipe columns (default: $KERASCNN_EDGE_PYTHON, else "
        ".venv-edge/bin/python of the repository checkout)",
    )
    parser.add_argument(
        "--mediapipe-check",
        help="a MediaPipe-check script to run instead of the edge Python's installed kerascnn-check-mediapipe "
        "(default: $KERASCNN_MEDIAPIPE_CHECK)",
    )
    mcu = parser.add_argument_group("microcontrollers (TensorFlow Lite Micro, kerascnn-check-tflm in .venv-edge)")
    mcu.add_argument(
        "--tflm-images",
        type=int,
        default=1000,
        help="run the int8-io and uint8 variants in TFLM on the first N test images for the report's "
        "microcontroller section (arena, flash, accuracy); 0 skips it (default 1000)",
    )
    mcu.add_argument(
        "--mcu-ram",
        help="also say whether each integer variant's arena fits this much SRAM and by how much it does not, "
        "e.g. 128K or 131072 (default: only the 256 KB and 512 KB board classes)",
    )
    tuning = parser.add_argument_group("QAT and pruning (tensorflow-model-optimization, on a tf_keras twin)")
    tuning.add_argument(
        "--qat-epochs", type=int, default=0, help="epochs of quantization-aware training: adds the 'int8 (QAT)' row"
    )
    tuning.add_argument(
        "--prune-sparsity",
        type=float,
        default=0.0,
        help="fraction of Conv2D/Dense weights to zero, e.g. 0.5: adds 'pruned S' (and "
        "'pruned S + QAT' with --qat-epochs)",
    )
    tuning.add_argument("--prune-epochs", type=int, default=2, help="epochs of fine-tuning while pruning")
    tuning.add_argument(
        "--finetune-images", type=int, help="fine-tune on a seeded random subset of N training images (default all)"
    )
    cli.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    quants = list(PRESETS) if "all" in args.quant else list(dict.fromkeys(args.quant))
    for flag, value in (
        ("--limit", args.limit),
        ("--calibration", args.calibration),
        ("--finetune-images", args.finetune_images),
    ):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    if args.tflm_images < 0:
        parser.error(f"--tflm-images must be 0 (skip) or more, got {args.tflm_images}")
    mcu_ram = None
    if args.mcu_ram is not None:
        from kerascnn.export.tflm import parse_size

        try:
            mcu_ram = parse_size(args.mcu_ram)
        except ValueError as error:
            parser.error(f"--mcu-ram: {error}")
    from kerascnn.export.exporter import export_run
    from kerascnn.export.report import markdown

    try:
        report = export_run(
            args.source,
            quants,
            args.calibration,
            args.out,
            args.limit,
            qat_epochs=args.qat_epochs,
            prune_sparsity=args.prune_sparsity,
            prune_epochs=args.prune_epochs,
            finetune_images=args.finetune_images,
            input_color=args.input_color,
            mediapipe=not args.no_mediapipe,
            tflm_images=args.tflm_images,
            mcu_ram=mcu_ram,
            overwrite=args.overwrite,
            edge_python=args.edge_python,
            mediapipe_check=args.mediapipe_check,
        )
    except cli.USER_ERRORS as error:  # the same convention as kerascnn.train: one line, exit 2
        return cli.user_error(error)
    except KeyboardInterrupt:  # the staging folder is gone; `out` was never touched before the last rename
        source = Path(args.source)
        out = args.out or (source.parent if source.suffix == ".keras" else source) / "export"
        return cli.interrupted(
            f"the export was stopped before it finished: nothing was written, {out} is as it was (an earlier "
            "export there is kept); run the same command again to export."
        )
    print(markdown(report))
    return 0


if __name__ == "__main__":
    cli.hide_library_logs(sys.argv[1:])
    sys.exit(main())
