# TensorFlow side of the export (kerascnn/export/): the export settings, declared once
"""What an export depends on besides the run: one `ExportConfig`, each field a setting (`kerascnn.settings`) whose help
is its documentation and `python -m kerascnn.export --help`. Checked once, in `ExportConfig.check`."""

from __future__ import annotations

import dataclasses
import os

from kerascnn.export.presets import PRESETS
from kerascnn.export.tflm import TFLM_IMAGES
from kerascnn.settings import SettingError, document, setting

MCU = "microcontrollers (TensorFlow Lite Micro, kerascnn-check-tflm in .venv-edge)"
TUNING = "QAT and pruning (tensorflow-model-optimization, on a tf_keras twin)"
# the command line's groups of flags, in order, with their descriptions (None: the top level)
GROUPS = {None: None, MCU: None, TUNING: None}


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """How to export a run (`kerascnn.export.export_run`).

    Example:
        >>> config = ExportConfig(quants=("int8-io",), calibration=1000).check()
    """

    quants: tuple[str, ...] = setting(
        ("float32", "int8"),
        help="; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()),
        flag="--quant",
        nargs="+",
        choices=[*PRESETS, "all"],
    )
    calibration: int = setting(
        500,
        help="seeded random training images for int8 calibration, plus a black and a white one (default 500)",
        type=int,
    )
    out: str | os.PathLike | None = setting(
        None,
        help="output folder (default RUN/export); a folder holding other files than an earlier export of this run "
        "is refused (see --overwrite)",
    )
    overwrite: bool = setting(
        False,
        help="write into an --out that holds other files: same-named files are replaced, the others kept",
        action="store_true",
    )
    limit: int | None = setting(None, help="evaluate on the first N >= 1 test images only (default all)", type=int)
    input_color: str = setting(
        "rgb",
        help="rgb: a grey-trained model takes RGB images, the luminance folded into its first "
        "convolution (what MediaPipe and phone cameras need); native: the trained channels "
        "(default rgb)",
        choices=["rgb", "native"],
    )
    mediapipe: bool = setting(
        True,
        help="skip the report's MediaPipe columns (measured only when the edge environment exists)",
        flag="--no-mediapipe",
        action="store_false",
    )
    edge_python: str | os.PathLike | None = setting(
        None,
        help="the edge environment's Python for the MediaPipe columns (default: $KERASCNN_EDGE_PYTHON, else "
        ".venv-edge/bin/python of the repository checkout)",
    )
    mediapipe_check: str | os.PathLike | None = setting(
        None,
        help="a MediaPipe-check script to run instead of the edge Python's installed kerascnn-check-mediapipe "
        "(default: $KERASCNN_MEDIAPIPE_CHECK)",
    )
    tflm_images: int = setting(
        TFLM_IMAGES,
        help="run the int8-io and uint8 variants in TFLM on the first N test images for the report's "
        "microcontroller section (arena, flash, accuracy); 0 skips it (default 1000)",
        group=MCU,
        type=int,
    )
    # bytes; the command line reads "128K" or "131072" (kerascnn_edge.files.parse_size)
    mcu_ram: int | None = setting(
        None,
        help="also say whether each integer variant's arena fits this much SRAM and by how much it does not, "
        "e.g. 128K or 131072 (default: only the 256 KB and 512 KB board classes)",
        group=MCU,
    )
    qat_epochs: int = setting(
        0, help="epochs of quantization-aware training: adds the 'int8 (QAT)' row", group=TUNING, type=int
    )
    prune_sparsity: float = setting(
        0.0,
        help="fraction of Conv2D/Dense weights to zero, e.g. 0.5: adds 'pruned S' (and "
        "'pruned S + QAT' with --qat-epochs)",
        group=TUNING,
        type=float,
    )
    prune_epochs: int = setting(2, help="epochs of fine-tuning while pruning", group=TUNING, type=int)
    finetune_images: int | None = setting(
        None, help="fine-tune on a seeded random subset of N training images (default all)", group=TUNING, type=int
    )
    latency_rounds: int = setting(7, help="interleaved rounds of the batch-1 latency timing", flag=False)

    def __post_init__(self):
        quants = tuple(self.quants)
        object.__setattr__(self, "quants", tuple(PRESETS) if "all" in quants else tuple(dict.fromkeys(quants)))

    def check(self) -> ExportConfig:
        """Returns the config, or raises SettingError naming the setting and what it received."""
        unknown = [q.replace("{", "{{").replace("}", "}}") for q in self.quants if q not in PRESETS]
        checks = [
            (unknown, f"Unknown quantization {', '.join(unknown)}. Valid: {', '.join(PRESETS)}, all."),
            (
                not 0.0 <= self.prune_sparsity < 1.0,
                "prune_sparsity must be in [0, 1), e.g. 0.5. Received: {prune_sparsity}.",
            ),
            (
                self.limit is not None and self.limit < 1,
                "{limit:name} must be at least 1 test image (or left out for all). Received: {limit:value}.",
            ),
            (
                self.calibration < 1,
                "{calibration:name} must be at least 1 image (500 is a good default). Received: {calibration:value}.",
            ),
            (
                self.finetune_images is not None and self.finetune_images < 1,
                "{finetune_images:name} must be at least 1 (or left out for all). Received: {finetune_images:value}.",
            ),
            (self.tflm_images < 0, "{tflm_images:name} must be 0 (skip) or more. Received: {tflm_images:value}."),
            (
                self.input_color not in ("rgb", "native"),
                "{input_color:name} must be 'rgb' or 'native'. Received: {input_color:value}.",
            ),
        ]
        for failed, template in checks:
            if failed:
                raise SettingError(ExportConfig, template, **vars(self))
        return self


document(ExportConfig)  # each field's help into the API reference
