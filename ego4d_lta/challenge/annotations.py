"""Read and check the official LTA annotation files (`fho_lta_*.json`, `fho_lta_taxonomy.json`).

Every rule violation is a `UserError` whose one line names the file, the entry and the rule, so a
user with a hand-edited or truncated file knows exactly what to fix.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import describe, printable, read_json
from ego4d_lta.challenge.rules import SPLIT_FILES, TAXONOMY_FILE

COLUMNS = ("clip_uid", "action_idx", "start_sec", "end_sec", "verb", "noun")
"""The columns of a split table; `verb`/`noun` are -1 where the split has no labels (test)."""

VIDEO_COLUMNS = ("video_uid", "clip_parent_start_sec", "clip_parent_start_frame", "start_frame", "end_frame")
"""Where a segment lies in its canonical video (what Ego4D's released per-video features are indexed by):
`video_uid` ("" when absent), the clip's offset in it (-1 / NaN when absent) and the clip-relative
`action_clip_{start,end}_frame` (from the seconds at 30 fps when absent). Video frames = parent + clip frames."""

FPS = 30

KNOWN_TAXONOMIES = {(115, 478): "v1", (117, 521): "v2"}

MAX_ACTION_IDX = 2**62
"""action_idx values stay far below int64's limit (a key holds `action_idx + 8`)."""
MAX_LABEL = 2**31 - 1


@dataclass(frozen=True)
class Taxonomy:
    """Verb and noun names; the list index is the class id."""

    verbs: tuple[str, ...]
    nouns: tuple[str, ...]

    @property
    def num_verbs(self) -> int:
        return len(self.verbs)

    @property
    def num_nouns(self) -> int:
        return len(self.nouns)

    @property
    def version(self) -> str:
        """`v1`, `v2` or `custom` (for example the synthetic dataset's), from the class counts."""
        return KNOWN_TAXONOMIES.get((self.num_verbs, self.num_nouns), "custom")

    def to_json(self) -> dict[str, list[str]]:
        return {"verbs": list(self.verbs), "nouns": list(self.nouns)}


def load_taxonomy(path: Path | str) -> Taxonomy:
    """Load `fho_lta_taxonomy.json`: `{"verbs": [str, ...], "nouns": [str, ...]}`."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level is {describe(data)}, expected an object with 'verbs' and 'nouns'")
    names = {}
    for field in ("verbs", "nouns"):
        if field not in data:
            raise UserError(f"{path}: missing field '{field}' (a list of names, index = class id)")
        values = data[field]
        if not isinstance(values, list) or not values:
            raise UserError(f"{path}: '{field}' must be a non-empty list of names, got {describe(values)}")
        for i, name in enumerate(values):
            if not isinstance(name, str):
                raise UserError(f"{path}: {field}[{i}] is {describe(name)}, expected a string name")
        names[field] = tuple(values)
    return Taxonomy(verbs=names["verbs"], nouns=names["nouns"])


def split_path(annotations_dir: Path | str, split: str) -> Path:
    """The official file name of a split inside an annotations folder."""
    if split not in SPLIT_FILES:
        raise UserError(f"unknown split '{split}': expected one of {', '.join(SPLIT_FILES)}")
    return Path(annotations_dir) / SPLIT_FILES[split]


def taxonomy_path(annotations_dir: Path | str) -> Path:
    return Path(annotations_dir) / TAXONOMY_FILE


def load_split(path: Path | str, taxonomy: Taxonomy, require_labels: bool) -> pd.DataFrame:
    """Load one `fho_lta_<split>.json` into a table with `COLUMNS`, sorted by (clip_uid, action_idx).

    `require_labels` is True for train and val; on test the labels are absent and become -1.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or "clips" not in data:
        raise UserError(f"{path}: no 'clips' list at the top level (expected {{\"clips\": [...]}})")
    clips = data["clips"]
    if not isinstance(clips, list):
        raise UserError(f"{path}: 'clips' is {describe(clips)}, expected a list of action entries")
    if not clips:
        raise UserError(f"{path}: 'clips' is empty, expected at least one action entry")
    rows = [_read_entry(path, i, e, require_labels) + _video_fields(path, i, e) for i, e in enumerate(clips)]
    table = pd.DataFrame.from_records(rows, columns=[*COLUMNS, *VIDEO_COLUMNS])
    table = table.astype(
        {
            "clip_uid": object,
            "action_idx": np.int64,
            "start_sec": np.float64,
            "end_sec": np.float64,
            "verb": np.int64,
            "noun": np.int64,
            "video_uid": object,
            "clip_parent_start_sec": np.float64,
            "clip_parent_start_frame": np.int64,
            "start_frame": np.int64,
            "end_frame": np.int64,
        }
    )
    _check_labels(path, table, "verb", taxonomy.num_verbs, require_labels)
    _check_labels(path, table, "noun", taxonomy.num_nouns, require_labels)
    _check_duplicates(path, table)
    _check_one_parent(path, table)
    return table.sort_values(["clip_uid", "action_idx"], kind="stable").reset_index(drop=True)


def load_annotations(annotations_dir: Path | str, split: str) -> tuple[pd.DataFrame, Taxonomy]:
    """Load a split and the taxonomy beside it, from the official `annotations/` folder."""
    taxonomy = load_taxonomy(taxonomy_path(annotations_dir))
    table = load_split(split_path(annotations_dir, split), taxonomy, require_labels=split != "test")
    return table, taxonomy


def _read_entry(path: Path, i: int, entry: object, require_labels: bool) -> tuple:
    where = f"{path}: clips[{i}]"
    if not isinstance(entry, dict):
        raise UserError(f"{where} is {describe(entry)}, expected an object")
    if "clip_uid" not in entry:
        raise UserError(f"{where}: missing field 'clip_uid'")
    clip_uid = check_uid(where, "clip_uid", entry["clip_uid"])
    if "video_uid" in entry:
        check_uid(where, "video_uid", entry["video_uid"])
    where = f"{path}: clips[{i}] (clip_uid={clip_uid})"
    if "action_idx" not in entry:
        raise UserError(f"{where}: missing field 'action_idx'")
    action_idx = _integer(where, entry, "action_idx")
    if not 0 <= action_idx <= MAX_ACTION_IDX:
        raise UserError(f"{where}: 'action_idx' is {action_idx}, must be in 0..2**62")
    where = f"{path}: clips[{i}] (clip_uid={clip_uid}, action_idx={action_idx})"
    for field in ("action_clip_start_sec", "action_clip_end_sec"):
        if field not in entry:
            raise UserError(f"{where}: missing field '{field}'")
    start = _seconds(where, entry, "action_clip_start_sec")
    end = _seconds(where, entry, "action_clip_end_sec")
    if end < start:
        raise UserError(f"{where}: action_clip_end_sec {end} is before action_clip_start_sec {start}")
    if require_labels:
        for field in ("verb_label", "noun_label"):
            if field not in entry:
                raise UserError(f"{where}: missing field '{field}' (required on train and val)")
    verb = _label(where, entry, "verb_label")
    noun = _label(where, entry, "noun_label")
    return clip_uid, action_idx, start, end, verb, noun


def check_uid(where: str, field: str, value: object) -> str:
    """A clip or video uid: it names a file (`clips/<uid>.mp4`) and a cache row, so one plain path component.

    No separators, `..`, NUL or control characters: a uid can neither reach outside the data root nor cut a
    line of the cache's index.csv nor send escape sequences to a terminal.
    """
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: '{field}' must be a non-empty string, got {describe(value)}")
    problem = _uid_problem(value)
    if problem:
        raise UserError(f"{where}: '{field}' \"{printable(value, 60)}\" {problem}")
    return value


@functools.lru_cache(maxsize=1 << 16)
def _uid_problem(value: str) -> str | None:
    """What is wrong with a non-empty uid, or None; cached: a split file names each uid once per segment of its
    clip, three times per entry (checking them character by character was most of the time of loading a split)."""
    if _CONTROL.search(value):
        return "holds a control character"
    if "/" in value or "\\" in value or value in (".", "..") or value.startswith(".") or value != value.strip():
        return "must be a plain file name (no '/', '\\\\', leading '.' or spaces)"
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0 controls, DEL and C1 controls (`ord(c) < 32 or 127 <= ord(c) < 160`)."""


def _label(where: str, entry: dict, field: str) -> int:
    if field not in entry:
        return -1
    value = _integer(where, entry, field)
    if not 0 <= value <= MAX_LABEL:
        raise UserError(f"{where}: '{field}' is {value}, must be a class id >= 0")
    return value


def _video_fields(path: Path, i: int, entry: dict) -> tuple:
    """VIDEO_COLUMNS of one entry (already known to be an object with clip_uid and action_idx)."""
    where = f"{path}: clips[{i}] (clip_uid={entry['clip_uid']}, action_idx={entry['action_idx']})"
    video_uid = entry.get("video_uid", "")
    if video_uid != "":  # it names a file too (`<video_uid>.pt` of a feature download)
        video_uid = check_uid(where, "video_uid", video_uid)
    parent_sec = _seconds(where, entry, "clip_parent_start_sec") if "clip_parent_start_sec" in entry else math.nan
    frames = []
    for field in ("clip_parent_start_frame", "action_clip_start_frame", "action_clip_end_frame"):
        if field in entry:
            value = _integer(where, entry, field)
            if value < 0:
                raise UserError(f"{where}: '{field}' is {value}, must be >= 0")
        elif field == "clip_parent_start_frame":
            value = -1
        else:
            value = round(float(entry[field.replace("_frame", "_sec")]) * FPS)
        frames.append(value)
    if frames[2] < frames[1]:
        raise UserError(f"{where}: action_clip_end_frame {frames[2]} is before action_clip_start_frame {frames[1]}")
    return (video_uid, parent_sec, *frames)


def _integer(where: str, entry: dict, field: str) -> int:
    value = entry[field]
    if type(value) is float and value.is_integer() and abs(value) >= 2**63:  # orjson reads such literals as floats
        raise UserError(f"{where}: '{field}' is an integer beyond 64 bits, out of range")
    if type(value) is not int:
        raise UserError(f"{where}: '{field}' is {describe(value)}, expected an integer")
    return value


def _seconds(where: str, entry: dict, field: str) -> float:
    value = entry[field]
    if type(value) not in (int, float) or not math.isfinite(value):
        raise UserError(f"{where}: '{field}' is {describe(value)}, expected a finite number of seconds")
    if value < 0:
        raise UserError(f"{where}: '{field}' is {value}, must be >= 0")
    return float(value)


def _check_labels(path: Path, table: pd.DataFrame, head: str, num_classes: int, required: bool) -> None:
    labels = table[head].to_numpy()
    present = labels != -1
    if not required and present.any() and not present.all():
        i = int(np.flatnonzero(~present)[0])
        row = table.iloc[i]
        raise UserError(
            f"{path}: clips[{i}] (clip_uid={row.clip_uid}, action_idx={row.action_idx}): no {head}_label, "
            "while other entries have one (label every entry or none)"
        )
    bad = np.flatnonzero(present & ((labels < 0) | (labels >= num_classes)))
    if bad.size:
        i = int(bad[0])
        row = table.iloc[i]
        raise UserError(
            f"{path}: clips[{i}] (clip_uid={row.clip_uid}, action_idx={row.action_idx}): "
            f"{head}_label {labels[i]} is outside the taxonomy's {head} ids 0..{num_classes - 1}"
        )


def _check_one_parent(path: Path, table: pd.DataFrame) -> None:
    """All entries of a clip name the same video and offset in it (a clip is one stretch of one video)."""
    per_clip = table.groupby("clip_uid", sort=False)[["video_uid", "clip_parent_start_frame"]].nunique()
    bad = per_clip[(per_clip > 1).any(axis=1)]
    if len(bad):
        clip = bad.index[0]
        field = "video_uid" if bad.iloc[0]["video_uid"] > 1 else "clip_parent_start_frame"
        values = sorted(map(str, table.loc[table["clip_uid"] == clip, field].unique()))
        raise UserError(
            f"{path}: clip_uid={clip}: its entries disagree on '{field}' ({', '.join(values)}); "
            "a clip is one stretch of one video"
        )


def _check_duplicates(path: Path, table: pd.DataFrame) -> None:
    dup = table.duplicated(["clip_uid", "action_idx"], keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        row = table.iloc[i]
        raise UserError(
            f"{path}: clips[{i}]: duplicate (clip_uid, action_idx) = ({row.clip_uid}, {row.action_idx}); "
            "each action of a clip must appear once"
        )
