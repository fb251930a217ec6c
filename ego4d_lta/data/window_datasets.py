"""Forecasting windows as model inputs: from the feature cache (the default) or decoded from video (end to end).

Both datasets take a *list* of window indices and return a whole batch (use them with `batch_size=None` and
a batch sampler): gathering 8 segments x batch rows at once from the memory-mapped cache is what makes the
cache path fast. `EpochBatches` deals the global batches of an epoch to the processes: the same global batches
whatever the number of processes, so a run on W processes matches one process with the same global batch.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ego4d_lta.challenge.windows import Windows
from ego4d_lta.data.feature_cache import FeatureCache
from ego4d_lta.data.segment_dataset import ClipImageSpec
from ego4d_lta.data.video import (
    SamplingConfig,
    VideoError,
    clip_input,
    decode_frames,
    frame_indices,
    probe,
    slowfast_input,
    window_start,
)

SEGMENT_LABELS = ("segment_verb", "segment_noun")
"""Batch keys of the observed segments' own (verb, noun) ids, (B, 8): the recognition heads' targets, never a model
input (unlike the `labels` variant's `obs_verb` / `obs_noun`, which the set selection also replays)."""


@dataclass(frozen=True)
class Labels:
    """(n, Z) future verb and noun ids of every window (None on the unlabelled test split)."""

    verb: np.ndarray
    noun: np.ndarray
    observed_verb: np.ndarray | None = None
    """(n, 8) the observed segments' verb ids (what the recognition heads learn), when known."""
    observed_noun: np.ndarray | None = None


def window_labels(windows: Windows, table: pd.DataFrame) -> Labels | None:
    verb, noun = table["verb"].to_numpy().astype(np.int64), table["noun"].to_numpy().astype(np.int64)
    if len(verb) and (verb < 0).any():
        return None
    return Labels(verb[windows.future], noun[windows.future], verb[windows.observed], noun[windows.observed])


def label_batch(labels: Labels | None, idx: np.ndarray) -> dict[str, torch.Tensor]:
    """The future labels of windows `idx` (`verb`, `noun`) and their observed segments' (`SEGMENT_LABELS`)."""
    if labels is None:
        return {}
    batch = {"verb": torch.from_numpy(labels.verb[idx]), "noun": torch.from_numpy(labels.noun[idx])}
    if labels.observed_verb is not None and labels.observed_noun is not None:
        batch[SEGMENT_LABELS[0]] = torch.from_numpy(labels.observed_verb[idx])
        batch[SEGMENT_LABELS[1]] = torch.from_numpy(labels.observed_noun[idx])
    return batch


def segment_keys(table: pd.DataFrame) -> list[tuple[str, int]]:
    return list(zip(table["clip_uid"], table["action_idx"].astype(int), strict=True))


class CacheWindows(Dataset):
    """Windows whose 8 observed segments are read from a feature cache.

    With `views > 1` (train caches extracted with `--views`), each segment of each window takes one of its
    views at random, fixed by (seed, epoch, window): the same whatever the batching or number of processes.
    """

    def __init__(
        self,
        cache: FeatureCache,
        table: pd.DataFrame,
        windows: Windows,
        labels: Labels | None,
        views: int = 1,
        seed: int = 0,
    ) -> None:
        keys = segment_keys(table)
        ok = np.r_[cache.index["ok"].to_numpy(dtype=bool), False]  # position -1 (no row) reads as not ok
        per_view = []
        for view in range(views):
            pos = cache.positions(keys, view)
            per_view.append(np.where(ok[pos], pos, -1))
        self.positions = np.stack(per_view)[:, windows.observed]  # (views, n, 8); -1 = no usable features
        self.available = (self.positions >= 0).all(axis=(0, 2))
        self.cache = cache
        self.labels = labels
        self.seed = seed
        self.set_epoch(0)

    def __len__(self) -> int:
        return self.positions.shape[1]

    def feature_stats(self, windows: np.ndarray, chunk: int = 4096) -> dict[str, torch.Tensor]:
        """Per-dimension mean and std of the features of the segments these windows observe (all views)."""
        rows = np.unique(self.positions[:, windows].reshape(-1))
        rows = rows[rows >= 0]
        stats = {}
        for name in self.cache.arrays:
            total = sq = 0.0
            count = 0
            for i in range(0, len(rows), chunk):
                x = self.cache.gather(rows[i : i + chunk], name).astype(np.float64)
                x = x.reshape(-1, x.shape[-1])  # CLIP: every frame counts
                total, sq, count = total + x.sum(0), sq + (x * x).sum(0), count + len(x)
            mean = total / max(count, 1)
            std = np.sqrt(np.maximum(sq / max(count, 1) - mean * mean, 0.0)) + 1e-6
            stats[f"{name}_mean"] = torch.from_numpy(mean.astype(np.float32))
            stats[f"{name}_std"] = torch.from_numpy(std.astype(np.float32))
        return stats

    def set_epoch(self, epoch: int) -> None:
        views, n, segments = self.positions.shape
        self.epoch = epoch
        self.view = np.random.default_rng([self.seed, epoch]).integers(views, size=(n, segments)) if views > 1 else None

    def __getitem__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        if self.view is not None:
            pick = self.view[idx]
            pos = np.take_along_axis(self.positions[:, idx].transpose(1, 2, 0), pick[..., None], axis=2)[..., 0]
        else:
            pos = self.positions[0, idx]
        flat = np.maximum(pos.reshape(-1), 0)  # unavailable windows are gathered from row 0 and never used
        b, n = pos.shape
        batch = {"index": torch.from_numpy(idx), "available": torch.from_numpy(self.available[idx])}
        for name in self.cache.arrays:  # slowfast (b, n, 2304), clip (b, n, F, D), omnivore (b, n, 1536)
            rows = self.cache.gather(flat, name)
            batch[name] = torch.from_numpy(rows.reshape(b, n, *self.cache.row_shape(name)))
        return batch | label_batch(self.labels, idx)


class VideoWindows(Dataset):
    """Windows decoded from video: each observed segment's 2.13 s window, SlowFast and CLIP inputs.

    Training (`train=True`) takes a random window position and augmentation per segment, fixed by
    (seed, epoch, window); otherwise the segment centre. A window whose video cannot be read comes back
    with `available` False and zero tensors (prediction gives it the fallback).
    """

    def __init__(
        self,
        video_dir: Path,
        table: pd.DataFrame,
        windows: Windows,
        labels: Labels | None,
        sampling: SamplingConfig,
        image: ClipImageSpec,
        train: bool,
        seed: int = 0,
    ) -> None:
        self.video_dir = Path(video_dir)
        self.table = table.reset_index(drop=True)
        self.windows = windows
        self.labels = labels
        self.sampling = sampling
        self.image = image
        self.train = train
        self.seed = seed
        self.epoch = 0
        readable = {u: self._readable(u) for u in set(windows.clip_uids)}
        self.available = np.array([readable[u] for u in windows.clip_uids], dtype=bool)

    def __len__(self) -> int:
        return len(self.windows)

    def _readable(self, clip_uid: str) -> bool:
        try:
            probe(self.video_dir / f"{clip_uid}.mp4", clip_uid)
            return True
        except VideoError:
            return False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        items = [self._window(int(i)) for i in indices]
        idx = torch.tensor([int(i) for i in indices], dtype=torch.long)
        batch = {
            "index": idx,
            "slow": torch.stack([s for s, _, _, _ in items]),
            "fast": torch.stack([f for _, f, _, _ in items]),
            "images": torch.stack([im for _, _, im, _ in items]),
            "available": torch.tensor([ok for _, _, _, ok in items]),
        }
        return batch | label_batch(self.labels, idx.numpy())

    def _window(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
        uid = self.windows.clip_uids[i]
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(uid.encode()), i]) if self.train else None
        try:
            if not self.available[i]:
                raise VideoError(f"{uid}: video missing")
            path = self.video_dir / f"{uid}.mp4"
            info = probe(path, uid)
            slows, fasts, images = [], [], []
            for row in self.windows.observed[i]:
                seg = (float(self.table.at[row, "start_sec"]), float(self.table.at[row, "end_sec"]))
                start = window_start(seg, info.duration, self.sampling, rng)
                frames = decode_frames(path, frame_indices(start, info.frames, self.sampling, info.fps), uid)
                slow, fast = slowfast_input(frames, self.sampling, rng)
                slows.append(slow)
                fasts.append(fast)
                images.append(clip_input(frames, self.image.size, self.image.mean, self.image.std, self.image.frames))
            return torch.stack(slows), torch.stack(fasts), torch.stack(images), True
        except VideoError:
            if self.train:
                raise
            return (*self._blank(), False)

    def _blank(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s, n, c = self.sampling, self.windows.observed.shape[1], self.sampling.crop_size
        return (
            torch.zeros(n, 3, s.num_frames // s.alpha, c, c),
            torch.zeros(n, 3, s.num_frames, c, c),
            torch.zeros(n, self.image.frames, 3, self.image.size, self.image.size),
        )


class EpochBatches:
    """This process's share of each global batch of an epoch (shuffled by (seed, epoch); last partial batch
    dropped when training). `start` skips batches already done (an exact resume mid-epoch)."""

    def __init__(
        self,
        indices: np.ndarray,
        global_batch: int,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if global_batch % world:
            raise ValueError(f"the global batch {global_batch} must be divisible by the {world} processes")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.global_batch = global_batch
        self.rank, self.world = rank, world
        self.shuffle, self.seed = shuffle, seed
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        return len(self.indices) // self.global_batch

    def __iter__(self):
        order = self.indices
        if self.shuffle:
            order = order[np.random.default_rng([self.seed, self.epoch]).permutation(len(order))]
        local = self.global_batch // self.world
        for b in range(self.start, len(self)):
            chunk = order[b * self.global_batch : (b + 1) * self.global_batch]
            yield chunk[self.rank * local : (self.rank + 1) * local].tolist()


def eval_batches(n: int, batch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Windows rank, rank + world, ... in batches: every window on exactly one process, no padding."""
    mine = np.arange(rank, n, world)
    return [mine[i : i + batch].tolist() for i in range(0, len(mine), batch)]
