"""`ego4d-lta resize`: 320p-style re-encoding with a fixed keyframe interval, resumable and shardable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from ego4d_lta.cli import main
from ego4d_lta.data.video import probe
from ego4d_lta.resize import output_size


def test_output_size_is_even_and_never_upscaled() -> None:
    assert output_size(1920, 1080, 320) == (568, 320)
    assert output_size(1080, 1920, 320) == (320, 568)
    assert output_size(64, 64, 320) == (64, 64)
    assert output_size(101, 75, 40) == (54, 40)


def test_resize_sets_size_and_keyframes_resumes_and_shards(
    synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = json.loads((synth_data / "synthetic.json").read_text())
    good = [c for c in sorted(p.stem for p in (synth_data / "clips").glob("*.mp4")) if c not in info["corrupt_videos"]]
    src = tmp_path / "src"
    src.mkdir()
    for clip in good[:3]:
        shutil.copy(synth_data / "clips" / f"{clip}.mp4", src)
    dst = tmp_path / "dst"
    args = ["resize", "--src", str(src), "--dst", str(dst), "--short-side", "48", "--keyframe-seconds", "1", "-q"]
    assert main([*args, "--shard", "1/2"]) == 0
    assert sorted(p.stem for p in dst.glob("*.mp4")) == [good[1]]
    assert main(args) == 0
    assert "2 clips re-encoded, 1 already there, 0 failed" in capsys.readouterr().out
    before, after = probe(src / f"{good[0]}.mp4"), probe(dst / f"{good[0]}.mp4")
    assert (after.width, after.height, after.fps, after.frames) == (48, 48, 30.0, before.frames)
    with av.open(str(dst / f"{good[0]}.mp4")) as c:
        keys = [i for i, p in enumerate(p for p in c.demux(video=0) if p.size) if p.is_keyframe]
    assert keys[:4] == [0, 30, 60, 90] and np.all(np.diff(keys) <= 30)
    assert not list(dst.glob("*.part"))


def test_corrupt_and_missing_inputs_are_reported(
    synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = json.loads((synth_data / "synthetic.json").read_text())["corrupt_videos"][0]
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(synth_data / "clips" / f"{bad}.mp4", src)
    assert main(["resize", "--src", str(src), "--dst", str(tmp_path / "dst"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"clip {bad}: corrupt video" in err and "Traceback" not in err
    assert not list((tmp_path / "dst").iterdir())
    assert main(["resize", "--src", str(tmp_path / "nowhere"), "--dst", str(tmp_path / "d2")]) == 2
    assert "nowhere: folder not found" in capsys.readouterr().err
