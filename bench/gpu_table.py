"""The table of bench/gpu.sh: one row per run in its output folder (plain Keras's SUMMARY json, kerascnn's
metrics.json), with the wall time gpu.sh measured from each command's start.

    python3 bench/gpu_table.py OUT_DIR
"""

import json
import statistics
import sys
from pathlib import Path

from kerascnn import rundir
from kerascnn.rundir import Run


def walls(out: Path) -> dict:
    """{run name: seconds from the command's start to its end} from gpu.sh's summary.txt."""
    rows = {}
    for line in (out / "summary.txt").read_text().splitlines():
        parts = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
        if "wall_s" in parts:
            rows[line.split()[0]] = (float(parts["wall_s"]), parts.get("rc"))
    return rows


def kerascnn_row(name: str, metrics: dict, wall: float, target: float) -> list:
    """kerascnn tests once, after the last epoch: its time to the target is the whole run's, if the test accuracy
    reaches it."""
    epochs = metrics.get("epoch_seconds_this_session") or []
    median = statistics.median(epochs[1:]) if len(epochs) > 1 else None
    accuracy = metrics.get("test_accuracy_last", metrics.get("test_accuracy"))
    return [
        f"kerascnn --preset {name.removesuffix('-warm')}" + (" (warm cache)" if name.endswith("-warm") else ""),
        metrics.get("parameters"),
        len(metrics.get("history", [])),
        f"{wall:.1f}" if accuracy is not None and accuracy >= target else f"not reached ({wall:.1f} s in all)",
        f"{median:.2f}" if median is not None else "-",
        f"{epochs[0] - median:.1f}" if median is not None else "-",
        f"{100 * accuracy:.2f} %" if accuracy is not None else "-",
    ]


def kerasref_row(summary: dict, wall: float) -> list:
    reached = summary.get("hit_wall_s")
    return [
        "plain Keras 3, JAX (kerasref.py)",
        summary.get("params"),
        summary.get("epochs"),
        f"{reached:.1f}" if reached else f"not reached ({wall:.1f} s in all)",
        f"{summary['median_epoch_s_after_1']:.2f}",
        f"{summary['first_epoch_s'] - summary['median_epoch_s_after_1']:.1f}",
        f"{100 * summary['final_acc']:.2f} %",
    ]


def table(out: Path, target: float = 0.94) -> str:
    rows, times = [], walls(out)
    if (out / "kerasref.json").exists():
        summary = json.loads((out / "kerasref.json").read_text().splitlines()[-1])
        rows.append(kerasref_row(summary, times.get("kerasref", (float("nan"), None))[0]))
    for name, (wall, rc) in times.items():
        run = Run(out / name)
        if name != "kerasref" and run.path(rundir.METRICS).exists():
            rows.append(kerascnn_row(name, run.metrics(), wall, target))
        elif name != "kerasref":
            rows.append([name, "-", "-", f"failed (rc={rc})", "-", "-", "-"])
    head = [
        "run",
        "parameters",
        "epochs",
        f"s from start to {100 * target:.0f} % test",
        "median epoch s",
        "compile s (first epoch - median)",
        "test accuracy",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
