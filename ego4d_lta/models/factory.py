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


TINY_SEEDS = {"slowfast": 0, "clip": 1}
"""The seeds of the tiny encoders' random weights: the demo's, the tests' and `extract --encoders tiny`'s."""


def random_tiny_weights(out: Path, num_frames: int, crop_size: int) -> tuple[Path, Path]:
    """Seeded random-init tiny SlowFast and CLIP weights saved as files in `out` (kept when already there).

    No weights exist to download for the tiny encoders: they are for synthetic data, the demo and tests, where the
    features only need to be the same function of the frames for every split (the same seeds, the same files).
    """
    import torch

    from ego4d_lta.models import TINY_CLIP
    from ego4d_lta.models.clip import random_clip
    from ego4d_lta.models.clip import save_weights as save_clip
    from ego4d_lta.models.slowfast import save_weights

    slowfast, clip = out / "slowfast_tiny.pt", out / "clip_tiny.pt"
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not slowfast.is_file():
            torch.manual_seed(TINY_SEEDS["slowfast"])
            save_weights(SlowFastEncoder(SLOWFAST_PRESETS["tiny"], num_frames, crop_size), slowfast)
        if not clip.is_file():
            save_clip(random_clip(TINY_CLIP, seed=TINY_SEEDS["clip"]), clip)
    except OSError as e:
        raise UserError(f"{out}: cannot write the tiny encoders' weights ({e.strerror or e})") from None
    return slowfast, clip
