"""Frozen encoders (SlowFast, CLIP), the prompt bank and the forecaster variants."""

TINY_CLIP = "ego4d-lta-tiny-clip"
"""The package's own tiny open_clip config (clip_configs/), for tests and the demo."""
