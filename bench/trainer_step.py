"""The real trainer's seconds per step, two source trees (or two sets of flags) side by side.

Each round runs `python -m kerascnn.train ... --epochs 2` once per side, rotating which goes first, and reads the
second epoch's ms/step from Keras's log line (the first holds tracing); the table gives each side's median and the
median and spread of the per-round ratios. This is the whole step `python -m kerascnn.train` takes, input pipeline
and callbacks included (bench/peer.py times the compiled step alone).

    # today's trainer and preset (a checkout of an older commit) against this tree's, on the quick preset:
    git worktree add /tmp/old <commit>
    .venv/bin/python bench/trainer_step.py --side old=/tmp/old: --side new=.: --rounds 3 -- --preset quick
    # one tree, two presets:  --side a=.:--preset quick --side b=.:--preset quick --model-options '{...}'

A side is NAME=TREE:EXTRA-FLAGS (TREE's kerascnn is imported, through PYTHONPATH); EXTRA-FLAGS may start with
environment settings, e.g. `--side eigen=.:TF_ENABLE_ONEDNN_OPTS=0`; the flags after `--` go to every side.
"""

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

STEP = re.compile(r"^\s*\d+/\d+ - [\d.]+s - ([\d.]+)(ms|s)/step", re.MULTILINE)


ENV_SETTING = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def step_seconds(tree: Path, flags: list[str], limit: int, settings: dict) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "kerascnn.train", *flags, "--epochs", "2", "--limit", str(limit)]
        command += ["--no-tensorboard", "--out", str(Path(out) / "run")]
        env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "TF_CPP_MIN_LOG_LEVEL": "2", **settings}
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{shlex.join(command)} (in {tree}) failed:\n{done.stderr[-3000:]}")
    steps = STEP.findall(done.stdout)
    if len(steps) < 2:
        raise SystemExit(f"no second epoch's ms/step in the log of {shlex.join(command)}:\n{done.stdout[-2000:]}")
    value, unit = steps[1]
    return float(value) / (1000 if unit == "ms" else 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", action="append", required=True, help="NAME=TREE:EXTRA-FLAGS (two or more)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=12800, help="training images (100 steps at batch 128)")
    parser.add_argument("flags", nargs="*", help="flags for every side (after --)")
    args = parser.parse_args(argv)
    sides = {}
    for side in args.side:
        name, rest = side.split("=", 1)
        tree, extra = rest.split(":", 1)
        words = shlex.split(extra)
        settings = dict(w.split("=", 1) for w in words if ENV_SETTING.match(w))
        sides[name] = (Path(tree), [w for w in words if not ENV_SETTING.match(w)], settings)
    names = list(sides)
    times = {name: [] for name in names}
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            tree, extra, settings = sides[name]
            times[name].append(step_seconds(tree, [*args.flags, *extra], args.limit, settings))
            print(f"round {round_index + 1}: {name} {times[name][-1] * 1000:.0f} ms/step", flush=True)
    print("\n| side | median s/step | rounds |\n|---|---|---|")
    for name in names:
        print(f"| {name} | {statistics.median(times[name]):.3f} | {', '.join(f'{t:.3f}' for t in times[name])} |")
    base = names[0]
    for name in names[1:]:
        ratios = sorted(a / b for a, b in zip(times[name], times[base]))
        print(f"{name} / {base}: median {statistics.median(ratios):.2f} (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
