"""Ego4D's released per-video features: which rows of a video's tensor a segment pools (the sets: feature_sets.py).

Ego4D extracts each feature set from the canonical 30 fps video in a moving window (Ego4D docs, "Features";
`ego4d/features/dataset.py`: pytorchvideo's `UniformClipSampler(backpad_last=True)`): row t sees frames
[t*S, t*S + W); the last window would run past the video, so it is backed up to end at the last frame; a video
shorter than one window has one row. `<video_uid>.pt` holds the (T, D) tensor.

An LTA segment lives in a clip; its video frames are `clip_parent_start_frame + action_clip_{start,end}_frame`.
Its feature is the mean of the rows whose window overlaps those frames, or, for a segment shorter than a window,
the one row whose window centre is nearest the segment's centre (a short action sits inside a window; averaging
its two or three neighbours would mostly average what happens around it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POOLING = "mean of the rows whose window overlaps the segment's video frames; nearest row if shorter than a window"


def row_count(num_frames: int, window: int = 32, stride: int = 16) -> int:
    """T for a video of N frames: (N - W) // S + 1, plus one back-shifted row if S does not divide N - W."""
    if num_frames < window:
        return 1
    return (num_frames - window) // stride + 1 + (1 if (num_frames - window) % stride else 0)


def row_windows(
    rows: int, num_frames: int | None = None, window: int = 32, stride: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends): the video frames [start, end) each of the `rows` rows saw.

    The last row's position depends on the video's frame count N: when N is known it ends at N (or covers the
    whole video when N < W); when it is not, the last row is taken at its regular place (t*S), which is at most
    S - 1 frames later than the truth (only segments touching the video's last half second are affected).
    """
    if rows < 1:
        raise ValueError(f"a feature tensor needs at least one row, got {rows}")
    starts = np.arange(rows, dtype=np.int64) * stride
    ends = starts + window
    if num_frames is not None:
        if row_count(num_frames, window, stride) != rows:
            raise ValueError(
                f"{rows} rows do not fit a video of {num_frames} frames (window {window}, stride {stride}: "
                f"{row_count(num_frames, window, stride)} rows)"
            )
        if num_frames < window:
            starts[-1], ends[-1] = 0, num_frames
        else:
            starts[-1], ends[-1] = num_frames - window, num_frames
    return starts, ends


@dataclass(frozen=True)
class RowSpan:
    """Rows [first, last] (inclusive) whose mean is a segment's feature; `nearest`: picked as the nearest row."""

    first: int
    last: int
    nearest: bool = False


def segment_span(start_frame: int, end_frame: int, starts: np.ndarray, ends: np.ndarray, window: int = 32) -> RowSpan:
    """The rows a segment of video frames [start_frame, end_frame) pools; ValueError when the rows end before it."""
    first, last, nearest, fits = segment_spans(np.array([start_frame]), np.array([end_frame]), starts, ends, window)
    if not fits[0]:
        end = max(end_frame, start_frame + 1)
        raise ValueError(f"frames [{start_frame}, {end}) run past the last row's window (ends at {ends[-1]})")
    return RowSpan(int(first[0]), int(last[0]), bool(nearest[0]))


def segment_spans(
    start_frames: np.ndarray, end_frames: np.ndarray, starts: np.ndarray, ends: np.ndarray, window: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`segment_span` for many segments at once: (first, last, nearest, fits); rows of segments that do not fit
    (frames past the last row's window) are meaningless.

    Windows are in increasing order (the back-shifted last one too), so the overlapping rows are contiguous. A
    zero-length segment (start == end) still marks an instant: the frame at its start.
    """
    a = np.asarray(start_frames, dtype=np.int64)
    b = np.maximum(np.asarray(end_frames, dtype=np.int64), a + 1)
    fits = b <= ends[-1]
    first = np.searchsorted(ends, a, side="right")  # first window ending after the start
    last = np.searchsorted(starts, b, side="left") - 1  # last window starting before the end
    nearest = b - a < window
    if nearest.any():
        centres = (starts + ends) / 2
        mid = (a[nearest] + b[nearest]) / 2
        right = np.clip(np.searchsorted(centres, mid, side="left"), 1, len(centres) - 1)
        left = right - 1  # ties go to the earlier row
        pick = np.where(np.abs(centres[left] - mid) <= np.abs(centres[right] - mid), left, right)
        pick = pick if len(centres) > 1 else np.zeros_like(pick)
        first[nearest] = last[nearest] = pick
    return first, last, nearest, fits


def pool_rows(features: np.ndarray, span: RowSpan) -> np.ndarray:
    """The segment's feature: the mean of its rows, in float32."""
    return features[span.first : span.last + 1].astype(np.float32, copy=False).mean(axis=0)


def pool_spans(features: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """(n, D) float32 means of rows [first, last] for many segments (reads only their rows).

    The rows are summed one after the other in C order whatever the file's strides (numpy sums a column-major
    block pairwise, which rounds otherwise): the same values give the same features however they were stored."""
    out = np.empty((len(first), features.shape[1]), np.float32)
    for k, (a, b) in enumerate(zip(first.tolist(), last.tolist(), strict=True)):
        out[k] = np.add.reduce(np.ascontiguousarray(features[a : b + 1]), axis=0, dtype=np.float32)
        out[k] /= b - a + 1
    return out


def used_rows(rows: int, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Sorted indices of the rows any of the spans [first, last] (inclusive) covers."""
    marks = np.zeros(rows + 1, np.int64)
    np.add.at(marks, np.asarray(first, np.int64), 1)
    np.add.at(marks, np.asarray(last, np.int64) + 1, -1)
    return np.flatnonzero(np.cumsum(marks[:-1]) > 0)


def value_problem(features: np.ndarray, rows: np.ndarray, max_abs: float, chunk: int = 4096) -> str | None:
    """Why rows `rows` of `features` cannot be pooled (a NaN or inf, or a |value| above `max_abs`), else None.

    Only the rows a segment reads are scanned (the file is memory-mapped: the others are never read)."""
    for k in range(0, len(rows), chunk):
        block = np.asarray(features[rows[k : k + chunk]], dtype=np.float64)
        finite = np.isfinite(block)
        if not finite.all():
            r, c = np.argwhere(~finite)[0]
            return f"row {rows[k + r]}, column {c}: {block[r, c]} (values must be finite)"
        big = np.abs(block) > max_abs
        if big.any():
            r, c = np.argwhere(big)[0]
            return f"row {rows[k + r]}, column {c}: {block[r, c]:.3g} (|value| above {max_abs:g}: a corrupted file?)"
    return None
