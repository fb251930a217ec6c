"""Two feature caches over the same segments read as one: e.g. SlowFast rows imported from Ego4D's released
features and CLIP embeddings that `extract` made from the clips (`slowfast_clip` without days of SlowFast).

The first cache gives the index and its arrays; each further array comes from the second cache, matched by
(clip_uid, action_idx) at view 0. A segment is usable when both caches have it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ego4d_lta.data.feature_cache import FeatureCache


class CombinedCache:
    """The FeatureCache interface CacheWindows reads (index, manifest, arrays, positions, gather, row_shape)."""

    def __init__(self, primary: FeatureCache, extra: FeatureCache, names: tuple[str, ...]) -> None:
        self.primary, self.extra, self.names = primary, extra, tuple(names)
        self.split_dir = primary.split_dir
        keys = list(zip(primary.index["clip_uid"], primary.index["action_idx"], strict=True))
        self._extra_rows = extra.positions(keys, 0)
        extra_ok = np.r_[extra.index["ok"].to_numpy(dtype=bool), False][self._extra_rows]
        self.index = primary.index.assign(ok=primary.index["ok"].to_numpy(dtype=bool) & extra_ok)
        bank = extra.manifest.prompt_bank
        extra_record = extra.manifest.record
        record = replace(primary.manifest.record, clip=extra_record.clip, sampling=extra_record.sampling)
        self.manifest = replace(
            primary.manifest, record=record, prompt_bank=str(extra.split_dir.parent / bank) if bank else "", views=1
        )

    def __len__(self) -> int:
        return len(self.index)

    @property
    def arrays(self) -> tuple[str, ...]:
        return self.manifest.record.arrays

    def row_shape(self, name: str) -> tuple[int, ...]:
        return self.primary.row_shape(name) if name in self.primary.arrays else self.extra.row_shape(name)

    def positions(self, keys: list[tuple[str, int]], view: int = 0) -> np.ndarray:
        return self.primary.positions(keys, view)

    def gather(self, positions: np.ndarray, name: str) -> np.ndarray:
        if name in self.primary.arrays:
            return self.primary.gather(positions, name)
        rows = self._extra_rows[np.asarray(positions, dtype=np.int64)]
        return self.extra.gather(np.maximum(rows, 0), name)  # rows the extra cache lacks are never usable
