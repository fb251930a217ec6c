"""`ego4d-lta import-features`: Ego4D's released per-video features -> the feature cache (no videos needed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ego4d_lta.cli.common import add_data, add_features, add_quiet, dataset_paths, shard
from ego4d_lta.data.feature_sets import SET_NAMES

HELP = "Ego4D's released per-video features (no videos needed) -> the feature cache"
EPILOG = "example: ego4d-lta import-features --split train --ego4d-features ego4d --data data   # after the Ego4D CLI"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=["train", "val", "test"], required=True)
    p.add_argument(
        "--ego4d-features", type=Path, required=True, metavar="DIR", help="the Ego4D CLI's --output_directory"
    )
    p.add_argument(
        "--set", default=SET_NAMES[0], choices=SET_NAMES, help=f"which released set (default: {SET_NAMES[0]})"
    )
    p.add_argument(
        "--stride",
        type=int,
        default=None,
        metavar="FRAMES",
        help="the set's stride, if not Ego4D's 16 (1..32: the window)",
    )
    p.add_argument(
        "--dtype",
        choices=["float16", "float32"],
        default="float16",
        help="the cache's rows: float16 (half the disk) or float32 (the download's precision); default: float16",
    )
    add_data(p)
    add_features(p)
    p.add_argument(
        "--shard", type=shard, default=(0, 1), metavar="I/N", help="do videos I, I+N, ... (0-based; default: 0/1, all)"
    )
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.stages.import_features import ImportConfig, import_features

    data, features = dataset_paths(args)
    cfg = ImportConfig(
        data_dir=data,
        features_dir=features,
        split=args.split,
        download=args.ego4d_features,
        feature_set=args.set,
        stride=args.stride,
        shard=args.shard,
        progress=not args.quiet,
        dtype=args.dtype,
    )
    s = import_features(cfg)
    if s.changed_videos:
        print(f"{_changed(s.changed_videos)} changed since imported: their clips imported again", file=sys.stderr)
    print(
        f"{s.split_dir}: {s.rows} segments of {s.videos} videos ready ({s.done_now} imported now in {s.seconds:.1f} s, "
        f"{s.segments_per_second:.0f} segments/s; {s.unusable} without features, {len(s.failed_videos)} videos "
        f"unusable{': see the warnings above' if s.failed_videos else ''})"
    )
    return 0


def _changed(videos: list[str]) -> str:
    """The videos whose files changed since their import, named (the first three) for the terminal."""
    from ego4d_lta.base.jsonio import printable

    named = ", ".join(printable(v, 60) for v in videos[:3]) + (f" and {len(videos) - 3} more" if videos[3:] else "")
    return f"{len(videos)} video file{'s' if videos[1:] else ''} ({named})"
