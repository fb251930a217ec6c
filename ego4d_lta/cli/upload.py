"""`ego4d-lta upload`: validate a test submission, then submit it to EvalAI with the real evalai client."""

from __future__ import annotations

import argparse
from pathlib import Path

from ego4d_lta.cli.common import add_annotations, annotations_dir, positive

HELP = "validate a test submission, then submit it to EvalAI (evalai client)"
EPILOG = "example: ego4d-lta upload submissions/slowfast_clip-test.json --dry-run   # prints the evalai command"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="test submission JSON")
    p.add_argument(
        "--phase",
        type=positive,
        default=None,
        help="EvalAI phase id (default: $EGO4D_LTA_EVALAI_PHASE, else 3161, the challenge's Test Phase)",
    )
    add_annotations(p)
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--public", action="store_true", help="show it on the public leaderboard")
    shown.add_argument("--private", action="store_true", help="keep it off the public leaderboard")
    p.add_argument("--dry-run", action="store_true", help="validate and print the exact evalai command, run nothing")


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.workflow.upload import UploadConfig, upload

    visibility = "public" if args.public else "private" if args.private else None
    print(upload(UploadConfig(args.file, annotations_dir(args), args.phase, visibility, args.dry_run)))
    return 0
