"""`ego4d-lta resize`: 320p-style re-encoding with a fixed keyframe interval, resumable and shardable."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from ego4d_lta.cli import main
from ego4d_lta.data.video import probe
from ego4d_lta.stages.resize import output_size


def test_output_size_is_even_and_never_upscaled() -> None:
    assert output_size(1920, 1080, 320) == (568, 320)
    assert output_size(1080, 1920, 320) == (320, 568)
    assert output_size(64, 64, 320) == (64, 64)
    assert output_size(101, 75, 40) == (54, 40)


def write_clip(path: Path, frames: int = 240, size: int = 64) -> None:
    """A short 30 fps clip with an 8 s keyframe interval (what raw downloads have)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        stream.codec_context.options = {"g": "250", "preset": "ultrafast"}
        for i in range(frames):
            img = np.full((size, size, 3), (i * 3) % 256, np.uint8)
            img[: (i % size) + 1, :, 1] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_resize_sets_size_and_keyframes_resumes_and_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    clips = ["clip_a", "clip_b", "clip_c"]
    for clip in clips:
        write_clip(src / f"{clip}.mp4")
    dst = tmp_path / "dst"
    args = ["resize", "--src", str(src), "--dst", str(dst), "--short-side", "48", "--keyframe-seconds", "1"]
    assert main([*args, "--shard", "1/2", "-q"]) == 0
    assert sorted(p.stem for p in dst.glob("*.mp4")) == ["clip_b"]
    assert main([*args, "--preset", "ultrafast", "-q"]) == 0
    assert "2 clips re-encoded, 1 already there, 0 failed" in capsys.readouterr().out
    before, after = probe(src / "clip_a.mp4"), probe(dst / "clip_a.mp4")
    assert (after.width, after.height, after.fps, after.frames) == (48, 48, 30.0, before.frames)
    with av.open(str(dst / "clip_a.mp4")) as c:
        keys = [i for i, p in enumerate(p for p in c.demux(video=0) if p.size) if p.is_keyframe]
    assert keys[:4] == [0, 30, 60, 90] and np.all(np.diff(keys) <= 30)
    assert not list(dst.glob("*.part")) and not list(dst.glob(".*.tmp*"))


def test_resize_progress_in_a_log_file_is_whole_lines_with_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EGO4D_LTA_PROGRESS_INTERVAL", "0")
    src = tmp_path / "src"
    src.mkdir()
    for clip in ("a", "b"):
        write_clip(src / f"{clip}.mp4", frames=30)
    assert main(["resize", "--src", str(src), "--dst", str(tmp_path / "dst"), "--preset", "ultrafast"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    last = [line for line in err.splitlines() if line.startswith("resize 0/1:")][-1]
    assert "2/2" in last and "clip/s" in last and "failed=0" in last


def test_corrupt_and_missing_inputs_are_reported(
    synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = json.loads((synth_data / "synthetic.json").read_text())["corrupt_videos"][0]
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(synth_data / "clips" / f"{bad}.mp4", src)
    assert main(["resize", "--src", str(src), "--dst", str(tmp_path / "dst"), "-q"]) == 2
    err = capsys.readouterr().err
    assert re.search(f"clip {bad}: (cannot open|corrupt) video", err) and "Traceback" not in err
    assert not list((tmp_path / "dst").iterdir())
    assert main(["resize", "--src", str(tmp_path / "nowhere"), "--dst", str(tmp_path / "d2")]) == 2
    assert "nowhere: folder not found" in capsys.readouterr().err
