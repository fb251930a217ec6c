"""`ego4d-lta resize`: re-encode clips to 320p H.264 with a keyframe every 2 s (resumable, shardable)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ego4d_lta.cli.common import EXIT_INVALID, add_quiet, bounded, shard

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
"""x264's speed presets (another name makes every clip fail to encode)."""

HELP = "re-encode clips to 320p H.264, a keyframe every 2 s (resumable, shardable)"
EPILOG = "example: ego4d-lta resize --src ego4d/v2/clips --dst data/clips --shard 0/4   # one of 4 array tasks"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", type=Path, required=True, help="folder of <clip_uid>.mp4")
    p.add_argument("--dst", type=Path, required=True, help="output folder (finished clips are skipped on a rerun)")
    p.add_argument(
        "--shard", type=shard, default=(0, 1), metavar="I/N", help="do clips I, I+N, ... (0-based; default: 0/1, all)"
    )
    p.add_argument(
        "--short-side", type=bounded(32, 4320), default=320, help="output height of a landscape clip (32..4320 px)"
    )
    p.add_argument(
        "--keyframe-seconds",
        type=bounded(0.1, 60, float),
        default=2.0,
        help="a keyframe this often, in seconds (0.1..60: fast seeking)",
    )
    p.add_argument("--crf", type=bounded(0, 51), default=23, help="x264 quality (0..51): lower is better and bigger")
    p.add_argument("--preset", default="medium", choices=X264_PRESETS, help="x264 preset")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.stages.resize import ResizeConfig, resize_all

    cfg = ResizeConfig(
        short_side=args.short_side,
        keyframe_seconds=args.keyframe_seconds,
        crf=args.crf,
        preset=args.preset,
        shard=args.shard,
    )
    s = resize_all(args.src, args.dst, cfg, progress=not args.quiet)
    print(f"{args.dst}: {len(s.done)} clips re-encoded, {len(s.skipped)} already there, {len(s.failed)} failed")
    for error in s.failed.values():
        print(f"ego4d-lta resize: error: {error}", file=sys.stderr)
    return EXIT_INVALID if s.failed else 0
