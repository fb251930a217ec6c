"""The challenge JSON: build it, write it atomically, read it back and check it as the server would.

Format (design §4.6): one flat object
`{"<clip_uid>_<action_idx>": {"verb": [[Z ints] x K], "noun": [[Z ints] x K]}}`.

The check runs every rule and reports each violation with the key it concerns. It is fast on big
files: the per-key structure is checked in Python, the 2·K·Z integers per key are checked in one
numpy conversion, and only a file that fails that fast check is walked element by element to
name the offending entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import describe, printable, read_input, write_json_atomic
from ego4d_lta.challenge.annotations import Taxonomy
from ego4d_lta.challenge.rules import PREDICTED_HEADS, K, Z

MAX_LISTED = 5
"""How many keys an aggregated message names before it says 'and N more'."""
MAX_ERRORS = 25
"""Per-entry errors reported in full before the rest are only counted."""


@dataclass
class CheckResult:
    """What `check_submission` found. `verb`/`noun` are (n, K, Z) int64 in `keys` order when valid."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    verb: np.ndarray | None = None
    noun: np.ndarray | None = None

    @property
    def valid(self) -> bool:
        return not self.errors


def build_submission(keys: Sequence[str], verb: np.ndarray, noun: np.ndarray, k: int = K) -> dict[str, dict]:
    """Pair window keys with (n, K, Z) verb and noun predictions (k: another number of sequences, for a pool)."""
    verb = np.asarray(verb, dtype=np.int64)
    noun = np.asarray(noun, dtype=np.int64)
    n = len(keys)
    for head, arr in (("verb", verb), ("noun", noun)):
        if arr.shape != (n, k, Z):
            raise ValueError(f"{head} predictions must be {(n, k, Z)}, got {arr.shape}")
    if len(set(keys)) != n:
        raise ValueError("duplicate window keys")
    return {key: {"verb": verb[i], "noun": noun[i]} for i, key in enumerate(keys)}


def write_submission(path: Path | str, submission: dict[str, dict]) -> Path:
    """Write the challenge JSON atomically (numpy arrays are serialised by orjson directly)."""
    return write_json_atomic(path, submission)


def read_submission(path: Path | str) -> tuple[object, bytes]:
    """Parse a submission file; returns the object and the raw bytes (used by the fast check)."""
    raw = read_input(path)
    try:
        return orjson.loads(raw), raw
    except orjson.JSONDecodeError as e:
        raise UserError(f"{printable(str(path), 200)}: not valid JSON ({e})") from None


def check_submission(
    obj: object,
    required_keys: Sequence[str],
    extra_keys: Sequence[str],
    taxonomy: Taxonomy,
    raw: bytes | None = None,
    k: int = K,
) -> CheckResult:
    """Apply every rule of the challenge format to a parsed submission.

    `required_keys` must all be present; `extra_keys` (the one extra window per clip) are allowed
    with a warning; anything else is an error. Pass the file's `raw` bytes to enable the fast path.
    `k` other than K checks a pool of samples (`predict --pool`) by the same rules.
    """
    result = CheckResult()
    if not isinstance(obj, dict):
        result.errors.append(
            f"top level is {describe(obj)}, expected an object mapping '<clip_uid>_<action_idx>' to predictions"
        )
        return result
    required = set(required_keys)
    extra = set(extra_keys)
    missing = [k for k in required_keys if k not in obj]
    if missing:
        result.errors.append(f"{len(missing)} of {len(required)} expected keys are missing: {_listed(missing)}")
    unexpected = [k for k in obj if k not in required and k not in extra]
    if unexpected:
        result.errors.append(f"{len(unexpected)} unexpected keys (not windows of this split): {_listed(unexpected)}")
    extra_present = [k for k in obj if k in extra]
    if extra_present:
        result.warnings.append(
            f"{len(extra_present)} keys are the one extra window per clip, which the challenge's key set "
            f"leaves out (EGO4D/forecasting#31); they are not scored: {_listed(extra_present)}"
        )
    keys = [k for k in required_keys if k in obj] + extra_present
    entry_errors = _Errors()
    good = [key for key in keys if _check_structure(key, obj[key], entry_errors, k)]
    arrays = _fast_arrays(obj, keys, raw, k) if len(good) == len(keys) else None
    if arrays is None:  # slow path: name every bad element of the well-formed entries
        for key in good:
            _check_elements(key, obj[key], entry_errors)
        _check_ranges_slow(good, obj, taxonomy, entry_errors)
        if not entry_errors:
            arrays = _int_arrays(obj, keys, k)
    else:
        _check_ranges(keys, arrays, taxonomy, entry_errors)
    if not entry_errors:
        result.verb, result.noun = arrays
    result.errors.extend(entry_errors.messages())
    result.keys = keys
    if result.errors:
        result.verb = result.noun = None
    return result


