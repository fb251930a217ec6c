"""What every command shares: where the data is, argument types, the progress line, the exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ego4d_lta.config import Config

EXIT_INVALID = 2
"""A user mistake: one line on stderr, no traceback (1 is left to bugs)."""


def default_data_dir() -> Path:
    """`$EGO4D_LTA_DATA`, else `data/`: a dataset root in the official layout."""
    return Path(os.environ.get("EGO4D_LTA_DATA", "data"))


def default_features_dir(data: Path | None = None) -> Path:
    """`$EGO4D_LTA_FEATURES`, else DATA/features: where feature caches live."""
    env = os.environ.get("EGO4D_LTA_FEATURES")
    return Path(env) if env else (data or default_data_dir()) / "features"


def requested_paths(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """(dataset root, feature cache root) as asked for: the flag, else its environment variable, else None.

    The one rule for `--data` / `--features`: `extract` then falls back to `data/` and DATA/features, `train` to
    its config's paths and `predict` to the run's.
    """
    data = args.data if args.data is not None else default_data_dir() if os.environ.get("EGO4D_LTA_DATA") else None
    features = args.features
    if features is None and os.environ.get("EGO4D_LTA_FEATURES"):
        features = default_features_dir(data)
    return data, features


def with_requested_paths(cfg: Config, args: argparse.Namespace) -> Config:
    """`cfg` with the dataset and feature roots asked for (`requested_paths`) put over its own."""
    data, features = requested_paths(args)
    if data is not None:
        cfg.data.data_dir = str(data)
    if features is not None:
        cfg.data.features_dir = str(features)
    return cfg


def dataset_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(dataset root, feature cache root) for the commands that make caches: as asked, else data/, DATA/features."""
    data, features = requested_paths(args)
    data = data or default_data_dir()
    return data, features or default_features_dir(data)


def annotations_dir(args: argparse.Namespace) -> Path:
    """`--annotations DIR`, else `--data ROOT`/annotations, else the default dataset root's."""
    return args.annotations or (args.data or default_data_dir()) / "annotations"


def annotation_files(annotations: Path) -> list[Path]:
    """The files of an annotations folder: a command's inputs, never its outputs."""
    return sorted(p for p in annotations.glob("*") if p.is_file()) if annotations.is_dir() else []


def add_annotations(p: argparse.ArgumentParser) -> None:
    """Where the split files and the taxonomy are: the same two ways for every command that checks submissions."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--annotations", type=Path, default=None, help="folder with fho_lta_*.json and the taxonomy")
    add_data(where)


def add_data(p: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup, what: str = "") -> None:
    p.add_argument("--data", type=Path, default=None, help=what or "dataset root (default: $EGO4D_LTA_DATA or data/)")


def add_features(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument(
        "--features",
        type=Path,
        default=None,
        help=what or "feature cache root (default: $EGO4D_LTA_FEATURES or DATA/features)",
    )


def add_quiet(p: argparse.ArgumentParser) -> None:
    """`-q` means the same everywhere: no progress bar; results, warnings and errors still print."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (results, warnings, errors still print)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every default in `--help` (unless the help already says it, or there is none); the example epilog as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        none = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "default" in text or none:
            return text
        return super()._get_help_string(action)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer")
    return value


def bounded(low: float, high: float, kind: type = int) -> Callable[[str], float]:
    """An argparse type: an int (or, with `kind=float`, a finite float) in [low, high]; the error names the range,
    which the option's help states too (`in_range`)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not (low <= value <= high):  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"{text!r}: expected {'an integer' if kind is int else 'a number'} in "
                                             f"{in_range(low, high)}")  # fmt: skip
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def in_range(low: float, high: float) -> str:
    return f"{low:g}..{high:g}" if isinstance(low, float) or isinstance(high, float) else f"{low}..{high}"


MAX_WORKERS = 256
"""The most decoding processes a command starts (each is a process with its own copy of the decoder)."""


def count(text: str) -> int:
    """A count that may be 0 (GPUs per node)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 or a positive integer")
    return int(text)


def shard(text: str) -> tuple[int, int]:
    """`i/n` (0-based): e.g. `$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{text!r}: needs 0 <= i < n")
    return i, n


def add_split(p: argparse.ArgumentParser) -> None:
    """`--split` for a command that reads submissions: no default, the file says which."""
    p.add_argument(
        "--split",
        choices=["val", "test"],
        default=None,
        help="the submissions' split (default: from <name>.meta.json beside the file, else from its keys)",
    )


def chosen_split(args: argparse.Namespace, files: list[Path], annotations: Path) -> str:
    """`--split` as given, else the one the files say (one line on stderr names it and where it came from)."""
    if args.split is not None:
        return args.split
    from ego4d_lta.challenge.split_guess import infer_split

    guess = infer_split(list(files), annotations)
    print(guess.line(files[0] if len(files) == 1 else f"{len(files)} files"), file=sys.stderr)
    return guess.split
