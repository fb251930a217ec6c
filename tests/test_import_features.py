"""Ego4D's released per-video features: synthetic download in the official schema -> import-features -> cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ego4d_lta.data.annotations import load_annotations
from ego4d_lta.data.synthetic import SynthConfig, generate
from ego4d_lta.data.synthetic_features import download_dir

OFFICIAL_KEYS = {
    "clip_id",
    "clip_uid",
    "video_uid",
    "clip_parent_start_sec",
    "clip_parent_end_sec",
    "clip_parent_start_frame",
    "clip_parent_end_frame",
    "interval_start_sec",
    "interval_end_sec",
    "interval_start_frame",
    "interval_end_frame",
    "action_idx",
    "action_clip_start_sec",
    "action_clip_end_sec",
    "action_clip_start_frame",
    "action_clip_end_frame",
}


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic dataset without videos, with an Ego4D-style feature download; one test video's file
    is missing."""
    out = tmp_path_factory.mktemp("released") / "data"
    generate(out, SynthConfig(videos=False, features_like_ego4d=True, missing_features=1), workers=1)
    return out


def test_synth_writes_the_official_schema_with_clips_cut_from_videos(released: Path) -> None:
    info = json.loads((released / "synthetic.json").read_text())
    for split, name in (("train", "fho_lta_train.json"), ("test", "fho_lta_test_unannotated.json")):
        entries = json.loads((released / "annotations" / name).read_text())["clips"]
        labels = {"verb", "noun", "verb_label", "noun_label"} if split == "train" else set()
        assert all(set(e) == OFFICIAL_KEYS | labels for e in entries)
        table, _ = load_annotations(released / "annotations", split)
        per_video = table.groupby("video_uid")["clip_uid"].nunique()
        assert (per_video >= 2).all()  # several clips share each video
        assert (table.clip_parent_start_frame > 0).all()
        video_end = table.clip_parent_start_frame + table.end_frame
        assert (video_end < table.video_uid.map(lambda v: info["videos"][v]["frames"])).all()
    assert len(info["missing_features"]) == 1
    files = {p.stem for p in (download_dir(released) / "v2" / "slowfast8x8_r101_k400").glob("*.pt")}
    assert files == set(info["videos"]) - set(info["missing_features"])
    assert not any((released / "clips").glob("*.mp4"))
