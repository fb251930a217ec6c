"""What a command may write: never one of its inputs, never an existing file of another kind, never outside its root.

Every command that writes a file asks `check_output` first (before any slow work), so a mistyped `-o` or `--plot`
fails in one line with nothing changed on disk. A file of the same kind (a submission over a submission, our sidecar
over our sidecar) may be replaced: rerunning a command is normal. "Kind" is read from the file's first bytes,
not its name, so `--plot s.json` onto a submission is refused whatever the suffix says.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import orjson

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import printable

KINDS = ("submission", "sidecar", "png", "markdown", "recognitions")
"""What a command writes: a submission or pool JSON, predict's `<name>.meta.json`, a plot, report.md, a recognitions
file (segment key -> recognised verb and noun ids)."""

_PNG = b"\x89PNG\r\n\x1a\n"
_SAFE_NAME = re.compile(r"[A-Za-z0-9._+-]+")


def check_output(
    path: Path | str, kind: str, inputs: Iterable[Path | str] = (), flag: str = "--out", sidecar_of: str | None = None
) -> Path:
    """`path` if a command may write a `kind` file there; else a `UserError` naming the flag, the path and the rule.

    `sidecar_of`: an existing sidecar may be replaced only by the sidecar of the same submission file name.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    path = Path(path)
    shown = printable(str(path), 200)
    for item in inputs:
        if _same_file(path, Path(item)):
            raise UserError(f"{flag} {shown}: is one of this command's inputs; write the {kind} elsewhere")
    if path.is_dir():
        raise UserError(f"{flag} {shown}: is a directory, expected a {kind} file name")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise UserError(f"{flag} {shown}: exists and is not a regular file")
        found = file_kind(path)
        if found != kind:
            what = f"a {found} file" if found else "a file this command did not write"
            raise UserError(f"{flag} {shown}: already holds {what}; refusing to replace it with a {kind}")
        if sidecar_of is not None and orjson.loads(path.read_bytes()).get("submission") != sidecar_of:
            raise UserError(f"{flag} {shown}: is the sidecar of another submission; refusing to replace it")
    return path


def check_inside(root: Path | str, path: Path | str, what: str) -> Path:
    """`path` if it stays under `root` once `..` is resolved; else a one-line `UserError`.

    Lexical: a symlink the user made on purpose (runs/ on scratch storage) is followed, as they meant it to be.
    """
    base = Path(os.path.abspath(root))
    target = Path(os.path.abspath(path))
    if target != base and base not in target.parents:
        raise UserError(f"{what} {printable(str(path), 200)}: leaves {printable(str(root), 200)}; pick a plain name")
    return Path(path)


def check_name(value: str, what: str) -> str:
    """A name that becomes one path component (a run name): letters, digits, `._+-`, not `.` or `..`."""
    if not _SAFE_NAME.fullmatch(value) or value in (".", ".."):
        raise UserError(f"{what} {printable(value, 80)!s}: must be a plain name (letters, digits, . _ + -), not a path")
    return value


def file_kind(path: Path) -> str | None:
    """Which of `KINDS` the file at `path` holds, judged by its content; None when none (or unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_PNG))
            if head == _PNG:
                return "png"
            raw = head + f.read()
    except OSError:
        return None
    if path.suffix == ".md" and raw.startswith(b"| run |"):  # report.md: the runs table
        return "markdown"
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("submission"), str) and "split" in obj:
        return "sidecar"
    first = next(iter(obj.values()), None) if obj else {}
    if isinstance(first, dict) and type(first.get("verb")) is int and type(first.get("noun")) is int:
        return "recognitions"
    if not obj or (isinstance(first, dict) and "verb" in first and "noun" in first):
        return "submission"
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_dataset_root(root: Path | str, marker: str = "synthetic.json") -> Path:
    """A folder `synth` may write a dataset into: new, empty, or an earlier synthetic one (it holds `marker`).

    A real dataset root (annotations or clips there, no marker) is refused: its `fho_lta_*.json` would be replaced.
    """
    root = Path(root)
    shown = printable(str(root), 200)
    if root.exists() and not root.is_dir():
        raise UserError(f"{shown}: exists and is not a folder; pick a new dataset root")
    if (root / marker).is_file():
        return root
    held = [p for p in (root / "annotations", root / "clips") if p.is_dir() and any(p.iterdir())]
    if held:
        raise UserError(
            f"{shown}: already holds a dataset ({held[0].name}/ is not empty, no {marker}); "
            "synth writes only into a new folder or an earlier synthetic dataset"
        )
    return root
