"""The site's diagrams, drawn with matplotlib at build time (docs/conf.py calls `draw_all`) into docs/_generated/.

run_directory.png: what `python -m kerascnn.train` writes and what `python -m kerascnn.export` makes of it, and where
each exported variant runs. The file names come from kerascnn.rundir and the presets from kerascnn.export.presets'
data, so the picture follows the code.
"""

from pathlib import Path

RUN_FILES = [
    ("config.yaml", "every setting, resolved (--resume reads it)"),
    ("dataset.json", "labels, normalization, data spec"),
    ("labels.txt", "one class name a line"),
    ("metrics.json", "history, test accuracy (best and last)"),
    ("best.keras", "the run's model (--keep best|last)"),
    ("last.keras", "the last epoch"),
    ("checkpoint/", "epoch-NNNN.keras + state.json"),
    ("tb/", "TensorBoard: curves, confusion matrix, CAMs"),
]

RUNTIMES = {
    "float32": "MediaPipe, predict.py, GPU delegate",
    "float16": "MediaPipe, predict.py",
    "dynamic": "MediaPipe, predict.py",
    "int8": "MediaPipe, predict.py",
    "int8-io": "predict.py, TFLM (microcontrollers)",
    "uint8": "MediaPipe (phone, Pi, browser), TFLM",
}


def draw_run_directory(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from kerascnn.export.presets import PRESETS

    fig, ax = plt.subplots(figsize=(13, 5.4), dpi=110)
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 5.4)
    ax.axis("off")

    def box(x, y, w, h, colour):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=colour, ec="#555555", lw=1))

    box(0.2, 0.3, 5.0, 4.6, "#eef4fb")
    ax.text(0.4, 4.55, "runs/quick/", weight="bold", fontsize=10.5, family="monospace")
    ax.text(2.0, 4.58, "python -m kerascnn.train --out runs/quick", fontsize=8.5, style="italic")
    for i, (name, what) in enumerate(RUN_FILES):
        y = 4.15 - i * 0.5
        ax.text(0.5, y, name, family="monospace", fontsize=9.5, weight="bold")
        ax.text(2.0, y, what, fontsize=8.5, color="#333333")

    box(6.0, 0.3, 6.7, 4.6, "#f3f8ee")
    ax.text(6.2, 4.55, "export/fashion_mnist/", weight="bold", fontsize=10.5, family="monospace")
    ax.text(9.15, 4.58, "python -m kerascnn.export runs/quick --quant all", fontsize=8.5, style="italic")
    for i, name in enumerate(PRESETS):
        y = 4.15 - i * 0.5
        ax.text(6.3, y, f"vgg_{name}.tflite + .json", family="monospace", fontsize=9, weight="bold")
        ax.text(9.15, y, RUNTIMES.get(name, ""), fontsize=8.5, color="#333333")
    y = 4.15 - len(PRESETS) * 0.5
    ax.text(6.3, y, "report.md, report.json", family="monospace", fontsize=9, weight="bold")
    ax.text(9.15, y, "size, accuracy, agreement, latency, ops", fontsize=8.5, color="#333333")

    ax.add_patch(FancyArrowPatch((5.25, 2.6), (5.95, 2.6), arrowstyle="-|>", mutation_scale=18, color="#555555"))
    ax.text(5.6, 2.75, "best.keras\n+ dataset.json", ha="center", va="bottom", fontsize=7.5)
    ax.text(
        6.3,
        0.45,
        "each .tflite carries its labels and normalization (TFLite metadata);\nthe .json beside it is its manifest",
        fontsize=8,
        style="italic",
    )
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def draw_all(folder: Path) -> None:
    """Draws every diagram into `folder` (created), replacing older files."""
    folder.mkdir(exist_ok=True)
    draw_run_directory(folder / "run_directory.png")
