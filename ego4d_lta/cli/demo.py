"""`ego4d-lta demo`: synthetic data -> features -> training -> submissions -> scores, on a laptop."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "synthetic data -> submissions -> validation and scores, on a laptop"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo", help="working folder (default: demo/)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.workflow.demo import run_demo

    run_demo(Path(args.out), seed=args.seed)
    return 0
