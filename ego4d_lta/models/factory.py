"""Build models from plain settings and weight files: the frozen encoders (the forecaster: `forecaster.py`)."""

from __future__ import annotations

from pathlib import Path

from ego4d_lta.base.errors import UserError
from ego4d_lta.models.clip import ClipEncoder
from ego4d_lta.models.slowfast import SLOWFAST_PRESETS, SlowFastEncoder, freeze, load_weights


def load_encoders(
    slowfast_preset: str,
    clip_model: str,
    num_frames: int,
    crop_size: int,
    slowfast_weights: Path | None,
    clip_weights: Path | None,
    clip_pretrained: str | None = None,
) -> tuple[SlowFastEncoder, ClipEncoder, str]:
    """Both encoders with their weights (SlowFast frozen), and how the SlowFast file was read."""
    if slowfast_preset not in SLOWFAST_PRESETS:
        raise UserError(f"SlowFast preset {slowfast_preset!r} unknown; choose from {sorted(SLOWFAST_PRESETS)}")
    if slowfast_weights is None:
        raise UserError("no SlowFast weights: pass --slowfast-weights FILE (an Ego4D .ckpt or an ego4d-lta file)")
    if clip_weights is None and clip_pretrained is None:
        raise UserError("no CLIP weights: pass --clip-weights FILE (or --clip-pretrained TAG when online)")
    slowfast = SlowFastEncoder(SLOWFAST_PRESETS[slowfast_preset], num_frames, crop_size)
    kind = load_weights(slowfast, slowfast_weights)
    clip = ClipEncoder(clip_model, weights=clip_weights, pretrained=clip_pretrained)
    return freeze(slowfast), clip, kind
