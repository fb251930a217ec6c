"""Row arithmetic of Ego4D's released per-video features: rows worked out by hand from W = 32, S = 16."""

from __future__ import annotations

import numpy as np
import pytest

from ego4d_lta.data.released_features import (
    RowSpan,
    pool_rows,
    pool_spans,
    row_count,
    row_windows,
    segment_span,
)


@pytest.mark.parametrize(
    ("frames", "rows"),
    [
        (20, 1),  # shorter than a window: one row over the whole video
        (32, 1),  # exactly one window
        (39, 2),  # the Ego4D docs' example: [0, 31] and the back-padded [7, 38]
        (48, 2),  # (48 - 32) / 16 = 1 exactly: no extra row
        (50, 3),  # 18 = 16 + 2: a third, back-shifted row
        (100, 6),
    ],
)
def test_row_count(frames: int, rows: int) -> None:
    assert row_count(frames) == rows


def test_row_windows_back_shift_the_last_row() -> None:
    starts, ends = row_windows(2, 39)
    assert starts.tolist() == [0, 7] and ends.tolist() == [32, 39]  # the docs' example
    starts, ends = row_windows(6, 100)
    assert starts.tolist() == [0, 16, 32, 48, 64, 68]
    assert ends.tolist() == [32, 48, 64, 80, 96, 100]
    starts, ends = row_windows(6)  # frame count unknown: the last row at its regular place
    assert starts.tolist() == [0, 16, 32, 48, 64, 80]
    starts, ends = row_windows(1, 20)  # a video shorter than a window
    assert (starts.tolist(), ends.tolist()) == ([0], [20])
    with pytest.raises(ValueError, match="do not fit"):
        row_windows(2, 20)


def test_segments_pool_the_overlapping_rows() -> None:
    starts, ends = row_windows(6)
    # [40, 80): row 0 = [0, 32) ends before it, row 5 = [80, 112) starts at its end
    assert segment_span(40, 80, starts, ends) == RowSpan(1, 4)
    # exactly one window long, aligned with row 2: rows 1 and 3 overlap it by half
    assert segment_span(32, 64, starts, ends) == RowSpan(1, 3)


def test_the_back_shifted_row_is_pooled_where_it_really_is() -> None:
    # frames [30, 70) of a 100-frame video: the last row is [68, 100), so it overlaps; at its regular place
    # [80, 112) it would not
    assert segment_span(30, 70, *row_windows(6, 100)) == RowSpan(0, 5)
    assert segment_span(30, 70, *row_windows(6)) == RowSpan(0, 4)
    # a short segment at the video's end: centres 64 (row 3), 80 (row 4), 84 (row 5): 95 is nearest 84
    assert segment_span(90, 100, *row_windows(6, 100)) == RowSpan(5, 5, nearest=True)
    # centre 72: rows 3 and 4 tie at 8 frames; the earlier wins
    assert segment_span(70, 74, *row_windows(6, 100)) == RowSpan(3, 3, nearest=True)


def test_short_segments_take_the_nearest_row() -> None:
    starts, ends = row_windows(200)
    # a clip starting at video frame 1000, its action at clip frames [0, 10): video frames [1000, 1010), centre
    # 1005; row t's centre is 16 t + 16: row 62 (1008) is nearer than row 61 (992)
    assert segment_span(1000 + 0, 1000 + 10, starts, ends) == RowSpan(62, 62, nearest=True)
    # a video shorter than a window: its one row
    assert segment_span(5, 15, *row_windows(1, 20)) == RowSpan(0, 0, nearest=True)
    # a zero-length segment is the instant [40, 41): centre 40.5 is nearer row 2's 48 than row 1's 32
    assert segment_span(40, 40, starts, ends) == RowSpan(2, 2, nearest=True)


def test_segments_past_the_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="past the last row"):
        segment_span(40, 60, *row_windows(2))  # rows end at frame 48
    with pytest.raises(ValueError, match="past the last row"):
        segment_span(18, 25, *row_windows(1, 20))


def test_pool_rows_is_the_mean_of_the_span() -> None:
    features = np.arange(12, dtype=np.float16).reshape(6, 2)
    assert pool_rows(features, RowSpan(1, 3)).tolist() == [4.0, 5.0]  # rows [2,3], [4,5], [6,7]
    assert pool_rows(features, RowSpan(5, 5, nearest=True)).dtype == np.float32


def test_pool_spans_matches_the_mean_of_each_span() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 3)).astype(np.float16)
    first = np.array([0, 5, 39, 12])
    last = np.array([3, 5, 39, 30])
    expected = [pool_rows(features, RowSpan(int(a), int(b))) for a, b in zip(first, last, strict=True)]
    assert np.allclose(pool_spans(features, first, last), expected, atol=1e-6)
