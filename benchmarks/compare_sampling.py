"""How the K = 5 sequences are drawn changes min-over-K edit distance: every strategy on one run's val windows.

    python benchmarks/compare_sampling.py --run demo/runs/tiny [--seeds 3]

Loads the checkpoint once, predicts val with each strategy (same logits, same noise seeds) and prints
verb / noun / action ED@20, averaged over `--seeds` sampling seeds (action also with their sd). Lower is better.
`set 50`: the strategy's K, then the K chosen as a set from a pool with 50 model samples (`generate.samples`; a
video run has no observed replays without a recognitions file, so only the model's samples are evidence).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ego4d_lta.runtime import checkpoint
from ego4d_lta.runtime.checkpoint import RunCheckpoint
from ego4d_lta.runtime.inference import predict_windows, score_predictions
from ego4d_lta.runtime.inputs import RunInputs
from ego4d_lta.stages.predict import PredictConfig, load_model, run_config

STRATEGIES = [  # (strategy, temperature, top_p, set-selection samples)
    ("iid", 1.0, 1.0, 0),  # the baseline's
    ("nucleus", 1.0, 0.9, 0),
    ("nucleus", 0.7, 1.0, 0),
    ("greedy_sample", 1.0, 1.0, 0),
    ("greedy_sample", 0.7, 1.0, 0),
    ("greedy_sample", 1.0, 0.9, 0),
    ("greedy_sample", 0.7, 1.0, 50),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--checkpoint", default="best")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    ckpt = RunCheckpoint.load(checkpoint.resolve(args.run, args.checkpoint))
    cfg = run_config(ckpt, PredictConfig(args.run, "val", data_dir=args.data))
    model = load_model(ckpt, cfg)
    val = RunInputs(cfg, expected=ckpt.features).open("val", training=False)
    print(f"{args.run} ({cfg.model.variant}), {len(val.windows)} val windows, {args.seeds} sampling seeds")
    print(f"{'strategy':<16}{'T':>5}{'top_p':>7}{'set':>5}{'verb':>9}{'noun':>9}{'action':>9}{'sd':>8}")
    for strategy, temperature, top_p, samples in STRATEGIES:
        scores = []
        for seed in range(args.seeds):
            gen = replace(cfg.generate, strategy=strategy, temperature=temperature, top_p=top_p, seed=seed)
            gen = replace(gen, samples=samples, observed_weight=0.0)
            preds = predict_windows(model, val.dataset, gen, ckpt.fallback, torch.device("cpu"), 256)
            ed = score_predictions(preds, val.labels, val.taxonomy.num_nouns).ed20
            scores.append([ed["verb"], ed["noun"], ed["action"]])
        v, n, a = np.mean(scores, axis=0)
        sd = np.std(np.array(scores)[:, 2], ddof=1) if len(scores) > 1 else 0.0
        print(f"{strategy:<16}{temperature:>5.1f}{top_p:>7.2f}{samples or '-':>5}{v:>9.4f}{n:>9.4f}{a:>9.4f}{sd:>8.4f}")


if __name__ == "__main__":
    main()
