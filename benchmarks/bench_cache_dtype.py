"""Val ED@20 of the `slowfast` preset trained from a float16 imported cache against a float32 one, over seeds.

`import-features` writes float16 rows by default (half the disk); `--dtype float32` keeps the download's precision.
This writes `synth --no-videos --features-like-ego4d` data, imports train / val / test once per dtype, then per
dtype and seed runs the product's own commands in subprocesses: `train --config slowfast --set
data.released=slowfast8x8_r101_k400` with the small model of README.md's "Without the videos" block (2 layers,
slowfast_dim 64, ffn 256, 4 heads, batch 32), trained long enough to learn (`--epochs`, warm-up 30 steps, lr 1e-3),
then `predict --split val --checkpoint last` (last, not best.pt: no choice made on val). Prints each run's val
ED@20 (verb, noun, action), the mean ± sd per dtype, the cache sizes, and the paired difference of action ED.
The last line is `ratio=<float16 mean action ED / float32 mean action ED>` (1: no effect; below 1: float16 better).

    python benchmarks/bench_cache_dtype.py [--seeds 3] [--epochs 20] [--size tiny|small] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL_MODEL = ["model.layers=2", "model.slowfast_dim=64", "model.ffn_dim=256", "model.heads=4", "train.batch_size=32"]
RECIPE = ["optim.warmup_steps=30", "optim.lr=1e-3"]
DTYPES = ("float16", "float32")
HEADS = ("verb", "noun", "action")


def ego4d_lta(*args: str, cwd: Path) -> str:
    """Run one product command in a fresh interpreter; its stdout (stderr shown on failure)."""
    cmd = [sys.executable, "-m", "ego4d_lta", *args]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--decoder",
        default="heads",
        choices=["heads", "sequence"],
        help="model.decoder of the runs (default heads: what the documented figures were measured with)",
    )
    parser.add_argument("--size", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp one)")
    args = parser.parse_args()
    from ego4d_lta.challenge.validate import validate_file

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = work / "data"
        ego4d_lta("synth", str(data), "--size", args.size, "--no-videos", "--features-like-ego4d", "-q", cwd=work)
        for dtype in DTYPES:
            for split in ("train", "val", "test"):
                where = ["--data", str(data), "--features", str(work / dtype)]
                download = ["--ego4d-features", str(data / "ego4d_features")]
                ego4d_lta("import-features", "--split", split, *download, *where, "--dtype", dtype, "-q", cwd=work)
        sizes = {d: folder_bytes(work / d) for d in DTYPES}
        print("caches (train, val, test): " + ", ".join(f"{d} {sizes[d] / 1e6:.2f} MB" for d in DTYPES))
        scores: dict[str, list[dict[str, float]]] = {d: [] for d in DTYPES}
        for seed in range(args.seeds):
            for dtype in DTYPES:
                run, out = work / "runs" / f"{dtype}-{seed}", work / f"{dtype}-{seed}-val.json"
                sets = [*SMALL_MODEL, *RECIPE, f"train.epochs={args.epochs}", f"train.seed={seed}"]
                sets.append(f"model.decoder='{args.decoder}'")
                started = time.perf_counter()
                where = ["--data", str(data), "--features", str(work / dtype), "--device", "cpu", "-q"]
                settings = [a for s in ["data.released=slowfast8x8_r101_k400", *sets] for a in ("--set", s)]
                ego4d_lta(
                    "train", "--config", "slowfast", *settings, "--run", str(run), "--log", "none", *where, cwd=work
                )
                ego4d_lta(
                    "predict",
                    "--split",
                    "val",
                    "--run",
                    str(run),
                    "--checkpoint",
                    "last",
                    "--out",
                    str(out),
                    *where,
                    cwd=work,
                )
                ed = validate_file(out, data / "annotations", "val").scores.ed20
                scores[dtype].append(ed)
                took = time.perf_counter() - started
                figures = " ".join(f"{h} {ed[h]:.4f}" for h in HEADS)
                print(f"seed {seed} {dtype}: val ED@20 {figures} ({took:.0f} s)")
        print(f"val ED@20 over {args.seeds} seeds (mean ± sd; lower is better), synth size {args.size}:")
        for dtype in DTYPES:
            row = []
            for h in HEADS:
                values = [s[h] for s in scores[dtype]]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                row.append(f"{h} {statistics.mean(values):.4f} ± {sd:.4f}")
            print(f"  {dtype}: " + ", ".join(row))
        diff = [a["action"] - b["action"] for a, b in zip(scores["float16"], scores["float32"], strict=True)]
        sd = statistics.stdev(diff) if len(diff) > 1 else 0.0
        print(f"action ED float16 - float32, same seed: {statistics.mean(diff):+.4f} ± {sd:.4f} ({diff})")
        mean = {d: statistics.mean(s["action"] for s in scores[d]) for d in DTYPES}
        print(f"ratio={mean['float16'] / mean['float32']:.4f}")


if __name__ == "__main__":
    main()
