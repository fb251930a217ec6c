"""The decoders on a video variant: the report's 20 heads against the sequence decoder (`model.decoder`).

    python benchmarks/video_decoders.py --data demo/data --out /tmp/video-decoders [--seeds 3]

For each decoder and seed trains `--config` (default `tiny`, the fused slowfast_clip variant on the demo's tiny
cache) with `model.decoder=D` and `train.seed=S` into OUT/<D>-s<S>/ (a run already there is resumed, so a finished
one is reused), then predicts val from its best.pt with the product's `predict` twice: the K as drawn (the preset's
strategy) and the K chosen as a set from 50 of the model's samples (`generate.samples=50`; a video run has no
observed labels to replay). Prints val ED@20 verb / noun / action per run and as mean ± sd over the seeds (lower is
better), and predict's mean wall seconds. The last line is `ratio=<mean action ED of the heads / of the sequence
decoder>`, K as drawn (above 1: the sequence decoder is better).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ego4d_lta.config import load_config
from ego4d_lta.stages.predict import PredictConfig, predict
from ego4d_lta.stages.train import train

HEADS = ("verb", "noun", "action")
DECODINGS = {"K as drawn": [], "K as a set (50 samples)": ["generate.samples=50"]}


def run_one(args: argparse.Namespace, decoder: str, seed: int) -> dict[str, list[float]]:
    """Val ED@20 (verb, noun, action) of best.pt per decoding, then predict's wall seconds."""
    sets = [f"model.decoder='{decoder}'", f"train.seed={seed}", f"data.data_dir='{args.data}'"]
    if decoder == "sequence":
        sets.append(f"model.sequence_dim={args.sequence_dim}")
    cfg = load_config(args.config, sets)
    run_dir = args.out / f"{decoder}-s{seed}"
    train(cfg, run_dir, resume=(run_dir / "last.pt").is_file(), progress=False, log=())
    out = {}
    for name, overrides in DECODINGS.items():
        target = run_dir / f"val-{len(out)}.json"
        started = time.perf_counter()
        summary = predict(PredictConfig(run_dir, "val", out=target, overrides=overrides, progress=False))
        out[name] = [summary.scores.ed20[h] for h in HEADS] + [time.perf_counter() - started]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the demo's data folder (annotations + features)")
    p.add_argument("--out", type=Path, required=True, help="where the runs go")
    p.add_argument("--config", default="tiny")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--sequence-dim", type=int, default=64, help="model.sequence_dim of the sequence decoder")
    args = p.parse_args()
    means = {}
    for decoder in ("heads", "sequence"):
        scores: dict[str, list[list[float]]] = {name: [] for name in DECODINGS}
        for seed in range(args.seeds):
            for name, ed in run_one(args, decoder, seed).items():
                scores[name].append(ed)
                cells = " ".join(f"{h} {v:.4f}" for h, v in zip(HEADS, ed, strict=False))
                print(f"{decoder} seed {seed}, {name}: {cells}; predict {ed[3]:.1f} s", flush=True)
        for name, runs in scores.items():
            arr = np.array(runs)
            sd = arr.std(axis=0, ddof=1) if len(arr) > 1 else np.zeros(4)
            means[(decoder, name)] = arr.mean(axis=0)
            cells = " / ".join(f"{m:.4f} ± {s:.4f}" for m, s in zip(arr.mean(axis=0)[:3], sd[:3], strict=True))
            print(
                f"{decoder}, {name}, {len(arr)} seeds: val ED@20 verb / noun / action {cells}; predict "
                f"{arr[:, 3].mean():.1f} s (wall, the predict stage in process)",
                flush=True,
            )
    drawn = next(iter(DECODINGS))
    print(f"ratio={means[('heads', drawn)][2] / means[('sequence', drawn)][2]:.4f}")


if __name__ == "__main__":
    main()
