"""Which split a submission is for, read from the file itself: no silent default to `test`.

`predict` writes `<name>.meta.json` beside each submission (and its pools) naming the split; a file without one is
matched by its keys against the val and test windows. `validate` and `ensemble` use this when `--split` is not
given, and name the likely split when an explicit `--split` does not fit ("did you mean --split val?").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import read_input
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.submission import read_submission
from ego4d_lta.challenge.windows import make_windows

SUBMISSION_SPLITS = ("val", "test")
"""The splits a submission can be for (train has no challenge file)."""
POOL_SUFFIX = re.compile(r"\.pool\d+$")


@dataclass(frozen=True)
class SplitGuess:
    """A file's split and how it was found (`source`: the sidecar's name or "its key set"); split None: unknown."""

    split: str | None
    source: str = ""

    def line(self, path: Path | str) -> str:
        """The one line a command prints when it uses the guess."""
        return f"{path}: split {self.split} (from {self.source}; pass --split to choose)"


def sidecar_path(path: Path | str) -> Path:
    """`x-test.json` and its pools `x-test.pool50.json` -> `x-test.meta.json` (written by `predict`)."""
    path = Path(path)
    return path.with_name(POOL_SUFFIX.sub("", path.stem) + ".meta.json")


def sidecar_split(path: Path | str) -> str | None:
    """The split the sidecar names, or None (no sidecar, unreadable, or no valid "split")."""
    meta = sidecar_path(path)
    try:
        split = orjson.loads(read_input(meta, limit=64 << 20)).get("split")  # a regular file, never /dev/zero
    except (UserError, orjson.JSONDecodeError, AttributeError):
        return None
    return split if split in SUBMISSION_SPLITS else None


def key_set_split(path: Path | str, annotations_dir: Path | str) -> str | None:
    """The split whose windows share the most keys with the file's (None: no overlap, a tie, or no annotations).

    A split whose annotation file is missing is left out (a user may have only the val annotations).
    """
    obj, _ = read_submission(path)
    if not isinstance(obj, dict) or not obj:
        return None
    keys = set(obj)
    overlap = {}
    for split in SUBMISSION_SPLITS:
        try:
            table, _ = load_annotations(annotations_dir, split)
        except UserError:
            continue
        required, extra = make_windows(table, include_extra=True).key_sets()
        overlap[split] = len(keys & (set(required) | set(extra)))
    best = sorted(overlap.items(), key=lambda kv: -kv[1])
    if not best or best[0][1] == 0 or (len(best) > 1 and best[0][1] == best[1][1]):
        return None
    return best[0][0]


def guess_split(path: Path | str, annotations_dir: Path | str) -> SplitGuess:
    """The sidecar's split, else the key set's; `SplitGuess(None)` when neither tells."""
    split = sidecar_split(path)
    if split is not None:
        return SplitGuess(split, sidecar_path(path).name)
    split = key_set_split(path, annotations_dir)
    return SplitGuess(split, "its key set" if split else "")


def infer_split(paths: list[Path], annotations_dir: Path | str) -> SplitGuess:
    """One split for files that must share one; a file whose split cannot be told is a user error."""
    guesses = {}
    for path in paths:
        guess = guess_split(path, annotations_dir)
        if guess.split is None:
            raise UserError(
                f"{path}: cannot tell its split (no {sidecar_path(path).name}, and its keys match neither the val "
                f"nor the test windows in {annotations_dir}): pass --split val or --split test"
            )
        guesses[path] = guess
    splits = {g.split for g in guesses.values()}
    if len(splits) > 1:
        listed = ", ".join(f"{p} is {g.split}" for p, g in guesses.items())
        raise UserError(f"the files are of different splits ({listed}): pass files of one split")
    return next(iter(guesses.values()))


def other_split(path: Path | str, annotations_dir: Path | str, split: str) -> SplitGuess | None:
    """The file's own split when it is not `split` (None when it is, or when the file does not tell)."""
    try:
        guess = guess_split(path, annotations_dir)
    except UserError:
        return None
    return None if guess.split is None or guess.split == split else guess


def did_you_mean(path: Path | str, annotations_dir: Path | str, split: str) -> str:
    """ " (did you mean --split val? ...)" when the file looks like another split than `split`, else ""."""
    guess = other_split(path, annotations_dir, split)
    return f" (did you mean --split {guess.split}? {guess.source} says {path} is {guess.split})" if guess else ""
