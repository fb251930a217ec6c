"""The window rule and the challenge's key set (design §4.2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ego4d_lta.challenge.windows import expected_keys, make_windows


def _table(lengths: dict[str, int]) -> pd.DataFrame:
    """Clips with `L` segments each; action_idx = 3 * position + 1 so keys show which is used."""
    rows = []
    for uid, length in sorted(lengths.items()):
        for pos in range(length):
            rows.append(
                {
                    "clip_uid": uid,
                    "action_idx": 3 * pos + 1,
                    "start_sec": float(pos),
                    "end_sec": pos + 0.5,
                    "verb": pos % 7,
                    "noun": pos % 5,
                }
            )
    return pd.DataFrame(rows)


def test_challenge_positions_run_from_7_to_L_minus_22_and_extra_is_L_minus_21() -> None:
    table = _table({"a": 31, "b": 28, "c": 27})
    required, extra = expected_keys(table)
    # clip a (L=31): last observed positions 7, 8, 9 are required; 10 = L-21 is the extra window
    assert required == [f"a_{3 * p + 1}" for p in (7, 8, 9)]
    assert extra == ["a_31", "b_22"]  # b has exactly 8 + 20 segments: only the extra window; c has none


def test_window_rows_are_eight_observed_then_twenty_future() -> None:
    table = _table({"a": 31, "b": 40})
    windows = make_windows(table)
    assert len(windows) == 4 + 13
    for i, key in enumerate(windows.keys):
        obs, fut = windows.observed[i], windows.future[i]
        assert np.array_equal(np.r_[obs, fut], np.arange(obs[0], obs[0] + 28))
        last = table.iloc[obs[-1]]
        assert key == f"{last.clip_uid}_{last.action_idx}"
        assert (table.clip_uid.iloc[np.r_[obs, fut]] == windows.clip_uids[i]).all()
    # by hand: a clip of L segments has challenge windows ending at positions 7..L-22 (a: 7..9, b: 7..18)
    by_hand = [f"a_{3 * p + 1}" for p in range(7, 10)] + [f"b_{3 * p + 1}" for p in range(7, 19)]
    assert windows.challenge().keys == by_hand == expected_keys(table)[0]
    assert make_windows(table, include_extra=False).keys == by_hand


def test_unsorted_table_is_refused() -> None:
    table = _table({"a": 30}).iloc[::-1]
    with pytest.raises(ValueError, match="sorted"):
        make_windows(table)
