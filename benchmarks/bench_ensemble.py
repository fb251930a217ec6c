"""Does `ego4d-lta ensemble` beat its members? Differently seeded `tiny` runs on the demo's synthetic data.

Trains `--seeds` runs of the `tiny` config (train.seed = 0, 1, ...) on a finished demo folder's feature caches,
predicts val with each run's best.pt, ensembles them (equal weights), and prints val ED@20 / AUED of every
run and of the ensemble, plus the ensemble's gain over the best and the mean member.

    python benchmarks/bench_ensemble.py [--demo demo] [--seeds 2] [--epochs 16]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ego4d_lta.config import load_config
from ego4d_lta.ensemble import ensemble
from ego4d_lta.predict import PredictConfig, predict
from ego4d_lta.train import train
from ego4d_lta.validate import validate_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=Path("demo"), help="a finished `ego4d-lta demo` folder")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=16)
    args = parser.parse_args()
    data = args.demo / "data"
    annotations = data / "annotations"
    rows, files = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            cfg = load_config("tiny", [f"train.seed={seed}", f"train.epochs={args.epochs}"])
            cfg.data.data_dir = str(data)
            run = Path(tmp) / f"seed{seed}"
            train(cfg, run, progress=False)
            out = predict(PredictConfig(run, "val", out=Path(tmp) / f"seed{seed}-val.json", progress=False)).path
            files.append(out)
            rows.append((f"seed {seed}", validate_file(out, annotations, "val").scores))
        out = Path(tmp) / "ensemble-val.json"
        ensemble(files, out, annotations, "val")
        rows.append((f"ensemble of {args.seeds}", validate_file(out, annotations, "val").scores))
    print(f"{'':16}{'verb':>8}{'noun':>8}{'action':>8}{'AUED a.':>9}   (val ED@20, lower is better)")
    for name, scores in rows:
        ed = scores.ed20
        print(f"{name:16}{ed['verb']:8.4f}{ed['noun']:8.4f}{ed['action']:8.4f}{scores.aued['action']:9.4f}")
    members = [s.ed20 for _, s in rows[:-1]]
    ens = rows[-1][1].ed20
    for head in ("verb", "noun", "action"):
        best = min(m[head] for m in members)
        mean = sum(m[head] for m in members) / len(members)
        print(f"gain {head}: {best - ens[head]:+.4f} vs the best member, {mean - ens[head]:+.4f} vs their mean")


if __name__ == "__main__":
    main()
