"""Frozen encoders (SlowFast, CLIP) and, later, the forecaster."""
