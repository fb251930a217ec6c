"""Does `ego4d-lta ensemble` beat its members? Differently seeded `tiny` runs on the demo's synthetic data.

Trains `--seeds` runs of the `tiny` config (train.seed = 0, 1, ...) on a finished demo folder's feature caches,
predicts val with each run's best.pt, ensembles them (equal weights), and prints val ED@20 / AUED of every
run and of two ensembles: of the runs' submissions (K = 5 each), and of their pools of `--pool` samples per window
(`predict --pool`), plus each ensemble's gain over the best and the mean member. The demo's val set is small
(55 windows), so every figure is the mean over `--sampling-seeds` draws of the sequences (generate.seed).

    python benchmarks/bench_ensemble.py [--demo demo] [--seeds 2] [--epochs 16] [--sampling-seeds 5] [--pool 20]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from ego4d_lta.challenge.validate import validate_file
from ego4d_lta.config import load_config
from ego4d_lta.stages.predict import PredictConfig, predict
from ego4d_lta.stages.train import train
from ego4d_lta.workflow.ensemble import ensemble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=Path("demo"), help="a finished `ego4d-lta demo` folder")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument(
        "--decoder",
        default="heads",
        choices=["heads", "sequence"],
        help="model.decoder of the runs (default heads: what the documented figures were measured with)",
    )
    parser.add_argument("--sampling-seeds", type=int, default=5)
    parser.add_argument("--pool", type=int, default=20, help="samples per window of each run's pool")
    args = parser.parse_args()
    data = args.demo / "data"
    annotations = data / "annotations"
    names = [f"seed {seed}" for seed in range(args.seeds)]
    names += [f"ensemble of {args.seeds}", f"ens. {args.seeds} pools"]
    figures = np.zeros((args.sampling_seeds, len(names), 4))  # verb, noun, action ED@20, action AUED
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for seed in range(args.seeds):
            cfg = load_config(
                "tiny", [f"train.seed={seed}", f"train.epochs={args.epochs}", f"model.decoder='{args.decoder}'"]
            )
            cfg.data.data_dir = str(data)
            runs.append(Path(tmp) / f"seed{seed}")
            train(cfg, runs[-1], progress=False)
        for draw in range(args.sampling_seeds):
            files, pools = [], []
            for seed, run in enumerate(runs):
                out = Path(tmp) / f"seed{seed}-val-{draw}.json"
                sets = [f"generate.seed={draw}"]
                made = predict(PredictConfig(run, "val", out=out, overrides=sets, progress=False, pool=args.pool))
                files.append(out)
                pools.append(made.pool)
            members = files[:]
            files.append(Path(tmp) / f"ensemble-val-{draw}.json")
            ensemble(members, files[-1], annotations, "val")
            files.append(Path(tmp) / f"ensemble-pools-val-{draw}.json")
            ensemble(pools, files[-1], annotations, "val")
            for row, path in enumerate(files):
                scores = validate_file(path, annotations, "val").scores
                figures[draw, row] = [*(scores.ed20[h] for h in ("verb", "noun", "action")), scores.aued["action"]]
    mean = figures.mean(0)
    print(f"val, mean of {args.sampling_seeds} sampling seeds (lower is better)")
    print(f"{'':16}{'verb':>8}{'noun':>8}{'action':>8}{'AUED a.':>9}")
    for name, row in zip(names, mean, strict=True):
        print(f"{name:16}" + "".join(f"{x:8.4f}" if i < 3 else f"{x:9.4f}" for i, x in enumerate(row)))
    m = args.seeds
    for row in (m, m + 1):
        for i, head in enumerate(("verb", "noun", "action")):
            gains = figures[:, :m, i] - figures[:, row : row + 1, i]  # (draws, members): > 0 where it is better
            print(
                f"{names[row]}, gain {head}: {mean[:m, i].min() - mean[row, i]:+.4f} vs the best member, "
                f"{mean[:m, i].mean() - mean[row, i]:+.4f} vs their mean; "
                f"better than every member in {int((gains > 0).all(1).sum())} of {args.sampling_seeds} draws"
            )


if __name__ == "__main__":
    main()
