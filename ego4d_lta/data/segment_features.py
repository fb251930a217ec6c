"""One feature vector per annotated segment, read from a feature cache: what a per-segment recogniser reads.

Every array the cache holds joins, side by side, in the cache's order: pooled SlowFast or Omnivore rows as they
are, CLIP's per-frame embeddings mean-pooled over the frames. Rows come from view 0 (`extract --views` adds
augmented train views; the recogniser reads the centred one, as prediction does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ego4d_lta.data.feature_cache import FeatureCache
from ego4d_lta.data.window_datasets import segment_keys


@dataclass(frozen=True)
class SegmentFeatures:
    """(rows, dim) float32 features of a table's segments, in table order; `ok[i]`: row i has usable features
    (elsewhere its vector is zeros and must not be read)."""

    x: np.ndarray
    ok: np.ndarray
    arrays: tuple[str, ...]
    """Which cache arrays the columns hold, in order."""

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])


def segment_features(cache: FeatureCache, table: pd.DataFrame, chunk: int = 8192) -> SegmentFeatures:
    """Each table row's segment read from `cache` (`FeatureCache.positions` / `gather`, as `CacheWindows` reads
    windows), in chunks of `chunk` rows so a large split is never gathered twice over in memory."""
    usable = np.r_[cache.index["ok"].to_numpy(dtype=bool), False]  # position -1 (no row) reads as not usable
    positions = cache.positions(segment_keys(table), 0)
    ok = usable[positions]
    widths = [_width(cache.row_shape(name)) for name in cache.arrays]
    x = np.zeros((len(table), sum(widths)), np.float32)
    rows = np.flatnonzero(ok)
    for start in range(0, len(rows), chunk):
        pick = rows[start : start + chunk]
        column = 0
        for name, width in zip(cache.arrays, widths, strict=True):
            block = cache.gather(positions[pick], name)
            x[pick, column : column + width] = block.mean(axis=1) if block.ndim == 3 else block
            column += width
    return SegmentFeatures(x, ok, tuple(cache.arrays))


def _width(row_shape: tuple[int, ...]) -> int:
    """Columns an array adds: its row width, or the last axis of per-frame rows (mean-pooled)."""
    return int(row_shape[-1]) if row_shape else 0
