"""benchmarks/gpu_check.py cannot rot: its CPU mode runs every code path the GPU run times and prints every field."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RATES = [
    "slowfast_clips_per_s",
    "clip_images_per_s",
    "encoders_segments_per_s",
    "extract_segments_per_s",
    "decode_segments_per_s_per_core",
    "decode_frames_per_s_per_core",
    "train_video_windows_per_s",
    "predict_windows_per_s",
]
PEAKS = [
    "slowfast_peak_gib",
    "clip_peak_gib",
    "encoders_peak_gib",
    "extract_peak_gib",
    "train_video_peak_gib",
    "predict_peak_gib",
]


@pytest.mark.slow
def test_quick_cpu_mode_prints_one_json_object_with_every_field(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "check.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--quick", "--device", "cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # stdout is the JSON object and nothing else
    assert result == json.loads(out.read_text())
    assert result["quick"] is True and result["device"] == "cpu" and result["gpu"] is None
    assert "errors" not in result and not list(tmp_path.glob("*.part"))
    for key in RATES:
        assert isinstance(result[key], float) and math.isfinite(result[key]) and result[key] > 0, key
    for key in PEAKS:
        assert key in result and result[key] is None, key  # no GPU memory on a CPU
    for key, batch in (("train_cache_b64", 8), ("train_cache_b512", 32)):
        assert result[key]["batch"] == batch and result[key]["windows_per_s"] > 0 and result[key]["peak_gib"] is None
    assert result["extract_segments"] == 2 * 29  # every segment of the two clips went through extraction
    ratio = result["extract_segments_per_s"] / result["encoders_segments_per_s"]
    assert result["extract_vs_bare"] == pytest.approx(ratio, rel=0.01)
    assert result["decode_frames_per_s_per_core"] > 32 * result["decode_segments_per_s_per_core"] / 4
    p = result["projection"]
    assert p["gpus"] == 8 and p["epochs"] == 30 and set(p["assumed_segments"]) == {"train", "val", "test"}
    parts = p["extract_min"] + p["train_min"] + p["predict_min"]
    assert p["total_min"] == pytest.approx(parts, abs=0.02) and min(p["extract_min"], p["train_min"]) > 0
    segments = sum(p["assumed_segments"].values())
    assert p["extract_min"] == pytest.approx(segments / (8 * result["extract_segments_per_s"]) / 60, rel=0.01)


def test_a_failed_stage_costs_only_its_own_figures(tmp_path: Path) -> None:
    """A GPU slot is short: the figures taken before a failing stage, and after it, are on disk."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from gpu_check import Stages
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    out, path = {"device": "cuda"}, tmp_path / "check.json"
    stage = Stages(out, path)
    stage("encoders", lambda: {"slowfast_clips_per_s": 812.5})
    assert json.loads(path.read_text()) == {"device": "cuda", "slowfast_clips_per_s": 812.5}

    def out_of_memory() -> dict:
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    stage("training from the cache, batch 512", out_of_memory)
    stage("predict", lambda: {"predict_windows_per_s": 9000.0})
    saved = json.loads(path.read_text())
    assert saved["slowfast_clips_per_s"] == 812.5 and saved["predict_windows_per_s"] == 9000.0
    assert saved["errors"] == {
        "training from the cache, batch 512": "RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB"
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.json"]  # written whole each time, no leftovers
