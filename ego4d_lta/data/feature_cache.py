"""The feature cache store: per-segment frozen-encoder features in memory-mapped arrays (no models here).

Layout (design §4.4), one folder per split under `FEATURES_DIR/<backbone-tag>/`:

    <split>/manifest.json                     what made the features (models, weights hashes, sampling, ...)
    <split>/shard-000-of-004/index.csv        clip_uid, action_idx, view, start_sec, end_sec: one row each
    <split>/shard-000-of-004/slowfast.npy     (rows, 2304) float16, memory-mapped
    <split>/shard-000-of-004/clip.npy         (rows, frames, D) float16, memory-mapped
    <split>/shard-000-of-004/omnivore.npy     (rows, 1536) float16 (caches imported from Ego4D's released features)
    <split>/shard-000-of-004/progress.jsonl   one line per finished clip ({"clip", "ok", "error", "unusable",
                                              "source"}), fsynced; a later line for a clip replaces an earlier one
    <split>/shard-000-of-004/done.json        written when every clip of the shard is finished

Shards partition the clips, so they can run at once (a Slurm array) without sharing a file. A clip's rows are
flushed to disk before its progress line is written, so a killed run resumes at the first unfinished clip.
A cache whose manifest differs from what the caller expects is refused, naming the first difference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import orjson
import pandas as pd

from ego4d_lta.base.difference import first_difference
from ego4d_lta.base.durable import atomic_target
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.folder_lock import FolderLock
from ego4d_lta.base.jsonio import write_json_atomic
from ego4d_lta.data.feature_record import CacheManifest

MANIFEST = "manifest.json"
INDEX_COLUMNS = ["clip_uid", "action_idx", "view", "start_sec", "end_sec"]
ARRAYS = ("slowfast", "clip")
"""What `extract` writes; an imported cache holds its released set's array (`FeatureRecord.arrays`)."""


class FeatureCacheError(UserError):
    """A feature cache that is missing, unfinished or was made with other settings."""


def shard_name(shard: int, shards: int) -> str:
    return f"shard-{shard:03d}-of-{shards:03d}"


def ensure_manifest(split_dir: Path, manifest: CacheManifest) -> None:
    """Write the split's manifest, or check that the one there matches (shards of one cache must agree)."""
    path = split_dir / MANIFEST
    if path.is_file():
        check_manifest(split_dir, manifest)
        return
    split_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, manifest.to_json(), option=orjson.OPT_INDENT_2)


def check_manifest(split_dir: Path, expected: CacheManifest) -> CacheManifest:
    """The manifest there, if it matches `expected`; else a FeatureCacheError naming the first difference."""
    path = split_dir / MANIFEST
    found = _read_manifest(split_dir)
    # The prompt bank depends on the CLIP model, its weights and the vocabulary, never on the features: another
    # one (a scenario list added later) is recorded by `record_prompt_bank`, not a reason to re-extract.
    diff = first_difference(found.to_json(), expected.to_json(), ignore=("package", "weights_origin", "prompt_bank"))
    if diff:
        key, a, b = diff
        raise FeatureCacheError(
            f"{path}: stale feature cache, made with other settings ({key}: {json.dumps(a)} in the cache, "
            f"{json.dumps(b)} now); delete the folder or use another --features dir"
        )
    return found


def record_prompt_bank(tag_dir: Path, bank: str, clip: object, keep: Callable[[str], bool]) -> list[str]:
    """Point every split cache in `tag_dir` whose CLIP record is `clip` at the prompt bank file `bank` (beside the
    split folders), except those whose recorded bank `keep(name)` says to keep; returns the splits changed."""
    changed = []
    for path in sorted(Path(tag_dir).glob(f"*/{MANIFEST}")):
        found = CacheManifest.read(path)
        if found.prompt_bank == bank or found.record.clip != clip or (found.prompt_bank and keep(found.prompt_bank)):
            continue
        write_json_atomic(path, replace(found, prompt_bank=bank).to_json(), option=orjson.OPT_INDENT_2)
        changed.append(found.split)
    return changed


class FinishedClip(NamedTuple):
    """One clip's progress record, as `ShardWriter.clips_finished` writes it."""

    clip: str
    error: str | None = None
    """Why the clip has no features (None: it was written)."""
    unusable: dict[int, str] | None = None
    """Segments (action_idx -> reason) of a written clip that got no features."""
    source: object = None
    """What identifies the input its rows came from (import-features: the video file's stamp), so that a rerun can
    tell a changed input; any JSON value, compared for equality only."""


