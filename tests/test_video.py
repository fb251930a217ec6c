"""Decoding one segment's window with PyAV, and the SlowFast / CLIP input transforms."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from ego4d_lta.data.video import (
    SamplingConfig,
    VideoError,
    clip_input,
    decode_frames,
    frame_indices,
    probe,
    slowfast_input,
    stream_windows,
    window_start,
)

CFG = SamplingConfig()


def test_window_is_centred_random_inside_or_clamped() -> None:
    assert window_start((10.0, 14.0), 100.0, CFG) == pytest.approx(12.0 - CFG.duration / 2)
    starts = [window_start((10.0, 14.0), 100.0, CFG, np.random.default_rng(s)) for s in range(50)]
    assert min(starts) >= 10.0 and max(starts) <= 14.0 - CFG.duration and np.std(starts) > 0.2
    assert window_start((10.0, 11.0), 100.0, CFG, np.random.default_rng(0)) == pytest.approx(10.5 - CFG.duration / 2)
    assert window_start((0.0, 1.0), 100.0, CFG) == 0.0
    assert window_start((99.0, 101.0), 100.0, CFG) == pytest.approx(100.0 - CFG.duration)
    assert frame_indices(0.5, 1000, CFG).tolist() == list(range(15, 15 + 64, 2))
    assert frame_indices(9.9, 300, CFG)[-1] == 299
    assert frame_indices(0.5, 1000, CFG, video_fps=30.0).tolist() == list(range(15, 15 + 64, 2))


@pytest.mark.parametrize("fps", [15.0, 24.0, 25.0, 29.97, 60.0])
def test_a_video_at_another_rate_is_sampled_at_the_same_instants(fps: float) -> None:
    want = 3.21 + np.arange(CFG.num_frames) * CFG.sampling_rate / CFG.fps  # the 30-fps window's instants (s)
    idx = frame_indices(3.21, 10_000, CFG, video_fps=fps)
    assert len(idx) == CFG.num_frames and np.all(np.diff(idx) >= 0)
    assert np.abs(idx / fps - want).max() <= 0.5 / fps + 1e-9  # each the nearest frame to its instant


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """300 frames whose content encodes the frame number, keyframe every 60 frames; and its frames."""
    path = tmp_path_factory.mktemp("video") / "numbered.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.options = {"g": "60", "crf": "18", "bf": "2"}
        for i in range(300):
            img = np.zeros((64, 96, 3), np.uint8)
            img[:, : (i % 96) + 1, 0] = 200
            img[: (i // 96 + 1) * 12, :, 1] = 150
            img[:, :, 2] = (i * 37) % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return path, frames


@pytest.mark.parametrize("first", [0, 1, 57, 59, 60, 61, 119, 200, 250, 280])
def test_seek_and_decode_equals_a_sequential_decode(numbered_video: tuple[Path, np.ndarray], first: int) -> None:
    path, frames = numbered_video
    idx = np.clip(first + np.arange(32) * 2, 0, len(frames) - 1)  # runs past the end for the late windows
    assert np.array_equal(decode_frames(path, idx), frames[idx])


def test_probe(numbered_video: tuple[Path, np.ndarray]) -> None:
    info = probe(numbered_video[0])
    assert (info.frames, info.fps, info.width, info.height) == (300, 30.0, 96, 64)


def test_slowfast_input_shapes_normalisation_and_train_only_augmentation() -> None:
    frames = np.full((32, 120, 160, 3), round(0.45 * 255), np.uint8)
    frames[:, :, :80, 0] = 255  # left half red: shows a flip
    slow, fast = slowfast_input(frames, CFG)
    assert slow.shape == (3, 8, 224, 224) and fast.shape == (3, 32, 224, 224)
    assert torch.equal(slow, fast[:, ::4])
    assert fast[1].abs().max() < 0.02  # green channel is the mean everywhere
    assert fast[0, :, :, 0].mean() > 1 and fast[0, :, :, -1].mean() < 0.1  # eval: never flipped
    flips = []
    for seed in range(20):
        _, fast = slowfast_input(frames, CFG, np.random.default_rng(seed))
        assert fast.shape == (3, 32, 224, 224)
        flips.append(bool(fast[0, :, :, -1].mean() > fast[0, :, :, 0].mean()))
    assert 3 <= sum(flips) <= 17


def test_clip_input_uses_clip_preprocessing() -> None:
    frames = np.zeros((32, 90, 120, 3), np.uint8)
    frames[np.arange(32), :, :, 0] = (np.arange(32) * 8)[:, None, None]
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    x = clip_input(frames, 64, mean, std)
    assert x.shape == (8, 3, 64, 64)
    red = x[:, 0, 32, 32] * std[0] + mean[0]
    expected = torch.tensor([i * 8 / 255 for i in np.linspace(0, 31, 8).astype(int)], dtype=torch.float32)
    assert torch.allclose(red, expected, atol=1e-3)


def test_clip_input_matches_open_clips_own_preprocessing() -> None:
    """Same pixels as open_clip's eval transform on PIL images (bicubic resize, centre crop, CLIP mean/std)."""
    import open_clip
    from PIL import Image

    yy, xx = np.mgrid[:120, :160]
    frames = np.stack(
        [np.stack([(xx * 1.5 + t * 10) % 256, (yy * 2) % 256, ((xx + yy) * 3) % 256], -1) for t in range(32)]
    ).astype(np.uint8)
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    transform = open_clip.image_transform(64, is_train=False, mean=mean, std=std)
    ref = torch.stack([transform(Image.fromarray(f)) for f in frames[np.linspace(0, 31, 8).astype(int)]])
    ours = clip_input(frames, 64, mean, std)
    assert (ours - ref).abs().mean() < 0.01 and (ours - ref).abs().max() < 0.1
    wrong = clip_input(frames, 64, CFG.mean, CFG.std)  # SlowFast's normalisation, the fork's mistake
    assert (wrong - ref).abs().mean() > 0.1


