"""The synthetic dataset's typed records: what to generate, the clips' scripts and where they sit in their videos."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ego4d_lta.data.synthetic_render import FPS


@dataclass(frozen=True)
class SizePreset:
    frame_size: int
    clips: dict[str, int]
    segments: tuple[int, int]
    activities: int


SIZES = {
    "tiny": SizePreset(64, {"train": 16, "val": 5, "test": 5}, (34, 42), 4),
    "small": SizePreset(112, {"train": 60, "val": 15, "test": 15}, (36, 60), 6),
}


@dataclass(frozen=True)
class Ego4DShape:
    """Ego4D LTA v2 at full size, as `SynthConfig.scale` imitates it (the proportions `benchmarks/bench_import.py`
    uses): its action counts (test taken as large as val), 8-minute clips cut two to a 23-minute canonical video (the
    mean: ~3,670 hours in ~9,600 videos), actions of 2-8 s with 0-8 s between them (about six a minute), and its
    taxonomy's size (the synthetic classes first, the rest never drawn)."""

    actions: tuple[tuple[str, int], ...] = (("train", 63_956), ("val", 33_149), ("test", 33_149))
    clip_seconds: float = 480.0
    video_seconds: float = 1380.0
    clips_per_video: int = 2
    action_seconds: tuple[float, float] = (2.0, 8.0)
    gap_seconds: tuple[float, float] = (0.0, 8.0)
    verbs: int = 117
    nouns: int = 521


EGO4D_V2 = Ego4DShape()


@dataclass(frozen=True)
class SynthConfig:
    """What `ego4d-lta synth` generates; the same config and seed give the same dataset."""

    seed: int = 0
    size: str = "tiny"
    missing_videos: int = 0
    """Test clips whose annotations exist but whose video file does not (like Ego4D's undownloadable one)."""
    corrupt_videos: int = 0
    """Test clips whose video file is truncated garbage."""
    p_branch: float = 0.25
    p_skip: float = 0.05
    p_stray: float = 0.04
    videos: bool = True
    """Render the clips' mp4 files (False: annotations only, e.g. with `features_like_ego4d`)."""
    features_like_ego4d: bool = False
    """Also write a per-video feature download in Ego4D's released layout (`synth/features.py`)."""
    missing_features: int = 0
    """Test videos whose feature file the download lacks (the last ones)."""
    features_set: str = "slowfast8x8_r101_k400"
    """Which released set the download imitates (its dimension; all use windows of 32 at stride 16)."""
    scale: float = 0.0
    """> 0: Ego4D v2's shape (`EGO4D_V2`) at `scale` times its action counts instead of the `size` preset's clips
    (annotations and feature download only: needs `videos=False`)."""


@dataclass
class Activity:
    """One script: `main[j]` or, with probability p_branch, `alt[j]` at cycle position j."""

    scenario: int
    main: list[tuple[int, int]]
    alt: list[tuple[int, int]]


@dataclass
class SynthSummary:
    out: Path
    clips: dict[str, list[str]] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    missing_features: list[str] = field(default_factory=list)
    """Videos whose feature file was left out of the synthetic feature download."""
    bytes: int = 0


@dataclass
class ClipScript:
    """What a clip shows: its actions and their clip-relative times, over its activity's scenario."""

    uid: str
    actions: list[tuple[int, int]]
    times: list[tuple[float, float]]
    scenario: int

    @property
    def frames(self) -> int:
        """The clip's length in frames (as rendered: half a second after its last segment)."""
        return int(np.ceil((self.times[-1][1] + 0.5) * FPS))


@dataclass
class ClipPlace:
    """Where a clip was cut from: its canonical video and its first frame there."""

    video_uid: str
    start_frame: int
    frames: int


@dataclass
class VideoLayout:
    place: dict[str, ClipPlace]
    frames: dict[str, int]
    """video_uid -> its frame count N"""
    clips: dict[str, list[str]]
    """video_uid -> its clips, in order"""
