"""Ego4D's released per-video feature files as `import-features` reads them: every rule a file must pass before any
of its rows is used (a missing file, one that does not match its checksums, one that holds anything but a plain
dense floating-point (T, D) tensor), the frame counts of `manifest.csv`, and the stamp that tells a changed file."""

from __future__ import annotations

import csv
import io
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from ego4d_lta.base.archive_check import zip_damage
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import printable

PATH_LIMIT = 200
"""How much of a path an error line shows (`printable`: control and non-ASCII characters escaped)."""


class FeatureFileError(Exception):
    """A video's feature file that is missing (its segments get no features); the message says why."""


class InvalidFeatureFile(UserError):
    """A video's feature file that is there but is not what Ego4D releases: the import stops before writing any of
    its rows (a corrupted or foreign file is re-downloaded, not silently skipped)."""

    def __init__(self, path: Path, rule: str) -> None:
        super().__init__(f"{printable(str(path), PATH_LIMIT)}: {rule}; replace the file and rerun")


def frame_counts(folder: Path) -> dict[str, int]:
    """Videos' frame counts from `manifest.csv` when it has `video_uid` and `num_frames` columns (then the
    back-shifted last row is placed exactly); else empty (the last row is taken at its regular place)."""
    path = folder / "manifest.csv"
    if not path.is_file():
        return {}
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, byte = raw[: e.start].count(b"\n") + 1, raw[e.start]
        raise UserError(f"{printable(str(path), PATH_LIMIT)}: line {line}: byte {byte:#04x} is not UTF-8") from None
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"video_uid", "num_frames"} <= set(reader.fieldnames):
            return {}
        counts = {}
        for line, row in enumerate(reader, start=2):
            value = row["num_frames"]
            if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,18}", value.strip()):
                shown = "nothing" if value is None else f"'{printable(str(value), 40)}'"
                raise UserError(
                    f"{printable(str(path), PATH_LIMIT)}: line {line}: num_frames {shown} is not an integer count "
                    "of frames (digits only, at most 18)"
                )
            counts[row["video_uid"]] = int(value)
        return counts


def load_rows(path: Path, dim: int) -> np.ndarray:
    """A video's (T, dim) rows, memory-mapped when the file allows; tensors only (`weights_only`, no code run).

    A missing file is a FeatureFileError (the video's segments get no features); a file that is there but does not
    match the checksums it records, or is not a dense, CPU, floating-point (T, dim) tensor whose storage holds every
    element once, is an InvalidFeatureFile."""
    if not path.exists():
        raise FeatureFileError(f"feature file missing ({printable(str(path), PATH_LIMIT)})")
    if not path.is_file():
        raise InvalidFeatureFile(path, "not a regular file")
    try:
        if damage := zip_damage(path):  # torch.load never compares the checksums its files record
            raise InvalidFeatureFile(path, f"damaged ({damage})")
        with warnings.catch_warnings():  # torch's notes on what a file holds (a sparse tensor): the rules below say it
            warnings.simplefilter("ignore")
            obj = _load(path)
    except InvalidFeatureFile:
        raise
    except OSError as e:
        raise InvalidFeatureFile(path, f"cannot read it ({e.strerror or type(e).__name__})") from None
    except Exception as e:  # torch.load on arbitrary bytes raises anything: all mean "not a tensor file"
        first_line = printable((str(e).splitlines() or [""])[0], 120)
        raise InvalidFeatureFile(path, f"not a torch tensor file ({type(e).__name__}: {first_line})") from None
    return tensor_rows(path, obj, dim)


def _load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):  # files in torch's legacy format cannot be memory-mapped: read them whole
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def tensor_rows(path: Path, obj: object, dim: int) -> np.ndarray:
    """`obj` as (T, dim) numpy rows, or an InvalidFeatureFile naming the first rule it breaks."""
    if type(obj) is not torch.Tensor:
        raise InvalidFeatureFile(path, f"holds a {type(obj).__name__}, expected a plain (T, {dim}) tensor")
    if obj.layout != torch.strided:
        raise InvalidFeatureFile(path, f"holds a {obj.layout} tensor, expected a dense one")
    if obj.device.type != "cpu":
        raise InvalidFeatureFile(path, f"holds a tensor on the {obj.device.type} device, expected one with its data")
    if obj.ndim != 2 or obj.shape[1] != dim or obj.shape[0] < 1:
        raise InvalidFeatureFile(path, f"holds a tensor of shape {tuple(obj.shape)}, expected (T, {dim}) for this set")
    if not obj.is_floating_point():
        raise InvalidFeatureFile(path, f"holds a {obj.dtype} tensor, expected floating-point features")
    if not stored_once(obj):
        stored = obj.untyped_storage().nbytes() - obj.storage_offset() * obj.element_size()
        raise InvalidFeatureFile(
            path, f"holds a {tuple(obj.shape)} tensor with strides {obj.stride()} over {stored} stored bytes, "
            "expected real strides (every value stored once)"
        )  # fmt: skip
    if obj.dtype not in (torch.float16, torch.float32, torch.float64):
        obj = obj.float()  # bfloat16 has no numpy view
    return obj.detach().numpy()


def stored_once(obj: torch.Tensor) -> bool:
    """Whether every element of `obj` has a place of its own in its storage, inside it: taken by increasing stride,
    each dimension steps over the whole extent of the ones before (no stride of 0, no rows that overlap, as
    `as_strided` can make), and the last element is stored."""
    extent, last = 1, obj.storage_offset()
    for stride, size in sorted((s, n) for s, n in zip(obj.stride(), obj.shape, strict=True) if n > 1):
        if stride < extent:
            return False
        extent, last = stride * size, last + stride * (size - 1)
    return (last + 1) * obj.element_size() <= obj.untyped_storage().nbytes()


def source_stamp(path: Path, frames: int | None) -> list[int] | None:
    """What identifies a video's input as read: `[size, mtime_ns, ctime_ns, frames]` of its file (of its target when
    it is a link; `frames`: its manifest.csv count, -1 without one), or None when there is no file to stat.

    The ctime catches a replacement that kept the size and the mtime (`cp -p`, `tar x`, `touch -r`): the kernel
    sets it on every change and no tool can set it back; a chmod or a copy elsewhere changes it too, which costs only
    a re-import. Hashing the files instead would read whole downloads on every rerun (the import reads only the rows
    segments use): measured 241 ms of sha256 against a 198 ms import on benchmarks/bench_import.py's Ego4D-like set,
    files in the page cache."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, -1 if frames is None else int(frames)]
