"""Shared fixtures: the real reference data in ../shared/data and one synthetic dataset per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ego4d_lta.data.synthetic import SynthConfig, generate

SHARED_DATA = Path(os.environ.get("EGO4D_LTA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real Ego4D reference files (never copied into this repo). Missing is a failure, not a skip."""
    if not (SHARED_DATA / "fho_lta_taxonomy_v1.json").exists():
        pytest.fail(f"reference data not found at {SHARED_DATA}; set EGO4D_LTA_SHARED_DATA", pytrace=False)
    return SHARED_DATA


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic dataset with one missing and one corrupt test video (as the demo uses)."""
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, SynthConfig(seed=0, size="tiny", missing_videos=1, corrupt_videos=1))
    return out
