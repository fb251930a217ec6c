"""The window rule: 8 observed segments in, the next 20 out, stride 1, keyed by the last observed one.

For a clip of L segments sorted by `action_idx`, the last observed position p runs over
7 .. L-22 in the challenge's enumeration (`range(L - Z - N)` window starts in the original
EGO4D/forecasting code, kept for the challenge per its issue #31). The fixed code adds p = L-21,
"the one extra window": useful for training, accepted with a warning in a submission.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ego4d_lta.challenge.rules import NUM_OBSERVED, Z


@dataclass(frozen=True)
class Windows:
    """All windows of a split, as row indices into the (clip_uid, action_idx)-sorted split table."""

    keys: list[str]
    """`f"{clip_uid}_{action_idx of the last observed segment}"`, one per window."""
    clip_uids: list[str]
    observed: np.ndarray
    """(n, NUM_OBSERVED) row indices of the observed segments, oldest first."""
    future: np.ndarray
    """(n, Z) row indices of the segments to forecast."""
    extra: np.ndarray
    """(n,) bool: True for the one extra window per clip (not in the challenge's key set)."""

    def __len__(self) -> int:
        return len(self.keys)

    def select(self, mask: np.ndarray) -> Windows:
        idx = np.flatnonzero(mask)
        return Windows(
            keys=[self.keys[i] for i in idx],
            clip_uids=[self.clip_uids[i] for i in idx],
            observed=self.observed[idx],
            future=self.future[idx],
            extra=self.extra[idx],
        )

    def key_sets(self) -> tuple[list[str], list[str]]:
        """(the challenge's required keys, the extra-window keys)."""
        required = [k for k, e in zip(self.keys, self.extra, strict=True) if not e]
        extra = [k for k, e in zip(self.keys, self.extra, strict=True) if e]
        return required, extra

    def challenge(self) -> Windows:
        """Only the windows of the challenge's key set."""
        return self.select(~self.extra)


def make_windows(table: pd.DataFrame, include_extra: bool = True) -> Windows:
    """Enumerate the windows of a split table sorted by (clip_uid, action_idx) (see `load_split`)."""
    _check_sorted(table)
    keys: list[str] = []
    clip_uids: list[str] = []
    observed: list[np.ndarray] = []
    extra: list[np.ndarray] = []
    uids = table["clip_uid"].to_numpy()
    action_idx = table["action_idx"].to_numpy()
    starts = np.flatnonzero(np.r_[True, uids[1:] != uids[:-1]]) if len(uids) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(uids)]
    for start, end in zip(starts, ends, strict=True):
        length = int(end - start)
        last = length - Z - 1  # the extra window's last observed position
        positions = np.arange(NUM_OBSERVED - 1, last + (1 if include_extra else 0))
        if positions.size == 0:
            continue
        rows = start + positions
        uid = str(uids[start])
        keys.extend(f"{uid}_{a}" for a in action_idx[rows])
        clip_uids.extend([uid] * len(rows))
        observed.append(rows[:, None] + np.arange(-NUM_OBSERVED + 1, 1)[None, :])
        extra.append(positions == last)
    if not keys:
        empty = np.zeros((0, NUM_OBSERVED), np.int64)
        return Windows([], [], empty, np.zeros((0, Z), np.int64), np.zeros(0, bool))
    obs = np.concatenate(observed).astype(np.int64)
    future = obs[:, -1:] + np.arange(1, Z + 1)[None, :]
    return Windows(keys, clip_uids, obs, future, np.concatenate(extra))


def expected_keys(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(the challenge's required keys, the extra-window keys) of a split, from its annotations only."""
    return make_windows(table, include_extra=True).key_sets()


def _check_sorted(table: pd.DataFrame) -> None:
    uids = table["clip_uid"].to_numpy()
    idx = table["action_idx"].to_numpy()
    if len(uids) > 1:
        same = uids[1:] == uids[:-1]
        if not (np.all(uids[1:][~same] > uids[:-1][~same]) and np.all(idx[1:][same] > idx[:-1][same])):
            raise ValueError("make_windows needs a table sorted by (clip_uid, action_idx), as load_split returns")
