"""The whole pipeline without videos at growing fractions of Ego4D v2's size: cost per step, growth, projection.

At each size F (a fraction of Ego4D LTA v2: F x 63,956 train / 33,149 val actions, test as large as val) this writes
`ego4d-lta synth --scale F --no-videos --features-like-ego4d` data (Ego4D's shape: 8-minute clips two to a
23-minute video, ~6 actions a minute, 117 verbs / 521 nouns, a float32 (T, 2304) SlowFast-like file per video;
untimed set-up), then runs the product's commands, each in its own subprocess:

  import train / val / test   `import-features --split S` (float16 cache)
  train                       `train --config slowfast --set data.released=slowfast8x8_r101_k400` with the preset's
                              real model sizes and batch, stopped after `--steps` steps (`train.stop_after`)
  predict val                 `predict --split val --checkpoint last` (scored)
  predict test --pool         `predict --split test --pool 50`, twice (sampling seeds 0 and 1): two pools
  validate                    `validate` of the val submission (checked and scored, as the server does)
  ensemble                    `ensemble` of the two test pools into one submission

Per step and size: wall seconds, CPU seconds (user + system of the step's process and its children, from
`os.wait4`), peak RSS (that process's `ru_maxrss`), and the bytes its outputs add to the work folder. Then per step
the growth exponent over the sizes (the log-log least-squares slope of wall, CPU, RSS and disk against F) and the
projection at full size (F = 1): the larger of the linear fit (a + b F) and the power-law fit over the measured
sizes. Training runs a fixed number of steps, so its figures are its start-up plus those steps, not a real run's.

Every step's figures include its fixed start-up (Python, torch, the model), so an exponent below 1 can hide a
size-dependent part that grows faster; the `above start-up` column is the exponent of the increments between the
measured sizes' CPU times (with sizes doubling: log2 of (c3 - c2) / (c2 - c1), averaged over consecutive triples).
The last line is `ratio=<largest CPU-time exponent among the steps other than train>` (goal <= 1.1; CPU, not
wall: on a shared machine wall time follows the other users' load).

    python benchmarks/bench_scale.py [--sizes 1/64,1/32,1/16] [--steps 20] [--pool 50] [--keep DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

SET = "slowfast8x8_r101_k400"
IMPORTS = ("train", "val", "test")


@dataclass
class Cost:
    wall: float
    cpu: float
    rss_mb: float
    disk_mb: float


def folder_bytes(path: Path) -> int:
    total = 0
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            total += folder_bytes(Path(entry.path))
        elif entry.is_file(follow_symlinks=False):
            total += entry.stat().st_size
    return total


def measure(argv: list[str], work: Path, log: Path) -> tuple[Cost, str]:
    """Run `python -m ego4d_lta ARGV` in its own process; its cost and its stdout."""
    before = folder_bytes(work)
    cmd = [sys.executable, "-m", "ego4d_lta", *argv]
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-3000:]}")
    grown = folder_bytes(work) - before
    return Cost(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, grown / 1e6), text


def pipeline(data: Path, steps: int, pool: int) -> list[tuple[str, list[str]]]:
    """The product's commands in order: (step name, arguments); run in the size's work folder."""
    where = ["--data", str(data), "-q"]
    run = ["--run", "runs/slowfast", "--checkpoint", "last", "--device", "cpu"]
    train = ["--config", "slowfast", "--set", f"data.released={SET}", "--set", f"train.stop_after={steps}"]
    download = ["--ego4d-features", str(data / "ego4d_features")]
    test = ["predict", "--split", "test", *run, "--pool", str(pool), *where]
    pools = [f"submissions/test-{x}.pool{pool}.json" for x in "ab"]
    return [
        *((f"import {s}", ["import-features", "--split", s, *download, *where]) for s in IMPORTS),
        ("train", ["train", *train, "--run", "runs/slowfast", "--device", "cpu", "--log", "none", *where]),
        ("predict val", ["predict", "--split", "val", *run, "--out", "submissions/val.json", *where]),
        ("predict test --pool", [*test, "--out", "submissions/test-a.json"]),
        ("predict test --pool #2", [*test, "--out", "submissions/test-b.json", "--set", "generate.seed=1"]),
        ("validate val", ["validate", "submissions/val.json", "--split", "val", "--data", str(data)]),
        ("ensemble", ["ensemble", *pools, "-o", "submissions/ensemble-test.json", "--data", str(data)]),
    ]


def fit(sizes: list[float], values: list[float]) -> tuple[float, float]:
    """(log-log slope, projection at F = 1: the larger of the linear and the power-law least-squares fits)."""
    n = len(sizes)
    if n < 2 or min(values) <= 0:
        return float("nan"), max(values) if values else float("nan")
    lx, ly = [math.log(s) for s in sizes], [math.log(v) for v in values]
    mx, my = sum(lx) / n, sum(ly) / n
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)
    power = math.exp(my - slope * mx)  # the power law's value at log F = 0
    sx, sy = sum(sizes) / n, sum(values) / n
    b = sum((a - sx) * (v - sy) for a, v in zip(sizes, values, strict=True)) / sum((a - sx) ** 2 for a in sizes)
    linear = sy + b * (1 - sx)
    return slope, max(power, linear)


def increment_exponent(sizes: list[float], values: list[float]) -> float:
    """Exponent k of the size-dependent part b F^k of a + b F^k, from consecutive triples of sizes in a constant ratio
    (nan if there are fewer than three, or an increment is not positive)."""
    ks = []
    for i in range(len(sizes) - 2):
        r = sizes[i + 1] / sizes[i]
        d1, d2 = values[i + 1] - values[i], values[i + 2] - values[i + 1]
        if d1 > 0 and d2 > 0 and math.isclose(sizes[i + 2] / sizes[i + 1], r):
            ks.append(math.log(d2 / d1) / math.log(r))
    return sum(ks) / len(ks) if ks else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1/64,1/32,1/16", help="fractions of Ego4D v2, comma-separated")
    parser.add_argument("--steps", type=int, default=20, help="training steps at each size (train.stop_after)")
    parser.add_argument("--pool", type=int, default=50, help="sequences per window of each test pool")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep every size's folder")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    args = parser.parse_args()
    sizes = [float(Fraction(s)) for s in args.sizes.split(",")]
    labels = args.sizes.split(",")
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_scale-"))
    costs: dict[str, dict[str, Cost]] = {}
    segments: dict[str, str] = {}
    try:
        for label, f in zip(labels, sizes, strict=True):
            work = root / f"scale-{label.replace('/', '_')}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            data, logs = work / "data", root / "logs" / label.replace("/", "_")
            logs.mkdir(parents=True, exist_ok=True)
            synth = ["synth", str(data), "--scale", str(f), "--no-videos", "--features-like-ego4d", "-q"]
            setup, text = measure(synth, work, logs / "synth.log")
            segments[label] = text.splitlines()[0].split(": ", 1)[1].split(";")[0]
            print(f"F={label}: {segments[label]}; download {setup.disk_mb:.0f} MB, written in {setup.wall:.0f} s")
            for name, argv in pipeline(data, args.steps, args.pool):
                cost, _ = measure(argv, work, logs / f"{name.replace(' ', '_').replace('#', '')}.log")
                costs.setdefault(name, {})[label] = cost
                print(
                    f"  {name:24} wall {cost.wall:7.1f} s  CPU {cost.cpu:7.1f} s  RSS {cost.rss_mb:7.0f} MB  "
                    f"disk {cost.disk_mb:8.1f} MB",
                    flush=True,
                )
            if not args.keep:
                shutil.rmtree(work)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report(costs, labels, sizes, segments, args)


def report(costs: dict, labels: list[str], sizes: list[float], segments: dict, args: argparse.Namespace) -> None:
    print(f"\nsizes (F x Ego4D v2): {', '.join(f'{x} = {segments[x]}' for x in labels)}")
    print("growth exponents over F (log-log slope) and the projection at F = 1 (the larger of linear / power fit):")
    head = f"{'step':24} {'exp wall':>8} {'exp CPU':>8} {'above start-up':>14} {'exp RSS':>8} {'exp disk':>8} | "
    print(head + f"{'wall':>9} {'CPU':>9} {'RSS':>8} {'disk':>9}  (full size)")
    worst, doc = 0.0, {}
    for name, per in costs.items():
        cols = {}
        for field in ("wall", "cpu", "rss_mb", "disk_mb"):
            values = [getattr(per[x], field) for x in labels]
            cols[field] = fit(sizes, values)
        if name != "train":  # CPU, not wall: on a shared machine the wall time follows the other users' load
            worst = max(worst, cols["cpu"][0])
        cols["cpu_increments"] = (increment_exponent(sizes, [per[x].cpu for x in labels]), float("nan"))
        e = " ".join(
            f"{cols[k][0]:{14 if k == 'cpu_increments' else 8}.2f}"
            for k in ("wall", "cpu", "cpu_increments", "rss_mb", "disk_mb")
        )
        p = cols
        print(
            f"{name:24} {e} | {p['wall'][1]:8.0f}s {p['cpu'][1]:8.0f}s {p['rss_mb'][1] / 1024:6.2f}GB "
            f"{p['disk_mb'][1] / 1024:7.2f}GB"
        )
        doc[name] = {"measured": {x: asdict(per[x]) for x in labels}, "exponent_projection": cols}
    if args.json:
        args.json.write_text(json.dumps({"sizes": labels, "segments": segments, "steps": doc}, indent=1))
    print(f"ratio={worst:.3f}")


if __name__ == "__main__":
    main()
