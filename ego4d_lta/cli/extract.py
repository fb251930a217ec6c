"""`ego4d-lta extract`: frozen SlowFast + CLIP features of every annotated segment -> the feature cache."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ego4d_lta.cli.common import (
    MAX_WORKERS,
    add_data,
    add_features,
    add_quiet,
    bounded,
    dataset_paths,
    shard,
)

HELP = "frozen SlowFast + CLIP features of every segment -> feature cache"
EPILOG = """examples:
  ego4d-lta extract --split train --data data --slowfast-weights weights/ego4d_slowfast8x8.ckpt \\
      --clip-weights weights/ViT-B-16.bin
  ego4d-lta extract --split val --data data/synth --encoders tiny   # synthetic data: random-init tiny encoders
  ego4d-lta extract --split train --views 4 --augment --data data \\
      --slowfast-weights weights/ego4d_slowfast8x8.ckpt --clip-weights weights/ViT-B-16.bin   # report's crops
  ego4d-lta extract --split train --prompts-only --scenarios scenarios_taxonomy.json --data data \\
      --slowfast-weights weights/ego4d_slowfast8x8.ckpt --clip-weights weights/ViT-B-16.bin   # add scenarios later"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=["train", "val", "test"], required=True)
    add_data(p)
    add_features(p)
    p.add_argument(
        "--encoders",
        choices=["full", "tiny"],
        default="full",
        help="full: SlowFast R101 8x8 + CLIP ViT-B-16 at 224 px; tiny: narrow test models at 64 px (without weight "
        "files: seeded random init, saved in FEATURES/<tag>/weights/)",
    )
    p.add_argument(
        "--slowfast-weights",
        type=Path,
        default=None,
        metavar="FILE",
        help="ego4d_slowfast8x8.ckpt, lta_slowfast_*.ckpt or an ego4d-lta SlowFast file",
    )
    p.add_argument("--clip-model", default=None, help="open_clip model name (default: the preset's, ViT-B-16)")
    p.add_argument("--clip-weights", type=Path, default=None, metavar="FILE", help="open_clip weights file")
    p.add_argument("--clip-pretrained", default=None, metavar="TAG", help="open_clip pretrained tag (needs network)")
    p.add_argument(
        "--shard", type=shard, default=(0, 1), metavar="I/N", help="do shard I of N (0-based; default: 0/1, all)"
    )
    p.add_argument(
        "--views",
        type=bounded(1, 64),
        default=1,
        help="windows per train segment: the centre + random positions (1..64)",
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="views 1.. also get a random short side (256-320 for full), random crop and flip; view 0 stays the centre",
    )
    p.add_argument("--batch-size", type=bounded(1, 4096), default=8, help="segment windows per forward pass (1..4096)")
    p.add_argument(
        "--workers",
        type=bounded(0, MAX_WORKERS),
        default=min(8, os.cpu_count() or 1),
        help=f"decoding processes (0..{MAX_WORKERS}; 0: decode in this process)",
    )
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--limit", type=bounded(1, 10**9), default=None, metavar="N", help="only the shard's first N clips (smoke run)"
    )
    p.add_argument(
        "--scenarios",
        type=Path,
        default=None,
        metavar="FILE",
        help="scenario names for the prompt bank (default: annotations/scenarios_taxonomy.json if there)",
    )
    p.add_argument(
        "--prompts-only",
        action="store_true",
        help="only (re)build the CLIP prompt bank (e.g. with --scenarios) and point every split's cache of these "
        "encoders at it; the features are kept (the bank does not depend on them)",
    )
    p.add_argument("--seed", type=int, default=0, help="fixes the random views")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.runtime.encoder_config import encoder_preset
    from ego4d_lta.stages.extract import ExtractConfig, extract, rebuild_prompts

    data, features = dataset_paths(args)
    cfg = ExtractConfig(
        data_dir=data,
        features_dir=features,
        split=args.split,
        encoders=encoder_preset(args.encoders, args.clip_model),
        slowfast_weights=args.slowfast_weights,
        clip_weights=args.clip_weights,
        clip_pretrained=args.clip_pretrained,
        shard=args.shard,
        views=args.views,
        augment=args.augment,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        limit=args.limit,
        scenarios=args.scenarios,
        seed=args.seed,
        progress=not args.quiet,
    )
    if args.prompts_only:
        p = rebuild_prompts(cfg)
        sizes = ", ".join(f"{len(names)} {group}s" for group, names in p.vocab.items())
        using = (
            f"used by the {', '.join(p.using)} caches"
            if p.using
            else "not used: each cache keeps its own (other CLIP weights, or one with scenarios where this has none)"
        )
        print(f"{p.bank}: prompt bank of {sizes}; {using} (features unchanged)")
        return 0
    s = extract(cfg)
    print(
        f"{s.split_dir}: {s.rows} segment windows from {s.clips} clips ready "
        f"({s.done_now} extracted now in {s.seconds:.1f} s, {s.segments_per_second:.2f} segments/s)"
    )
    for clip_uid, error in s.failed.items():
        print(f"warning: clip {clip_uid} has no features: {error}", file=sys.stderr)
    return 0
