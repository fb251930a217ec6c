"""Do the recognition heads (`model.recognition_weight`) help the forecast? Train with and without, predict val.

    python benchmarks/recognition_heads.py --data demo/data --out /tmp/recognition-heads [--weights 0 1] [--seeds 3]

For every weight and seed trains `--config` (default `tiny`, the fused slowfast_clip variant on the demo's tiny
cache) with `model.recognition_weight=W` and `train.seed=S` into OUT/w<W>-s<S>/ (a run already there is resumed,
so a finished one is reused), predicts val from its best.pt with the product's `predict`, and prints val ED@20
verb / noun / action per run and as mean ± sd over the seeds, with the heads' val top-1 verb / noun accuracy of the
observed segments at best.pt's epoch. Lower ED is better. The last line is `ratio=<mean action ED at weight 0 /
at the last weight>` (above 1: the heads help the forecast).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ego4d_lta.config import load_config
from ego4d_lta.stages.predict import PredictConfig, predict
from ego4d_lta.stages.train import train

HEADS = ("verb", "noun", "action")


def run_one(args: argparse.Namespace, weight: float, seed: int) -> tuple[list[float], dict | None]:
    """Val ED@20 (verb, noun, action) of best.pt, and the recognition scores of its epoch (None without heads)."""
    sets = [f"model.recognition_weight={weight}", f"train.seed={seed}", f"data.data_dir={args.data}"]
    sets.append(f"model.decoder='{args.decoder}'")
    cfg = load_config(args.config, sets)
    run_dir = args.out / f"w{weight:g}-s{seed}"
    result = train(cfg, run_dir, resume=(run_dir / "last.pt").is_file(), progress=False, log=())
    out = run_dir / "val.json"
    summary = predict(PredictConfig(run_dir, "val", out=out, progress=False))
    ed = summary.scores.ed20
    best = next(e for e in result.history if e["epoch"] == result.best["epoch"])
    return [ed[h] for h in HEADS], best.get("val_recognition")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the demo's data folder (annotations + features)")
    p.add_argument("--out", type=Path, required=True, help="where the runs go")
    p.add_argument("--config", default="tiny")
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--decoder",
        default="heads",
        choices=["heads", "sequence"],
        help="model.decoder of the runs (default heads: what the documented figures were measured with)",
    )
    args = p.parse_args()
    means = {}
    for weight in args.weights:
        scores = []
        for seed in range(args.seeds):
            ed, seen = run_one(args, weight, seed)
            scores.append(ed)
            rec = f"  recognised verb {seen['verb']:.3f} noun {seen['noun']:.3f}" if seen else ""
            cells = " ".join(f"{h} {v:.4f}" for h, v in zip(HEADS, ed, strict=True))
            print(f"weight {weight:g} seed {seed}: {cells}{rec}", flush=True)
        arr = np.array(scores)
        sd = arr.std(axis=0, ddof=1) if len(arr) > 1 else np.zeros(3)
        means[weight] = arr.mean(axis=0)
        cells = " / ".join(f"{m:.4f} ± {s:.4f}" for m, s in zip(means[weight], sd, strict=True))
        print(f"weight {weight:g}, {len(arr)} seeds: val ED@20 verb / noun / action {cells}", flush=True)
    print(f"ratio={means[args.weights[0]][2] / means[args.weights[-1]][2]:.4f}")


if __name__ == "__main__":
    main()
