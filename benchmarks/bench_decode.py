"""Decoding speed of the project's two access patterns, each against bare PyAV doing the same work.

Writes a 320p H.264 test clip (426x320, 30 fps, a keyframe every 2 s, moving textured content with noise,
as `ego4d-lta resize` produces) and one 32-frame stride-2 window per "segment", at Ego4D LTA's density by default:
an 8-minute clip (Ego4D's LTA clips are 8 minutes) with a window every `--spacing` seconds on average, 8.1 s by
default (59 actions per clip: the mean over the 208 real val clips of ../shared/data/antgpt_v1_val/val_chains.json,
12,303 actions), each gap drawn uniformly from 0.25-1.75 x spacing (some windows close together, others far apart):
  random   one window per call: `decode_frames` (open, seek to the keyframe, decode forward, convert the
           window's frames) vs bare PyAV doing the same open / seek / decode / convert
  pass     every window of the clip from one decode: `stream_windows` (the extraction path, which seeks over
           gaps holding a keyframe) vs bare PyAV decoding the whole clip once and converting the same frames
Figures are segments/s per core (CPU time, one decode thread), the median of `--repeat` alternating runs.
The last line is `ratio=<pass / random>` (ours): the extraction pass against random access (target >= 1.0).

    python benchmarks/bench_decode.py [--seconds 480] [--spacing 8.1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from ego4d_lta.data.video import SamplingConfig, decode_frames, frame_indices, stream_windows

CFG = SamplingConfig()


def write_clip(path: Path, seconds: int, width: int = 426, height: int = 320, crf: int = 23) -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height * 2, width * 2, 3), dtype=np.uint8)
    texture = (texture.astype(np.float32) * 0.3 + np.linspace(0, 170, width * 2)[None, :, None]).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"g": "60", "crf": str(crf), "preset": "veryfast"}
        for i in range(seconds * 30):
            y = int((80 + 60 * np.sin(i / 40)) * height / 320)  # the motion scales with the frame
            x = int((100 + 90 * np.cos(i / 55)) * width / 426)
            img = texture[y : y + height, x : x + width].copy()
            img[rng.integers(0, height, 400), rng.integers(0, width, 400)] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def bare_random(path: Path, idx: np.ndarray) -> np.ndarray:
    """What a careful hand-written PyAV loop does for one window."""
    wanted, found = set(idx.tolist()), {}
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tick = 1 / (30 * s.time_base)
        c.seek(int((idx[0] - 2) * tick), stream=s, backward=True, any_frame=False)
        for f in c.decode(s):
            i = round(f.pts / tick)
            if i > idx[-1]:
                break
            if i in wanted:
                found[i] = f.to_ndarray(format="rgb24")
    return np.stack([found[i] for i in idx.tolist()])


def bare_pass(path: Path, windows: list[np.ndarray]) -> list[np.ndarray]:
    """One sequential decode, converting the frames some window needs, then the windows."""
    wanted = set(np.concatenate(windows).tolist())
    last = max(wanted)
    found = {}
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tick = 1 / (30 * s.time_base)
        for f in c.decode(s):
            i = round(f.pts / tick)
            if i > last:
                break
            if i in wanted:
                found[i] = f.to_ndarray(format="rgb24")
    return [np.stack([found[i] for i in w.tolist()]) for w in windows]


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=480)
    ap.add_argument("--spacing", type=float, default=8.1, help="mean seconds between segment windows")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip320.mp4"
        write_clip(path, args.seconds)
        frames = args.seconds * 30
        gaps = np.random.default_rng(1).uniform(0.25, 1.75, int(args.seconds / args.spacing) + 1) * args.spacing
        starts = 0.5 + np.cumsum(gaps) - gaps[0]
        starts = starts[starts < args.seconds - CFG.duration - 0.5]
        windows = [frame_indices(s, frames, CFG) for s in starts]
        n = len(windows)
        sample = windows[:: max(1, n // 12)]  # random access: a dozen windows per run
        np.testing.assert_array_equal(decode_frames(path, sample[1]), bare_random(path, sample[1]))
        ours_pass = dict(stream_windows(path, windows))
        for k, w in zip(range(n), bare_pass(path, windows), strict=True):
            np.testing.assert_array_equal(ours_pass[k], w)

        times: dict[str, list[float]] = {"random ours": [], "random bare": [], "pass ours": [], "pass bare": []}
        for _ in range(args.repeat):
            times["random ours"].append(cpu(lambda: [decode_frames(path, w) for w in sample]) / len(sample))
            times["random bare"].append(cpu(lambda: [bare_random(path, w) for w in sample]) / len(sample))
            times["pass ours"].append(cpu(lambda: list(stream_windows(path, windows))) / n)
            times["pass bare"].append(cpu(lambda: bare_pass(path, windows)) / n)
        rate = {k: 1 / statistics.median(v) for k, v in times.items()}
        print(
            f"clip: {args.seconds} s, 426x320, 30 fps, keyframe every 2 s; {n} windows of 32 frames at stride 2, "
            f"one every {args.spacing} s on average ({(np.diff(starts) < CFG.duration).sum()} overlap the next)"
        )
        for kind in ("random", "pass"):
            ours, bare = rate[f"{kind} ours"], rate[f"{kind} bare"]
            print(f"{kind:<7} ours {ours:7.2f} segments/s per core   bare PyAV {bare:7.2f}   ratio {ours / bare:.2f}")
        print(f"pass / random (ours): {rate['pass ours'] / rate['random ours']:.2f}x")
        print(f"ratio={rate['pass ours'] / rate['random ours']:.3f}")


if __name__ == "__main__":
    main()
