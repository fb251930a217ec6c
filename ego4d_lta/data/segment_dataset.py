"""torch Datasets over video: the extraction pass (one sequential decode per clip).

Videos are opened only inside the dataset's iterator, i.e. in the DataLoader workers: a PyAV container
opened in the parent and inherited by a forked worker can hang it (research/deps.md).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ego4d_lta.data.video import (
    SamplingConfig,
    VideoError,
    clip_input,
    frame_indices,
    probe,
    slowfast_input,
    stream_windows,
    window_start,
)


@dataclass(frozen=True)
class ClipImageSpec:
    """The CLIP model's own preprocessing (from open_clip), passed as plain values: data/ does not import models/."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    frames: int = 8


def view_start(
    clip_uid: str,
    action_idx: int,
    view: int,
    segment: tuple[float, float],
    duration: float,
    cfg: SamplingConfig,
    seed: int,
) -> float:
    """View 0 is the segment's centre window; views 1.. are random positions inside it, fixed by (seed, segment)."""
    if view == 0:
        return window_start(segment, duration, cfg)
    rng = np.random.default_rng([seed, zlib.crc32(clip_uid.encode()), action_idx, view])
    return window_start(segment, duration, cfg, rng)


def view_augmentation(clip_uid: str, action_idx: int, view: int, seed: int) -> np.random.Generator | None:
    """The generator of a view's spatial augmentation (`slowfast_input`'s random short side, crop and flip, as in
    end-to-end training); None for view 0, which stays the centre crop. Its own stream: the view's temporal
    position (`view_start`) is the same with and without augmentation."""
    if view == 0:
        return None
    return np.random.default_rng([seed, zlib.crc32(clip_uid.encode()), action_idx, view, 1])


class ClipPassDataset(IterableDataset):
    """Yields batches of extraction inputs, each clip decoded once; or `{"failed": uid, "error": msg}`.

    `rows` is the shard index (clip_uid, action_idx, view, start_sec, end_sec); `clips` the clips to do. Each
    worker takes every num_workers-th clip. A batch holds up to `batch_size` windows, possibly from several clips:
    `"rows"` says where each belongs, `"clips"` which clips are complete once this batch is written. A clip that
    fails part-way is reported after its earlier windows; the failure marks all its rows as not usable.
    With `augment`, views 1.. get the training augmentation of the SlowFast input (`view_augmentation`); the CLIP
    images stay centre crops, as in end-to-end training (`VideoWindows`).
    """

    def __init__(
        self,
        video_dir: Path,
        rows: pd.DataFrame,
        clips: list[str],
        sampling: SamplingConfig,
        image: ClipImageSpec,
        batch_size: int,
        seed: int = 0,
        augment: bool = False,
    ) -> None:
        super().__init__()
        self.video_dir = Path(video_dir)
        self.rows = rows
        self.clips = clips
        self.sampling = sampling
        self.image = image
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        if info:
            torch.set_num_threads(1)  # one decode + transform thread per worker; workers = cores
        groups = self.rows.groupby("clip_uid", sort=False).indices
        pending: list[tuple[int, list[torch.Tensor], torch.Tensor]] = []
        finished: list[str] = []
        for clip_uid in self.clips[worker::workers]:
            try:
                for item in self._clip_items(clip_uid, groups[clip_uid]):
                    pending.append(item)
                    if len(pending) == self.batch_size:
                        yield self._batch(pending, finished)
                        pending, finished = [], []
            except VideoError as e:
                # rows of the clip already sent stay in the cache but are marked not ok by the failure
                yield {"failed": clip_uid, "error": str(e)}
                continue
            finished.append(clip_uid)
        if pending or finished:
            yield self._batch(pending, finished)

    def _clip_items(self, clip_uid: str, row_numbers: np.ndarray):
        """(row, [slow, fast], clip images) for every row of one clip, all cut from one decoding pass."""
        path = self.video_dir / f"{clip_uid}.mp4"
        info = probe(path, clip_uid)
        sub = self.rows.iloc[row_numbers]
        keys = list(zip(sub["action_idx"].astype(int), sub["view"].astype(int), strict=True))
        windows = [
            frame_indices(
                view_start(clip_uid, int(a), int(v), (float(s), float(e)), info.duration, self.sampling, self.seed),
                info.frames,
                self.sampling,
                info.fps,
            )
            for a, v, s, e in zip(sub["action_idx"], sub["view"], sub["start_sec"], sub["end_sec"], strict=True)
        ]
        for k, frames in stream_windows(path, windows, clip_uid):
            rng = view_augmentation(clip_uid, *keys[k], self.seed) if self.augment else None
            pathways = slowfast_input(frames, self.sampling, rng)
            images = clip_input(frames, self.image.size, self.image.mean, self.image.std, self.image.frames)
            yield int(row_numbers[k]), pathways, images

    @staticmethod
    def _batch(items: list, finished: list[str]) -> dict:
        if not items:
            return {"rows": torch.zeros(0, dtype=torch.long), "clips": finished}
        return {
            "rows": torch.tensor([r for r, _, _ in items]),
            "slow": torch.stack([p[0] for _, p, _ in items]),
            "fast": torch.stack([p[1] for _, p, _ in items]),
            "images": torch.stack([i for _, _, i in items]),
            "clips": finished,
        }
