"""`ego4d-lta synth`: a synthetic dataset in the official Ego4D LTA layout."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ego4d_lta.base.errors import UserError
from ego4d_lta.cli.common import add_quiet
from ego4d_lta.data.feature_sets import SET_NAMES

HELP = "write a synthetic dataset in the official Ego4D LTA layout"
EPILOG = "example: ego4d-lta synth data/synth --size tiny --missing-videos 1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="dataset root to write (annotations/, clips/)")
    p.add_argument("--seed", type=int, default=0, help="one seed for the scripts, annotations and frames")
    p.add_argument("--size", choices=["tiny", "small"], default="tiny", help="tiny (the demo's) or small (more clips)")
    p.add_argument(
        "--missing-videos",
        type=int,
        default=0,
        metavar="N",
        help="test clips whose video file is left out (their keys still need predictions)",
    )
    p.add_argument("--corrupt-videos", type=int, default=0, metavar="N", help="test clips whose video file is corrupt")
    p.add_argument(
        "--scale",
        type=float,
        default=0.0,
        metavar="F",
        help="Ego4D v2's shape at F x its size (63,956 train / 33,149 val / test as val actions; 8-minute clips, "
        "two per 23-minute video, ~6 actions a minute; its 117 verbs / 521 nouns) instead of --size; needs "
        "--no-videos (default: 0, off)",
    )
    p.add_argument("--no-videos", action="store_true", help="annotations only: render no clips")
    p.add_argument(
        "--features-like-ego4d",
        action="store_true",
        help="also write OUT/ego4d_features/v2/<set>/<video_uid>.pt as Ego4D releases them",
    )
    p.add_argument(
        "--missing-features", type=int, default=0, metavar="N", help="test videos left out of that feature download"
    )
    p.add_argument(
        "--features-set",
        default=SET_NAMES[0],
        choices=SET_NAMES,
        help="which released set that download imitates",
    )
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.stages.synth import SynthConfig, generate

    cfg = SynthConfig(
        seed=args.seed,
        size=args.size,
        missing_videos=args.missing_videos,
        corrupt_videos=args.corrupt_videos,
        videos=not args.no_videos,
        features_like_ego4d=args.features_like_ego4d,
        missing_features=args.missing_features,
        features_set=args.features_set,
        scale=args.scale,
    )
    started = time.perf_counter()
    try:
        summary = generate(args.out, cfg, progress=not args.quiet)
    except ValueError as e:
        raise UserError(f"synth: {e}") from None
    counts = ", ".join(
        f"{split} {len(uids)} clips / {summary.segments[split]} segments" for split, uids in summary.clips.items()
    )
    print(f"wrote {args.out}: {counts}; {summary.bytes / 1e6:.1f} MB of video in {time.perf_counter() - started:.1f} s")
    if summary.missing or summary.corrupt:
        print(f"test clips with a missing video: {len(summary.missing)}, with a corrupt video: {len(summary.corrupt)}")
    if cfg.features_like_ego4d:
        from ego4d_lta.stages.synth.features import download_dir

        left_out = len(summary.missing_features)
        print(f"Ego4D-style feature download: {download_dir(args.out)} ({left_out} video files left out)")
    return 0
