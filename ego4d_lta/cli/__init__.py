"""`ego4d-lta`: one argparse tree, one module per command (its arguments and handler side by side).

Exit status: 0 success, 2 a user mistake (one line on stderr, no traceback), 1 a bug.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from ego4d_lta import __version__
from ego4d_lta.base.errors import ENVIRONMENT_ERRNOS, UserError
from ego4d_lta.cli import (
    configs,
    demo,
    ensemble,
    extract,
    import_features,
    predict,
    recognise,
    report,
    resize,
    synth,
    train,
    upload,
    validate,
)
from ego4d_lta.cli.common import EXIT_INVALID, HelpFormatter

COMMANDS = {
    "demo": demo,
    "synth": synth,
    "resize": resize,
    "extract": extract,
    "import-features": import_features,
    "recognise": recognise,
    "configs": configs,
    "train": train,
    "predict": predict,
    "validate": validate,
    "ensemble": ensemble,
    "upload": upload,
    "report": report,
}
"""In pipeline order, as `ego4d-lta --help` lists them."""
SET_COMMANDS = ("configs", "train", "predict", "recognise")
"""The commands whose `--set KEY=VALUE` sets a config field."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ego4d-lta",
        description="Ego4D long-term action anticipation: data, features, training, challenge submissions.",
    )
    parser.add_argument("--version", action="version", version=f"ego4d-lta {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__.splitlines()[0],
            epilog=module.EPILOG,
            formatter_class=HelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(func=module.run, command_parser=p)
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; a stray `section.key=value` on a command that takes `--set` is told to use `--set`."""
    args, extra = build_parser().parse_known_args(argv)
    if extra:
        command: argparse.ArgumentParser = args.command_parser
        takes_set = args.command in SET_COMMANDS
        fields = [x for x in extra if re.fullmatch(r"[A-Za-z_]\w*\.\w+=.*", x)]
        if takes_set and fields:
            command.error(f"use --set {fields[0]} to set a config field (unrecognized arguments: {' '.join(extra)})")
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        return args.func(args)
    except UserError as e:
        from ego4d_lta.base.jsonio import printable_line  # (not at start-up: orjson)

        print(printable_line(f"ego4d-lta {args.command}: error: {e}"), file=sys.stderr)
        return EXIT_INVALID
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise
        from ego4d_lta.base.jsonio import printable

        where = printable(str(e.filename), 200) if e.filename is not None else "a file"
        print(f"ego4d-lta {args.command}: error: {where}: {e.strerror}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print(f"ego4d-lta {args.command}: interrupted", file=sys.stderr)
        return 130
