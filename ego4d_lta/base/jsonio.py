"""JSON files the way the toolkit needs them: one-line errors on bad input, atomic writes (`base/durable.py`)."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson

from ego4d_lta.base.durable import write_bytes_atomic
from ego4d_lta.base.errors import UserError

MAX_INPUT_BYTES = 8 << 30
"""The largest file `read_input` reads (8 GiB: a test-split pool of 1,000 samples per window is ~4 GB)."""


def read_input(path: Path | str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """A file's bytes, checked before reading: it must be a regular file (not /dev/zero, a pipe or a socket) of at
    most `limit` bytes; one-line `UserError`s otherwise."""
    path = Path(path)
    shown = printable(str(path), 200)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"{shown}: no such file") from None
    except OSError as e:
        raise UserError(f"{shown}: cannot read ({e.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{shown}: is a directory, expected a JSON file")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{shown}: not a regular file (a device, pipe or socket); save it to a file first")
    if info.st_size > limit:
        raise UserError(f"{shown}: {info.st_size / 2**30:.1f} GiB, more than the {limit / 2**30:.0f} GiB read at most")
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"{shown}: cannot read ({e.strerror})") from None


def read_json(path: Path | str) -> object:
    """Parse a JSON file, turning a missing, non-regular, oversized or malformed file into a one-line `UserError`."""
    return read_json_with_bytes(path)[0]


def read_json_with_bytes(path: Path | str) -> tuple[object, bytes]:
    """`read_json`'s object and the file's raw bytes (a submission's fast check reads them again)."""
    raw = read_input(path)
    try:
        return orjson.loads(raw), raw
    except orjson.JSONDecodeError as e:
        raise UserError(f"{printable(str(path), 200)}: not valid JSON ({e})") from None


def write_json_atomic(path: Path | str, obj: object, option: int = 0) -> Path:
    """Write `obj` with orjson through the durable write path (`base/durable.py`): a crash or a full disk leaves
    either the old file or none, never a half-written one."""
    return write_bytes_atomic(path, orjson.dumps(obj, option=option | orjson.OPT_SERIALIZE_NUMPY))


def describe(value: object) -> str:
    """Describe a JSON value for an error message: `a list`, `null`, `"abc" (string)`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (bool)"
    if isinstance(value, str):
        return f'"{printable(value, 30)}" (string)'
    if isinstance(value, float):
        return f"{value!r} (float)"
    if isinstance(value, int):
        return f"{value} (integer)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def printable(text: str, limit: int = 80) -> str:
    """`text` safe to print on one line: control and non-ASCII characters escaped, long text cut."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


PATH_LIMIT = 300
"""How much of a path `printable_path` shows."""


def printable_path(path: Path | str) -> str:
    """A user-supplied path or name for the terminal or a report: `printable`, with room for a long path."""
    return printable(str(path), PATH_LIMIT)


def printable_line(text: str, limit: int = 4000) -> str:
    """A whole message for the terminal: unchanged when it is printable ASCII already (its names went through
    `printable`), else `printable` over all of it, so no raw control character ever reaches a terminal."""
    return text if text.isascii() and text.isprintable() else printable(text, limit)
