"""`ego4d-lta validate`: check a submission exactly as the challenge server would; score it on val."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ego4d_lta.base.errors import UserError
from ego4d_lta.cli.common import (
    EXIT_INVALID,
    add_annotations,
    add_split,
    annotation_files,
    annotations_dir,
    chosen_split,
)

HELP = "check a submission as the challenge server would; score it on val"
EPILOG = "example: ego4d-lta validate demo/submissions/tiny-val.json --data demo/data   # split: from the file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="submission JSON")
    add_annotations(p)
    add_split(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG", help="write ED@z curves (val only)")


def run(args: argparse.Namespace) -> int:
    import orjson

    from ego4d_lta.base.jsonio import printable_path
    from ego4d_lta.base.output_guard import check_output
    from ego4d_lta.challenge.rules import K
    from ego4d_lta.challenge.split_guess import did_you_mean
    from ego4d_lta.challenge.submission import pool_size, read_submission
    from ego4d_lta.challenge.validate import format_report, validate_file
    from ego4d_lta.workflow.plots import plot_ed_at_z

    annotations = annotations_dir(args)
    shown = printable_path(args.file)
    if args.plot:
        check_output(args.plot, "png", [args.file, *annotation_files(annotations)], flag="--plot")
    try:
        args.split = chosen_split(args, [args.file], annotations)
        report = validate_file(args.file, annotations, args.split)
    except UserError as e:
        if args.json:
            failed = {"valid": False, "split": args.split or "", "windows": 0, "errors": [str(e)], "warnings": []}
            sys.stdout.write(orjson.dumps(failed, option=orjson.OPT_INDENT_2).decode() + "\n")
        raise
    if args.plot and report.scores is not None:
        try:
            name = Path(args.file).name
            plot_ed_at_z({name: report.scores.ed_at_z}, args.plot, title=f"{name} ({args.split})")
        except OSError as e:
            raise UserError(f"{args.plot}: cannot write the plot ({e.strerror or e})") from None
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    for warning in report.warnings:
        print(f"warning: {shown}: {warning}", file=sys.stderr)
    if not report.valid:
        pool = pool_size(read_submission(args.file)[0])
        if pool is not None:  # every key's error would say the same: lead with what the file is for
            print(
                f"use `ego4d-lta ensemble {shown} -o OUT.json` (its {K} most representative sequences per window): "
                f"{shown} is a pool of {pool} samples per window (predict --pool), not a {K}-sequence submission",
                file=sys.stderr,
            )
            return EXIT_INVALID
        for error in report.errors:
            print(f"error: {shown}: {error}", file=sys.stderr)
        hint = did_you_mean(args.file, annotations, args.split)
        print(f"{shown}: invalid {args.split} submission ({len(report.errors)} errors){hint}", file=sys.stderr)
        return EXIT_INVALID
    if not args.json:
        print(format_report(report))
        if args.plot and report.scores is None:
            print(f"note: --plot needs a labelled split; {args.split} has no labels", file=sys.stderr)
        elif args.plot:
            print(f"plot: {printable_path(args.plot)}")
    return 0