def test_missing_and_corrupt_videos_are_clear_errors(synth_data: Path) -> None:
    info = json.loads((synth_data / "synthetic.json").read_text())
    for uid, what in ((info["missing_videos"][0], "video file is missing"), (info["corrupt_videos"][0], "video")):
        with pytest.raises(VideoError, match=f"clip {uid}: .*{what}") as e:
            decode_frames(synth_data / "clips" / f"{uid}.mp4", np.arange(0, 64, 2), clip_uid=uid)
        assert "\n" not in str(e.value)


def test_decodes_a_real_synthetic_segment(synth_data: Path) -> None:
    ann = json.loads((synth_data / "annotations" / "fho_lta_val.json").read_text())["clips"][3]
    path = synth_data / "clips" / f"{ann['clip_uid']}.mp4"
    video = probe(path)
    start = window_start((ann["action_clip_start_sec"], ann["action_clip_end_sec"]), video.duration, CFG)
    frames = decode_frames(path, frame_indices(start, video.frames, CFG))
    assert frames.shape == (32, video.height, video.width, 3)
    slow, fast = slowfast_input(frames, SamplingConfig(crop_size=56, short_side=64))
    assert slow.shape == (3, 8, 56, 56) and fast.shape == (3, 32, 56, 56)


@pytest.mark.parametrize("seek_gap", [4, 300])
def test_one_pass_extraction_equals_random_access(numbered_video: tuple[Path, np.ndarray], seek_gap: int) -> None:
    """Overlapping, unordered, far-apart and past-the-end windows all come out as decode_frames gives them."""
    path, frames = numbered_video
    starts = [100, 0, 5, 59, 230, 180, 270, 120]  # 5 overlaps 0; 270 runs past the end (300 frames)
    windows = [np.clip(s + np.arange(16) * 2, 0, 299) for s in starts]
    got = dict(stream_windows(path, windows, "numbered", seek_gap=seek_gap))
    assert sorted(got) == list(range(len(windows)))
    for k, w in enumerate(windows):
        np.testing.assert_array_equal(got[k], decode_frames(path, w), err_msg=f"window {k} (start {starts[k]})")
        np.testing.assert_array_equal(got[k], frames[w])


