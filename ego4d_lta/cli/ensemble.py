"""`ego4d-lta ensemble`: combine submissions or pools of one split into one K = 5 submission."""

from __future__ import annotations

import argparse
from pathlib import Path

from ego4d_lta.base.errors import UserError
from ego4d_lta.cli.common import add_annotations, add_split, annotation_files, annotations_dir, chosen_split

HELP = "combine submissions into one (K=5 chosen from all their sequences)"
EPILOG = "example: ego4d-lta ensemble submissions/a-val.json submissions/b-val.json -o submissions/ab-val.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "files", type=Path, nargs="+", metavar="FILE", help="valid submissions or pools (predict --pool) of one split"
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="output submission JSON")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="one per file (default: equal)")
    add_split(p)
    add_annotations(p)


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.base.jsonio import printable_path
    from ego4d_lta.base.output_guard import check_output
    from ego4d_lta.challenge.split_guess import did_you_mean
    from ego4d_lta.challenge.validate import format_report, validate_file
    from ego4d_lta.workflow.ensemble import ensemble

    annotations = annotations_dir(args)
    check_output(args.out, "submission", [*args.files, *annotation_files(annotations)], flag="-o")
    args.split = chosen_split(args, args.files, annotations)
    try:
        result = ensemble(args.files, args.out, annotations, args.split, args.weights)
    except UserError as e:  # a file of the other split: say which split it is
        hint = next((h for f in args.files if (h := did_you_mean(f, annotations, args.split))), "")
        raise UserError(f"{e}{hint}") from None
    own = f" (each submission's own 5: {', '.join(f'{x:.3f}' for x in result.inputs_expected)})"
    print(
        f"{printable_path(result.out)}: K=5 chosen from {result.pool} sequences per window of {len(result.inputs)} "
        "inputs, "
        f"{result.windows} windows; expected distance to the pool {result.expected:.3f}"
        + (own if result.submissions else "")
    )
    if args.split == "val":  # labelled: show what it bought
        for path in [*result.submissions, result.out]:
            print(format_report(validate_file(path, annotations, "val")))
    return 0
