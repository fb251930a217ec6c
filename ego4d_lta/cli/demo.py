"""`ego4d-lta demo`: synthetic data -> features -> training -> submissions -> scores, on a laptop."""

from __future__ import annotations

import argparse
from pathlib import Path

from ego4d_lta.cli.common import add_quiet

HELP = "synthetic data -> submissions -> validation and scores, on a laptop"
EPILOG = "example: ego4d-lta demo --out demo   # minutes on a laptop CPU; a rerun reuses what is there"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo", help="working folder (default: demo/)")
    p.add_argument("--seed", type=int, default=0, help="the dataset's, the training's and the sampling's seed")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.workflow.demo import run_demo

    run_demo(Path(args.out), seed=args.seed, progress=not args.quiet)
    return 0
