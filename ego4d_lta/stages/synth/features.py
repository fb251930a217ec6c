"""A synthetic download of Ego4D's released per-video features, matching a synthetic dataset's videos.

Written as Ego4D's CLI lays a feature set out (`ego4d_features/v2/slowfast8x8_r101_k400/<video_uid>.pt`, one
float32 (T, 2304) tensor per canonical video, plus `manifest.csv`), with Ego4D's windows (32 frames, stride 16,
the last one backed up to end at the last frame). A row carries what its frames show, as a real encoder's does:
each frame is the sum of learned-looking random vectors for its action's verb and noun (when a segment covers
it) and its clip's scenario (when a clip does), the row is the mean over its 32 frames, plus a per-video offset
and noise. So a segment's pooled rows say its action only if the rows are the right ones: a wrong offset into
the video reads another segment's (or no segment's) frames.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from ego4d_lta.data.feature_sets import RELEASED_SETS
from ego4d_lta.data.released_features import row_count, row_windows
from ego4d_lta.data.synthetic_render import FPS, NOUNS, SCENARIOS, VERBS
from ego4d_lta.stages.synth.records import ClipScript, SynthConfig, VideoLayout

SET = RELEASED_SETS["slowfast8x8_r101_k400"]
"""The default set; `SynthConfig.features_set` picks another (omnivore_video_swinl: 1536-d rows)."""
DOWNLOAD_DIR = "ego4d_features"
NOISE = 1.0
"""Per-dimension noise of a row, against unit-variance verb, noun and scenario vectors."""


def download_dir(out: Path) -> Path:
    """The folder `import-features --ego4d-features` takes for a synthetic dataset written to `out`."""
    return Path(out) / DOWNLOAD_DIR


def frame_labels(frames: int, clips: list[tuple[int, ClipScript]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per video frame: the verb, noun (-1 outside segments) and scenario (-1 outside clips) it shows."""
    verb, noun, scenario = (np.full(frames, -1, np.int64) for _ in range(3))
    for start, script in clips:
        scenario[start : start + script.frames] = script.scenario
        for (v, n), (t0, t1) in zip(script.actions, script.times, strict=True):
            a, b = start + round(t0 * FPS), start + round(t1 * FPS)
            verb[a:b], noun[a:b] = v, n
    return verb, noun, scenario


def video_rows(
    labels: tuple[np.ndarray, np.ndarray, np.ndarray], bases: list[np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """(T, D) rows: per window, the mean of its frames' vectors (via cumulative one-hot counts), offset + noise."""
    frames = len(labels[0])
    starts, ends = row_windows(row_count(frames, SET.window, SET.stride), frames, SET.window, SET.stride)  # 32 / 16
    dim = bases[0].shape[1]
    rows = rng.normal(0, 0.5, size=dim).astype(np.float32) + rng.normal(0, NOISE, size=(len(starts), dim))
    for ids, basis in zip(labels, bases, strict=True):
        onehot = np.zeros((frames + 1, len(basis) + 1), np.float32)
        onehot[np.arange(1, frames + 1), ids + 1] = 1  # column 0: none
        counts = onehot.cumsum(axis=0)
        share = (counts[ends] - counts[starts])[:, 1:] / (ends - starts)[:, None]
        rows += share @ basis
    return rows.astype(np.float32)


def write_feature_download(
    out: Path, clip_scripts: dict[str, list[ClipScript]], videos: VideoLayout, cfg: SynthConfig
) -> list[str]:
    """Write the download under `download_dir(out)`; returns the test videos whose file was left out."""
    fs = RELEASED_SETS[cfg.features_set]
    folder = download_dir(out) / "v2" / fs.name
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([cfg.seed, 14])
    bases = [rng.normal(0, 1, size=(len(names), fs.dim)).astype(np.float32) for names in (VERBS, NOUNS, SCENARIOS)]
    scripts = {s.uid: s for split in clip_scripts.values() for s in split}
    test_videos = list(dict.fromkeys(videos.place[s.uid].video_uid for s in clip_scripts.get("test", [])))
    missing = test_videos[len(test_videos) - cfg.missing_features :] if cfg.missing_features else []
    for video, frames in videos.frames.items():
        clips = [(videos.place[uid].start_frame, scripts[uid]) for uid in videos.clips[video]]
        rows = video_rows(frame_labels(frames, clips), bases, np.random.default_rng([cfg.seed, 15, len(clips), frames]))
        path = folder / f"{video}.pt"
        if video in missing:
            path.unlink(missing_ok=True)
            continue
        torch.save(torch.from_numpy(rows), path)
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["video_uid"])
        writer.writerows([v] for v in videos.frames if v not in missing)
    return missing
