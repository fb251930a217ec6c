"""Shared fixtures: the real reference data in ../shared/data and one synthetic dataset per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from ego4d_lta.data.synthetic import generate
from ego4d_lta.demo import DEMO_SYNTH

# CI runs the same examples every time (a failure there is reproducible); locally they vary.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

SHARED_DATA = Path(os.environ.get("EGO4D_LTA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real Ego4D reference files (never copied into this repo). Missing is a failure, not a skip."""
    if not (SHARED_DATA / "fho_lta_taxonomy_v1.json").exists():
        pytest.fail(f"reference data not found at {SHARED_DATA}; set EGO4D_LTA_SHARED_DATA", pytrace=False)
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo folder whose data/ already holds the demo's dataset (so the demo test reuses it)."""
    out = tmp_path_factory.mktemp("demo")
    generate(out / "data", DEMO_SYNTH)
    return out


@pytest.fixture(scope="session")
def synth_data(demo_dir: Path) -> Path:
    """The tiny synthetic dataset, seed 0, with one missing and one corrupt test video."""
    return demo_dir / "data"
