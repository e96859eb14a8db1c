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

from kerascnn import cli, settings
from kerascnn.export.config import GROUPS, ExportConfig
from kerascnn.settings import SettingError


def parser() -> argparse.ArgumentParser:
    """The CLI's flags: the run, then one flag per ExportConfig field (its `setting` declares the flag, help, group
    and default)."""
    p = argparse.ArgumentParser(
        prog="python -m kerascnn.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("source", help="run directory of kerascnn.train (uses best.keras) or a .keras file in one")
    settings.add_arguments(p, ExportConfig, GROUPS, defaults=True)
    cli.add_verbose_flag(p)
    return p


def main(argv=None) -> int:
    parser_ = parser()
    args = vars(parser_.parse_args(argv))
    source = args.pop("source")
    args.pop("verbose")
    # the command line's own words for a count below 1 (a usage error); every other check is ExportConfig.check's
    for flag, value in (
        ("--limit", args["limit"]),
        ("--calibration", args["calibration"]),
        ("--finetune-images", args["finetune_images"]),
    ):
        if value is not None and value < 1:
            parser_.error(f"{flag} must be at least 1, got {value}")
    if args["mcu_ram"] is not None:
        from kerascnn.export.tflm import parse_size

        try:
            args["mcu_ram"] = parse_size(args["mcu_ram"])
        except ValueError as error:
            parser_.error(f"--mcu-ram: {error}")
    try:
        config = ExportConfig(**args).check()
    except SettingError as error:  # one line, exit 2, the setting named by its flag: as kerascnn.train does
        return cli.user_error(error)
    from kerascnn.export.exporter import export_run
    from kerascnn.export.report import markdown

    try:
        report = export_run(source, config)
    except cli.USER_ERRORS as error:  # the same convention as kerascnn.train: one line, exit 2
        return cli.user_error(error)
    except KeyboardInterrupt:  # the staging folder is gone; `out` was never touched before the last rename
        source = Path(source)
        out = args["out"] or (source.parent if source.suffix == ".keras" else source) / "export"
        return cli.interrupted(
            f"the export was stopped before it finished: nothing was written, {out} is as it was (an earlier "
            "export there is kept); run the same command again to export."
        )
    print(markdown(report))
    return 0


if __name__ == "__main__":
    cli.hide_library_logs(sys.argv[1:])
    sys.exit(main())
