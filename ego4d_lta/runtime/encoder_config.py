"""Which frozen encoders make a feature cache, how segments are sampled for them, and the record they leave.

Kept apart from `models.factory` (which imports open_clip and pytorchvideo) so that training and prediction
over a cache start without importing either: on a slow machine those imports cost more than a tiny run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.hashing import file_digest
from ego4d_lta.data.feature_record import ClipFeatures, FeatureRecord, SlowFastFeatures
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

    def sampling_json(self) -> dict[str, Any]:
        """The sampling settings as the manifest and checkpoints record them (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.sampling).items()}


ENCODER_PRESETS = {
    "full": EncoderConfig(),
    "tiny": EncoderConfig(
        slowfast="tiny",
        clip_model=TINY_CLIP,
        sampling=SamplingConfig(crop_size=64, short_side=64, train_jitter=(64, 80)),
    ),
}
"""`full` is the report's SlowFast R101 8x8 + CLIP ViT-B/16 at 224; `tiny` the same classes, narrow, at 64 px."""


def encoder_preset(name: str, clip_model: str | None = None) -> EncoderConfig:
    """A preset by name (`data.encoders`, `extract --encoders`), with another open_clip model if given."""
    if name not in ENCODER_PRESETS:
        raise UserError(f"encoders {name!r}: choose from {', '.join(ENCODER_PRESETS)}")
    enc = ENCODER_PRESETS[name]
    return replace(enc, clip_model=clip_model) if clip_model else enc


def caches_present(features: Path | str, split: str) -> list[str]:
    """The encoder presets (`data.encoders`) whose `extract` cache of `split` is in the features folder."""
    root = Path(features)
    return [name for name, enc in ENCODER_PRESETS.items() if (root / enc.tag / split / "manifest.json").is_file()]


def load_encoders(
    enc: EncoderConfig, slowfast_weights: Path | None, clip_weights: Path | None, clip_pretrained: str | None = None
):
    """(SlowFastEncoder, ClipEncoder, FeatureRecord): the encoders of `enc` with their weights, and their record."""
    from ego4d_lta.models.factory import load_encoders as build

    slowfast, clip, kind = build(
        enc.slowfast,
        enc.clip_model,
        enc.sampling.num_frames,
        enc.sampling.crop_size,
        slowfast_weights,
        clip_weights,
        clip_pretrained,
    )
    record = FeatureRecord(
        SlowFastFeatures(
            preset=enc.slowfast,
            weights_sha256=file_digest(Path(slowfast_weights)),
            dim=slowfast.feature_dim,
            weights_kind=kind,
            config=asdict(slowfast.cfg),
        ),
        ClipFeatures(
            model=enc.clip_model,
            weights_sha256=file_digest(Path(clip_weights)) if clip_weights else None,
            pretrained=clip_pretrained if clip_weights is None else None,
            dim=clip.embed_dim,
            frames=enc.clip_frames,
            image_size=clip.image_size,
            mean=tuple(clip.mean),
            std=tuple(clip.std),
        ),
        enc.sampling_json(),
    )
    return slowfast, clip, record
