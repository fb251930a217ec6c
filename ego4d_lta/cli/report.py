"""`ego4d-lta report`: a table of training runs and their training and ED@z curves."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "a table of training runs, their training and ED@z curves (PNG)"
EPILOG = "example: ego4d-lta report runs/tiny runs/slowfast_clip -o reports"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders (runs/NAME)")
    p.add_argument("-o", "--out", type=Path, default=Path("reports"), help="output folder (default: reports/)")


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.base.jsonio import printable_path
    from ego4d_lta.workflow.report import report

    text, files = report(args.runs, args.out)
    print(text)
    print("wrote " + ", ".join(printable_path(f) for f in files))
    return 0