def test_one_pass_extraction_decodes_only_what_random_access_would(numbered_video, monkeypatch) -> None:
    """Windows just before, on and after keyframes (every 60 frames), gaps with and without one: every frame right,
    and the pass decodes each frame once and none that random access to each window would not (it seeks over a gap
    holding a keyframe; decoding through the gaps was the pass's extra cost), skipping unused B-frames."""
    import ego4d_lta.data.video as video

    path, frames = numbered_video
    decoded: list[int] = []

    def counting(decode):
        def counted(container, *args):
            for frame in decode(container, *args):
                decoded.append(int(frame.pts))
                yield frame

        return counted

    monkeypatch.setattr(video, "_decode", counting(video._decode))  # random access
    monkeypatch.setattr(video, "_decode_needed", counting(video._decode_needed))  # the pass
    starts = [58, 60, 61, 118, 150, 238, 262]
    windows = [np.clip(s + np.arange(8) * 2, 0, 299) for s in starts]
    union: set[int] = set()
    for w in windows:
        decoded.clear()
        np.testing.assert_array_equal(decode_frames(path, w), frames[w])
        union |= set(decoded)
    decoded.clear()
    got = dict(stream_windows(path, windows, "numbered"))
    for k, w in enumerate(windows):
        np.testing.assert_array_equal(got[k], frames[w], err_msg=f"window {k} (start {starts[k]})")
    assert len(decoded) == len(set(decoded)), "a frame decoded twice"
    assert len(decoded) <= len(union) + 2 < 290, (len(decoded), len(union))


def test_one_pass_extraction_reports_a_corrupt_clip(synth_data: Path) -> None:
    info = json.loads((synth_data / "synthetic.json").read_text())
    bad = info["corrupt_videos"][0]
    with pytest.raises(VideoError, match=bad):
        list(stream_windows(synth_data / "clips" / f"{bad}.mp4", [np.arange(0, 64, 2), np.arange(300, 364, 2)], bad))


def _time_coded(path: Path, fps: int, seconds: float = 4.0) -> Path:
    """A video whose every frame shows only its own time stamp: grey level 60 * t (one level per 1/60 s)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.codec_context.options = {"g": str(fps), "crf": "4"}
        for i in range(int(seconds * fps)):
            img = np.full((64, 64, 3), round(60 * i / fps), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_extraction_samples_a_15_fps_clip_at_the_instants_of_a_30_fps_one(tmp_path: Path) -> None:
    """The extraction pass reads each clip's own frame rate: the same seconds, the same frames' content."""
    import pandas as pd

    from ego4d_lta.data.segment_dataset import ClipImageSpec, ClipPassDataset

    for uid, fps in (("at30", 30), ("at15", 15)):
        _time_coded(tmp_path / f"{uid}.mp4", fps)
    segment = (1.0, 1.0 + CFG.duration)  # the centred window starts at 1.0 s
    rows = pd.DataFrame({"clip_uid": ["at30", "at15"], "action_idx": [0, 0], "view": [0, 0]})
    rows["start_sec"], rows["end_sec"] = segment
    cfg = SamplingConfig(crop_size=32, short_side=32)
    dataset = ClipPassDataset(tmp_path, rows, ["at30", "at15"], cfg, ClipImageSpec(32, (0.5,) * 3, (0.5,) * 3), 2)
    batch = next(iter(dataset))
    assert batch["rows"].tolist() == [0, 1] and batch["fast"].shape[2] == CFG.num_frames
    grey = batch["fast"].mean(dim=(1, 3, 4)) * 0.225 + 0.45  # (2 clips, 32 frames), back to [0, 1]
    want = 60 * (1.0 + np.arange(CFG.num_frames) * CFG.sampling_rate / CFG.fps) / 255
    np.testing.assert_allclose(grey[0].numpy(), want, atol=3 / 255)  # the 30 fps clip: its frames' instants
    np.testing.assert_allclose(grey[1].numpy(), grey[0].numpy(), atol=3 / 255)  # the 15 fps clip: the same ones