class _Errors:
    """Per-entry errors: the first `MAX_ERRORS` in full, the rest only counted."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.hidden = 0

    def append(self, message: str) -> None:
        if len(self.shown) < MAX_ERRORS:
            self.shown.append(message)
        else:
            self.hidden += 1

    def __len__(self) -> int:
        return len(self.shown) + self.hidden

    def messages(self) -> list[str]:
        more = [f"... and {self.hidden} more errors of the same kinds"] if self.hidden else []
        return self.shown + more


def _check_structure(key: str, value: object, errors: _Errors, k: int = K) -> bool:
    """The value is {"verb": K lists, "noun": K lists}, each list of length Z. True when it is."""
    before = len(errors)
    if not isinstance(value, dict):
        errors.append(f"key '{printable(key)}': value is {describe(value)}, expected an object with 'verb' and 'noun'")
        return False
    for head in PREDICTED_HEADS:
        if head not in value:
            errors.append(f"key '{printable(key)}': missing '{head}'")
    for name in value:
        if name not in PREDICTED_HEADS:
            errors.append(
                f"key '{printable(key)}': unexpected field '{printable(name, 30)}' (only 'verb' and 'noun' are allowed)"
            )
    for head in PREDICTED_HEADS:
        if head not in value:
            continue
        seqs = value[head]
        if not isinstance(seqs, list):
            errors.append(f"key '{printable(key)}': '{head}' is {describe(seqs)}, expected a list of K={k} sequences")
        elif len(seqs) != k:
            errors.append(f"key '{printable(key)}': '{head}' has {len(seqs)} sequences, expected exactly K={k}")
        else:
            for i, seq in enumerate(seqs):
                if not isinstance(seq, list):
                    errors.append(
                        f"key '{printable(key)}': {head}[{i}] is {describe(seq)}, expected a list of Z={Z} ids"
                    )
                elif len(seq) != Z:
                    errors.append(f"key '{printable(key)}': {head}[{i}] has {len(seq)} actions, expected exactly Z={Z}")
    return len(errors) == before


def _fast_arrays(obj: dict, keys: list[str], raw: bytes | None, k: int = K) -> tuple[np.ndarray, np.ndarray] | None:
    """(verb, noun) int64 arrays when every element is a plain integer, else None.

    numpy turns bools into ints silently, so the fast path is taken only when the raw text holds no
    `true`/`false` at all; otherwise the element-by-element check decides.
    """
    if raw is None or b"true" in raw or b"false" in raw:
        return None
    out = []
    for head in PREDICTED_HEADS:
        try:
            arr = np.array([obj[key][head] for key in keys])
        except (ValueError, TypeError, OverflowError):
            return None
        if arr.dtype != np.int64 or arr.shape != (len(keys), k, Z):
            return None
        out.append(arr)
    return out[0], out[1]


def _int_arrays(obj: dict, keys: list[str], k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """(verb, noun) int64 arrays of entries already checked to hold in-range integers."""
    if not keys:
        return np.zeros((0, k, Z), np.int64), np.zeros((0, k, Z), np.int64)
    verb, noun = (np.array([obj[key][head] for key in keys], dtype=np.int64) for head in PREDICTED_HEADS)
    return verb, noun


def _check_ranges(keys: list[str], arrays: tuple[np.ndarray, np.ndarray], taxonomy: Taxonomy, errors: _Errors) -> None:
    for head, arr in zip(PREDICTED_HEADS, arrays, strict=True):
        limit = taxonomy.num_verbs if head == "verb" else taxonomy.num_nouns
        bad = np.argwhere((arr < 0) | (arr >= limit))
        for i, k, z in bad[:MAX_ERRORS]:
            errors.append(_range_message(keys[i], head, int(k), int(z), int(arr[i, k, z]), limit))
        errors.hidden += max(0, len(bad) - MAX_ERRORS)


def _check_elements(key: str, value: dict, errors: _Errors) -> None:
    for head in PREDICTED_HEADS:
        for k, seq in enumerate(value[head]):
            for z, item in enumerate(seq):
                if type(item) is not int:
                    errors.append(
                        f"key '{printable(key)}': {head}[{k}][{z}] is {describe(item)}, expected an integer class id"
                    )


def _check_ranges_slow(keys: list[str], obj: dict, taxonomy: Taxonomy, errors: _Errors) -> None:
    """Range errors of well-formed entries, element by element (the fast path's job on clean files)."""
    for key in keys:
        value = obj[key]
        if not isinstance(value, dict):
            continue
        for head in PREDICTED_HEADS:
            limit = taxonomy.num_verbs if head == "verb" else taxonomy.num_nouns
            seqs = value.get(head)
            if not isinstance(seqs, list):
                continue
            for k, seq in enumerate(seqs):
                if not isinstance(seq, list):
                    continue
                for z, item in enumerate(seq):
                    if type(item) is int and not 0 <= item < limit:
                        errors.append(_range_message(key, head, k, z, item, limit))


def _range_message(key: str, head: str, k: int, z: int, value: int, limit: int) -> str:
    return f"key '{printable(key)}': {head}[{k}][{z}] = {value} is outside the taxonomy's {head} ids 0..{limit - 1}"


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(printable(k) for k in keys[:MAX_LISTED])
    return shown + (f", ... ({len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else "")
