"""`ego4d-lta`: one argparse tree; each verb is a thin call into a module.

Exit status: 0 success, 2 a user mistake (one line on stderr, no traceback), 1 a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ego4d_lta import __version__
from ego4d_lta.errors import UserError

EXIT_INVALID = 2


def default_data_dir() -> Path:
    """`$EGO4D_LTA_DATA`, else `data/`: a dataset root in the official layout."""
    return Path(os.environ.get("EGO4D_LTA_DATA", "data"))


def _cmd_synth(args: argparse.Namespace) -> int:
    from ego4d_lta.data.synthetic import SynthConfig, generate

    cfg = SynthConfig(
        seed=args.seed, size=args.size, missing_videos=args.missing_videos, corrupt_videos=args.corrupt_videos
    )
    started = time.perf_counter()
    try:
        summary = generate(args.out, cfg, progress=_progress(args.quiet))
    except ValueError as e:
        raise UserError(f"synth: {e}") from None
    if not args.quiet:
        print(file=sys.stderr)
    counts = ", ".join(
        f"{split} {len(uids)} clips / {summary.segments[split]} segments" for split, uids in summary.clips.items()
    )
    print(f"wrote {args.out}: {counts}; {summary.bytes / 1e6:.1f} MB of video in {time.perf_counter() - started:.1f} s")
    if summary.missing or summary.corrupt:
        print(f"test clips with a missing video: {len(summary.missing)}, with a corrupt video: {len(summary.corrupt)}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    import orjson

    from ego4d_lta.validate import format_report, plot_ed_at_z, validate_file

    annotations = args.annotations or default_data_dir() / "annotations"
    try:
        report = validate_file(args.file, annotations, args.split)
    except UserError as e:
        if args.json:
            failed = {"valid": False, "split": args.split, "windows": 0, "errors": [str(e)], "warnings": []}
            sys.stdout.write(orjson.dumps(failed, option=orjson.OPT_INDENT_2).decode() + "\n")
        raise
    if args.plot and report.scores is not None:
        try:
            plot_ed_at_z(report.scores, args.plot, title=f"{Path(args.file).name} ({args.split})")
        except OSError as e:
            raise UserError(f"{args.plot}: cannot write the plot ({e.strerror or e})") from None
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    for warning in report.warnings:
        print(f"warning: {args.file}: {warning}", file=sys.stderr)
    if not report.valid:
        for error in report.errors:
            print(f"error: {args.file}: {error}", file=sys.stderr)
        print(f"{args.file}: invalid {args.split} submission ({len(report.errors)} errors)", file=sys.stderr)
        return EXIT_INVALID
    if not args.json:
        print(format_report(report))
        if args.plot and report.scores is None:
            print(f"note: --plot needs a labelled split; {args.split} has no labels", file=sys.stderr)
        elif args.plot:
            print(f"plot: {args.plot}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ego4d_lta.demo import run_demo

    run_demo(Path(args.out), seed=args.seed)
    return 0


def _progress(quiet: bool) -> Callable[[str], None] | None:
    if quiet:
        return None

    def show(message: str) -> None:
        print(f"\r{message:<60}", end="", file=sys.stderr, flush=True)

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ego4d-lta",
        description="Ego4D long-term action anticipation: data, features, training, challenge submissions.",
    )
    parser.add_argument("--version", action="version", version=f"ego4d-lta {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="synthetic data -> submissions -> validation and scores, on a laptop")
    p.add_argument("--out", default="demo", help="working folder (default: demo/)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("synth", help="write a synthetic dataset in the official Ego4D LTA layout")
    p.add_argument("out", type=Path, help="dataset root to write (annotations/, clips/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=["tiny", "small"], default="tiny")
    p.add_argument(
        "--missing-videos",
        type=int,
        default=0,
        metavar="N",
        help="test clips whose video file is left out (their keys still need predictions)",
    )
    p.add_argument("--corrupt-videos", type=int, default=0, metavar="N", help="test clips whose video file is corrupt")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("validate", help="check a submission as the challenge server would; score it on val")
    p.add_argument("file", type=Path, help="submission JSON")
    p.add_argument(
        "--annotations",
        type=Path,
        default=None,
        help="folder with fho_lta_*.json and the taxonomy (default: $EGO4D_LTA_DATA/annotations or data/annotations)",
    )
    p.add_argument("--split", choices=["val", "test"], default="test")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG", help="write ED@z curves (val only)")
    p.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"ego4d-lta {args.command}: error: {e}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print(f"ego4d-lta {args.command}: interrupted", file=sys.stderr)
        return 130