@dataclass
class ShardWriter:
    """Writes one shard; reopening an unfinished shard resumes it."""

    path: Path
    index: pd.DataFrame
    arrays: dict[str, np.memmap]
    finished: dict[str, dict]
    damaged: str | None = None
    """Why an existing shard was found damaged and started again from scratch (None: it was sound or new)."""
    _files: dict = field(default_factory=dict)
    """Array name -> its `.npy` opened for `write_block` (fsynced with each commit, closed by `finish`)."""
    _lock: FolderLock | None = None
    """The shard's lock, released by `finish`."""

    @classmethod
    def open(
        cls,
        split_dir: Path,
        manifest: CacheManifest,
        shard: tuple[int, int],
        index: pd.DataFrame,
        dims: dict[str, tuple],
        dtype: str = "float16",
    ) -> ShardWriter:
        """The shard's writer, holding the shard's lock until `finish`: a second writer of the same shard (another
        `extract` or `import-features`) is refused naming the first's pid and host."""
        ensure_manifest(split_dir, manifest)
        lock = FolderLock.take(split_dir / shard_name(*shard), "feature shard", "wait for it to finish")
        try:
            writer = cls._open_locked(split_dir / shard_name(*shard), index, dims, dtype)
        except BaseException:
            lock.release()
            raise
        writer._lock = lock
        return writer

    @classmethod
    def _open_locked(cls, path: Path, index: pd.DataFrame, dims: dict[str, tuple], dtype: str) -> ShardWriter:
        index = index[INDEX_COLUMNS].reset_index(drop=True)
        damaged = None
        if (path / "index.csv").is_file():
            try:
                old = read_index(path)
                for name in dims:  # a truncated array or index is rebuilt, never extended with zeros
                    check_array(path / f"{name}.npy", len(old), dtype)
            except FeatureCacheError as e:
                damaged, old = str(e), None
        if damaged is None and (path / "index.csv").is_file():
            same = len(old) == len(index) and (old[INDEX_COLUMNS[:3]].values == index[INDEX_COLUMNS[:3]].values).all()
            if not same:
                raise FeatureCacheError(
                    f"{path}: the shard holds other segments than the annotations now give; delete it to re-extract"
                )
            arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r+") for name in dims}
            for name, shape in dims.items():
                if arrays[name].shape[1:] != tuple(shape):
                    raise FeatureCacheError(f"{path}/{name}.npy: shape {arrays[name].shape}, expected (*, {shape})")
            _drop_torn_tail(path / "progress.jsonl")
        else:
            (path / "done.json").unlink(missing_ok=True)
            (path / "index.csv").unlink(missing_ok=True)
            path.mkdir(parents=True, exist_ok=True)
            arrays = {
                name: np.lib.format.open_memmap(
                    path / f"{name}.npy", mode="w+", dtype=dtype, shape=(len(index), *dims[name])
                )
                for name in dims
            }
            (path / "progress.jsonl").unlink(missing_ok=True)
            with atomic_target(path / "index.csv") as tmp:  # last: an index means the arrays are there
                index.to_csv(tmp, index=False)
        return cls(path=path, index=index, arrays=arrays, finished=read_progress(path), damaged=damaged)

    def pending_clips(self) -> list[str]:
        """Clips of this shard without a progress line, in index order."""
        return [c for c in dict.fromkeys(self.index["clip_uid"]) if c not in self.finished]

    def redo(self, clips: list[str]) -> None:
        """Finished clips to write again (their input changed): pending from now on, and the shard unfinished (no
        `done.json`, so no reader takes it as complete) until `finish`. Their old progress lines stay until the new
        ones replace them, so a kill in between redoes them again."""
        if not clips:
            return
        (self.path / "done.json").unlink(missing_ok=True)
        for clip in clips:
            self.finished.pop(clip, None)

    def write(self, rows: np.ndarray, features: dict[str, np.ndarray]) -> None:
        self._check_finite(features)
        for name, arr in self.arrays.items():
            arr[rows] = features[name]

    def write_block(self, start: int, features: dict[str, np.ndarray]) -> None:
        """Consecutive rows from `start`, written to the file (a positioned write: about twice as fast as filling
        the fresh pages of the memmap, which fault one by one); they reach the disk with the next commit."""
        self._check_finite(features)
        for name, arr in self.arrays.items():
            block = np.ascontiguousarray(features[name], dtype=arr.dtype)
            if block.shape[1:] != arr.shape[1:] or not 0 <= start <= start + len(block) <= len(arr):
                raise ValueError(f"{name}: rows {start}+{block.shape} do not fit the array {arr.shape}")
            if name not in self._files:
                self._files[name] = open(self.path / f"{name}.npy", "r+b", buffering=0)  # noqa: SIM115 (closed by finish)
            data, offset = memoryview(block).cast("B"), arr.offset + start * block[:1].nbytes
            while data:
                written = os.pwrite(self._files[name].fileno(), data, offset)
                data, offset = data[written:], offset + written

    def _check_finite(self, features: dict[str, np.ndarray]) -> None:
        for name in self.arrays:
            if not np.isfinite(features[name]).all():
                raise FeatureCacheError(f"{self.path}/{name}.npy: the features hold NaN or inf; nothing written")

    def clip_finished(self, clip_uid: str, error: str | None = None, unusable: dict[int, str] | None = None) -> None:
        """Record a clip as done (its rows first reach the disk) or as failed with a reason; `unusable`: segments
        (action_idx -> reason) of a finished clip that got no features."""
        self.clips_finished([FinishedClip(clip_uid, error, unusable)])

    def clips_finished(self, clips: list[FinishedClip] | list[tuple]) -> None:
        """`clip_finished` for several clips (`FinishedClip`s or tuples of its fields) with one flush and one fsync
        (fast writers commit in batches)."""
        if not clips:
            return
        for arr in self.arrays.values():
            arr.flush()
        for f in self._files.values():
            os.fsync(f.fileno())
        entries = []
        for clip_uid, error, unusable, source in (FinishedClip(*c) for c in clips):
            entry = {"clip": clip_uid, "ok": error is None, **({"error": error} if error else {})}
            if unusable:
                entry["unusable"] = [[int(a), reason] for a, reason in sorted(unusable.items())]
            if source is not None:
                entry["source"] = source
            entries.append(entry)
        with open(self.path / "progress.jsonl", "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(entry) + "\n" for entry in entries))
            f.flush()
            os.fsync(f.fileno())
        for entry in entries:
            self.finished[entry["clip"]] = entry

    def finish(self, limited: bool = False) -> dict:
        """Mark the shard complete (`limited`: only the first clips were asked for)."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        failed = {c: e["error"] for c, e in self.finished.items() if not e["ok"]}
        done = {"rows": len(self.index), "clips": len(self.finished), "failed": failed, "limited": limited}
        write_json_atomic(self.path / "done.json", done, option=orjson.OPT_INDENT_2)
        if self._lock is not None:
            self._lock.release()
        return done


def read_index(shard_dir: Path) -> pd.DataFrame:
    """The shard's index.csv; an unreadable, truncated or mistyped one is a FeatureCacheError."""
    path = shard_dir / "index.csv"
    try:
        types = {"clip_uid": str, "action_idx": np.int64, "view": np.int64}
        index = pd.read_csv(path, dtype=types, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise FeatureCacheError(f"{path}: unreadable index ({type(e).__name__}); delete the shard") from None
    if list(index.columns) != INDEX_COLUMNS:
        raise FeatureCacheError(f"{path}: columns {list(index.columns)}, expected {INDEX_COLUMNS}")
    for column in ("start_sec", "end_sec"):
        if index[column].dtype.kind != "f" or not np.isfinite(index[column].to_numpy()).all():
            raise FeatureCacheError(f"{path}: column {column} holds a non-number (a truncated file?)")
    return index


def check_array(path: Path, rows: int, dtype: str = "float16") -> None:
    """A `.npy` cache array: readable header, `dtype`, `rows` rows and exactly the bytes that header promises."""
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, found = read_header(f)
            offset = f.tell()
        size = path.stat().st_size
    except FileNotFoundError:
        raise FeatureCacheError(f"{path}: missing; delete the shard to re-extract") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise FeatureCacheError(f"{path}: not a readable .npy array ({str(e)[:80]})") from None
    if found != np.dtype(dtype) or fortran or not shape or shape[0] != rows:
        raise FeatureCacheError(f"{path}: {found} array of shape {shape}, expected {dtype} with {rows} rows (index)")
    expected = offset + int(np.prod(shape)) * found.itemsize
    if size != expected:
        raise FeatureCacheError(f"{path}: {size} bytes, its header promises {expected} (truncated?)")


def read_progress(shard_dir: Path, strict: bool = False) -> dict[str, dict]:
    """Finished clips. Not strict (extract resuming): a line that is no progress record is ignored, so its clip is
    redone. Strict (opening a finished cache): such a line is a FeatureCacheError."""
    finished = {}
    path = shard_dir / "progress.jsonl"
    if path.is_file():
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                entry = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                entry = None
            valid = isinstance(entry, dict) and isinstance(entry.get("clip"), str) and isinstance(entry.get("ok"), bool)
            if valid and not entry["ok"] and not isinstance(entry.get("error"), str):
                valid = False
            if valid:
                finished[entry["clip"]] = entry
            elif strict:
                raise FeatureCacheError(f"{path}: line {n} is not a progress record; delete the shard to re-extract")
    return finished


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line without its newline (a kill mid-write): the next line appended must start on its own."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


class FeatureCache:
    """A finished split cache, memory-mapped: an index over all shards and gathers by row position."""

    def __init__(
        self, split_dir: Path, manifest: CacheManifest, index: pd.DataFrame, arrays: list[dict[str, np.ndarray]]
    ):
        self.split_dir = split_dir
        self.manifest = manifest
        self.index = index
        self._arrays = arrays
        self._position = {
            (c, int(a), int(v)): i
            for i, (c, a, v) in enumerate(zip(index["clip_uid"], index["action_idx"], index["view"], strict=True))
        }

    @classmethod
    def open(cls, split_dir: Path | str, expected: CacheManifest | None = None) -> FeatureCache:
        """Open a finished cache; `expected` (the manifest the caller's settings would write) must match."""
        split_dir = Path(split_dir)
        manifest = check_manifest(split_dir, expected) if expected is not None else _read_manifest(split_dir)
        shards = manifest.shards
        frames, arrays = [], []
        for s in range(shards):
            path = split_dir / shard_name(s, shards)
            if not (path / "done.json").is_file():
                done = len(read_progress(path)) if path.is_dir() else 0
                raise FeatureCacheError(
                    f"{path}: shard {s}/{shards} is not finished ({done} clips done); "
                    f"run `ego4d-lta {manifest.made_by} --split {manifest.split} --shard {s}/{shards}`"
                )
            index = read_index(path)
            for name in cache_arrays(manifest):
                check_array(path / f"{name}.npy", len(index), manifest.dtype)
            progress = read_progress(path, strict=True)
            unusable = {(c, int(a)) for c, e in progress.items() for a, _ in e.get("unusable", [])}
            index["ok"] = [
                progress.get(c, {}).get("ok", False) and (c, int(a)) not in unusable
                for c, a in zip(index["clip_uid"], index["action_idx"], strict=True)
            ]
            index["shard"], index["row"] = s, np.arange(len(index))
            frames.append(index)
            arrays.append({name: np.load(path / f"{name}.npy", mmap_mode="r") for name in cache_arrays(manifest)})
        index = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*INDEX_COLUMNS, "ok"])
        return cls(split_dir, manifest, index, arrays)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def arrays(self) -> tuple[str, ...]:
        """The arrays this cache holds (`slowfast`, `clip`, `omnivore`)."""
        return cache_arrays(self.manifest)

    def row_shape(self, name: str) -> tuple[int, ...]:
        """Shape of one row of array `name` (e.g. (2304,) or (8, 512))."""
        return tuple(self._arrays[0][name].shape[1:]) if self._arrays else ()

    def positions(self, keys: list[tuple[str, int]], view: int = 0) -> np.ndarray:
        """Row positions of (clip_uid, action_idx) segments at one view; -1 where the cache has none."""
        return np.array([self._position.get((c, int(a), view), -1) for c, a in keys], dtype=np.int64)

    def gather(self, positions: np.ndarray, name: str) -> np.ndarray:
        """Rows of array `name` ("slowfast" or "clip") at the given positions, as float32."""
        positions = np.asarray(positions, dtype=np.int64)
        first = self._arrays[0][name] if self._arrays else np.zeros((0, 0), np.float16)
        out = np.zeros((len(positions), *first.shape[1:]), np.float32)
        shard = self.index["shard"].to_numpy()[positions]
        row = self.index["row"].to_numpy()[positions]
        for s in np.unique(shard):
            pick = shard == s
            out[pick] = self._arrays[s][name][row[pick]]
        if not np.isfinite(out).all():  # never silently train or predict on NaN features
            bad = int(positions[np.flatnonzero(~np.isfinite(out.reshape(len(out), -1)).all(1))[0]])
            clip, action = self.index["clip_uid"].iat[bad], self.index["action_idx"].iat[bad]
            raise FeatureCacheError(
                f"{self.split_dir}: {name} features of clip {clip} action {action} are NaN or inf; re-extract"
            )
        return out


def cache_arrays(manifest: CacheManifest) -> tuple[str, ...]:
    """The arrays a cache holds, as its record says (`extract` caches: ARRAYS)."""
    return manifest.record.arrays


def _read_manifest(split_dir: Path) -> CacheManifest:
    path = split_dir / MANIFEST
    if not path.is_file():
        raise FeatureCacheError(f"{split_dir}: no feature cache here (no {MANIFEST}); run `ego4d-lta extract`")
    return CacheManifest.read(path)
