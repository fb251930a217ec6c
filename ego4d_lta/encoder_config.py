"""Which frozen encoders make a feature cache, and how segments are sampled for them.

Kept apart from `extract` (which imports open_clip and pytorchvideo) so that training and prediction over a
cache start without importing either: on a slow machine those imports cost more than a tiny run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ego4d_lta.data.video import SamplingConfig
from ego4d_lta.models import TINY_CLIP


@dataclass(frozen=True)
class EncoderConfig:
    """Which frozen encoders make the features, and how segments are sampled for them."""

    slowfast: str = "r101"
    """A SLOWFAST_PRESETS name."""
    clip_model: str = "ViT-B-16"
    """Any open_clip model name."""
    clip_frames: int = 8
    """CLIP images per segment, evenly spaced over the window (= the slow pathway's frames for 8)."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    @property
    def tag(self) -> str:
        """The cache folder name under FEATURES_DIR."""
        return f"slowfast_{self.slowfast}+{self.clip_model}"


ENCODER_PRESETS = {
    "full": EncoderConfig(),
    "tiny": EncoderConfig(
        slowfast="tiny",
        clip_model=TINY_CLIP,
        sampling=SamplingConfig(crop_size=64, short_side=64, train_jitter=(64, 80)),
    ),
}
"""`full` is the report's SlowFast R101 8x8 + CLIP ViT-B/16 at 224; `tiny` the same classes, narrow, at 64 px."""


def file_digest(path: Path) -> str:
    """sha256 of a weights file (the manifest's proof of which weights made the features)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
