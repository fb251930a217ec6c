"""Decode one annotated segment's frames with PyAV and turn them into SlowFast and CLIP inputs.

Each observed segment contributes one 2.133 s window: 32 frames at stride 2 at 30 fps (design §4.3),
at a random position inside the segment when training and at its centre otherwise, clamped to the
video. Decoding seeks to the keyframe before the window and decodes only up to its last frame.

The transforms are written with torch ops: pytorchvideo's transforms module does not import on
current torchvision. SlowFast sees short side 256 (random 256-320 when training), a 224 crop
(random when training), a horizontal flip with probability 0.5 only when training, and its own
mean/std; CLIP sees its own frames resized and normalised with the CLIP model's preprocessing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from av.video.reformatter import VideoReformatter

from ego4d_lta.base.errors import UserError


class VideoError(UserError):
    """A clip's video is missing or cannot be decoded; names the clip."""


@dataclass(frozen=True)
class SamplingConfig:
    """How a segment becomes frames (the official Ego4D LTA SlowFast 8x8 settings by default)."""

    num_frames: int = 32
    sampling_rate: int = 2
    fps: float = 30.0
    alpha: int = 4
    """Fast/slow frame ratio: the slow pathway sees num_frames / alpha frames."""
    crop_size: int = 224
    short_side: int = 256
    train_jitter: tuple[int, int] = (256, 320)
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)

    @property
    def duration(self) -> float:
        """Seconds covered by one window (32 * 2 / 30 = 2.133 s)."""
        return self.num_frames * self.sampling_rate / self.fps


def window_start(
    segment: tuple[float, float],
    video_duration: float,
    cfg: SamplingConfig,
    rng: np.random.Generator | None = None,
) -> float:
    """Start time of the window cut from `segment`: random inside it when `rng` is given, else centred.

    A segment shorter than the window, or one that runs past the video's end, is clamped so the
    window stays inside [0, video_duration].
    """
    start, end = segment
    room = (end - start) - cfg.duration
    t = start + rng.uniform(0, room) if rng is not None and room > 0 else (start + end - cfg.duration) / 2
    return float(min(max(t, 0.0), max(video_duration - cfg.duration, 0.0)))


def frame_indices(
    start_sec: float, num_video_frames: int, cfg: SamplingConfig, video_fps: float | None = None
) -> np.ndarray:
    """The window's frame numbers (num_frames of them, sampling_rate apart at cfg.fps), clamped to the video.

    A video at another rate than cfg.fps (Ego4D's clips are 30 fps; a re-encoded copy may not be) is sampled at the
    same instants, its nearest frames: the window covers the same seconds whatever the video's rate.
    """
    steps = np.arange(cfg.num_frames)
    if video_fps is None or abs(video_fps - cfg.fps) < 1e-6:
        idx = round(start_sec * cfg.fps) + steps * cfg.sampling_rate
    else:
        idx = np.round((start_sec + steps * cfg.sampling_rate / cfg.fps) * video_fps).astype(np.int64)
    return np.clip(idx, 0, max(num_video_frames - 1, 0))


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def probe(path: Path | str, clip_uid: str = "") -> VideoInfo:
    """Frame count, rate and size of a video (from the container; counted when the header has none)."""
    name = clip_uid or Path(path).stem
    with open_video(path, name) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 30)
        frames = stream.frames
        if not frames:
            frames = sum(1 for _ in _decode(container, name))
        return VideoInfo(frames=int(frames), fps=fps, width=stream.width, height=stream.height)


def decode_frames(path: Path | str, indices: np.ndarray, clip_uid: str = "") -> np.ndarray:
    """uint8 RGB frames (len(indices), H, W, 3) at the given frame numbers (ascending, repeats allowed).

    Seeks once, to the keyframe at or before the first wanted frame, then decodes forward only as
    far as the last one.
    """
    name = clip_uid or Path(path).stem
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        raise ValueError("no frames requested")
    if np.any(np.diff(indices) < 0):
        raise ValueError("frame indices must be ascending")
    wanted = set(indices.tolist())
    last = int(indices[-1])
    found: dict[int, np.ndarray] = {}
    with open_video(path, name) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        clock = _Clock(stream)
        reformatter = VideoReformatter()
        clock.seek(container, stream, int(indices[0]))
        for frame in _decode(container, name):
            index = clock.index(frame)
            if index is None:
                continue
            if index > last:
                break
            if index in wanted:
                found[index] = rgb(frame, reformatter)
    if not found:
        raise VideoError(f"{path}: clip {name}: no frames decoded at {indices[0]}..{last}")
    missing = sorted(wanted - set(found))
    if missing and missing[0] < max(found):
        raise VideoError(f"{path}: clip {name}: frame {missing[0]} could not be decoded")
    for index in missing:  # past the end of a stream shorter than its header: repeat the last frame
        found[index] = found[max(found)]
    return np.stack([found[i] for i in indices.tolist()])


def stream_windows(
    path: Path | str, windows: list[np.ndarray], clip_uid: str = "", seek_gap: int = 300
) -> Iterator[tuple[int, np.ndarray]]:
    """(window number, uint8 (T, H, W, 3) frames) for many windows of one clip, from one forward pass.

    The extraction path (design §4.4): the clip is decoded once, in order, and every window is cut from
    that pass as soon as its last frame has gone by; only the frames some window still needs are kept
    (as RGB; the rest are never converted). Windows may overlap and come in any order. Between needed frames
    the pass seeks whenever the container's index has a keyframe after the current frame that a seek to the next
    needed one lands on: the frames before it are never decoded, so the pass decodes no frame that random access
    to each window would not (the frames in a gap were 1/4 of the pass at Ego4D's segment density). A stream
    without an index crosses only gaps of more than `seek_gap` frames with a seek.
    """
    name = clip_uid or Path(path).stem
    windows = [np.asarray(w, dtype=np.int64) for w in windows]
    if not windows:
        return
    needed = np.unique(np.concatenate(windows))
    wanted = set(needed.tolist())
    users: dict[int, int] = {}  # frame -> number of windows not yet emitted that use it
    for w in windows:
        for i in set(w.tolist()):
            users[i] = users.get(i, 0) + 1
    order = sorted(range(len(windows)), key=lambda k: (int(windows[k].max()), k))
    kept: dict[int, np.ndarray] = {}
    next_window = 0
    with open_video(path, name) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        clock = _Clock(stream)
        keys = clock.keyframes(stream)
        reformatter = VideoReformatter()
        position = 0  # next needed frame to fetch
        while position < len(needed):
            target = int(needed[position])
            sought = position  # one seek per needed frame at most: a landing earlier than the index said cannot loop
            clock.seek(container, stream, target)
            for frame in _decode_needed(container, stream, name, clock, wanted):
                index = clock.index(frame)
                if index is None or index < target:
                    continue
                while position < len(needed) and needed[position] < index:
                    position += 1  # a frame the stream does not have: filled in below from its neighbour
                if position >= len(needed):
                    break
                if index == needed[position]:
                    kept[index] = rgb(frame, reformatter)
                    position += 1
                    while next_window < len(order) and windows[order[next_window]].max() <= index:
                        k = order[next_window]
                        yield k, _gather(kept, windows[k], users, path, name)
                        next_window += 1
                if position < len(needed) and position != sought:
                    ahead = int(needed[position])
                    if (keys is not None and clock.landing(keys, ahead) > index + 1) or ahead - index > seek_gap:
                        break  # seek across the gap: to a keyframe still ahead, or far
            else:
                break  # end of stream
    while next_window < len(order):  # windows whose last frames lie past the end of the stream
        if not kept:
            raise VideoError(f"{path}: clip {name}: no frames decoded at {needed[0]}..{needed[-1]}")
        k = order[next_window]
        yield k, _gather(kept, windows[k], users, path, name)
        next_window += 1


def _gather(
    kept: dict[int, np.ndarray], window: np.ndarray, users: dict[int, int], path: Path | str, name: str
) -> np.ndarray:
    """One window's frames from the kept ones; frames no pending window needs any more are dropped."""
    frames = []
    for i in window.tolist():
        if i not in kept:
            earlier = [j for j in kept if j < i]
            if not earlier or any(j > i for j in kept):
                raise VideoError(f"{path}: clip {name}: frame {i} could not be decoded")
            kept[i] = kept[max(earlier)]  # past the end of a stream shorter than its header: repeat the last
        frames.append(kept[i])
    out = np.stack(frames)
    for i in set(window.tolist()):
        users[i] -= 1
        if users[i] == 0:
            kept.pop(i, None)
    return out


class _Clock:
    """Frame numbers <-> stream timestamps for one video stream."""

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.fps = float(stream.average_rate or stream.guessed_rate or 30)
        self.base = stream.start_time or 0
        self.ticks = 1 / (self.fps * stream.time_base)

    def index(self, frame: av.VideoFrame) -> int | None:
        return round((frame.pts - self.base) / self.ticks) if frame.pts is not None else None

    def seek(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, frame: int) -> None:
        """To the keyframe at or before `frame` (aimed two frames early: a late landing would skip frames)."""
        target = self.base + int((frame - self.EARLY) * self.ticks)
        container.seek(max(target, self.base), stream=stream, backward=True, any_frame=False)

    EARLY = 2

    def keyframes(self, stream: av.video.stream.VideoStream) -> np.ndarray | None:
        """Frame numbers of the stream's keyframes, ascending, from the container's index (an mp4's sync samples,
        read without decoding); None when it has none. The index holds decode times: a keyframe's frame number is
        its time plus the stream's decoding delay (its start time less the first entry's time: B-frames)."""
        entries = stream.index_entries
        if len(entries) == 0:
            return None
        delay = max(0, (stream.start_time or 0) - entries[0].timestamp)
        times = np.array([e.timestamp for e in entries if e.is_keyframe], dtype=np.float64)
        if times.size == 0:
            return None
        return np.unique(np.round((times + delay - self.base) / self.ticks).astype(np.int64))

    def landing(self, keys: np.ndarray, frame: int) -> int:
        """The keyframe `seek(frame)` lands on (-1 before the first)."""
        at = int(np.searchsorted(keys, frame - self.EARLY, side="right")) - 1
        return int(keys[at]) if at >= 0 else -1


def rgb(frame: av.VideoFrame, reformatter: VideoReformatter) -> np.ndarray:
    """uint8 (H, W, 3) RGB. One reformatter per stream: `frame.to_ndarray(format=...)` builds a new swscale
    context for every frame, which made conversion, not decoding, the cost of a pass (8x slower at 64 px)."""
    return reformatter.reformat(frame, format="rgb24").to_ndarray()


def slowfast_input(
    frames: np.ndarray | torch.Tensor, cfg: SamplingConfig, rng: np.random.Generator | None = None
) -> list[torch.Tensor]:
    """[slow (3, T/alpha, S, S), fast (3, T, S, S)] float tensors from uint8 (T, H, W, 3) frames.

    Training augmentation (random short side, random crop, flip with p = 0.5) only when `rng` is given.
    """
    x = _to_float_cthw(frames)
    short = int(rng.integers(cfg.train_jitter[0], cfg.train_jitter[1] + 1)) if rng is not None else cfg.short_side
    x = resize_short_side(x, short)
    x = crop(x, cfg.crop_size, rng)
    if rng is not None and rng.random() < 0.5:
        x = x.flip(-1)
    x = normalize(x, cfg.mean, cfg.std)
    slow_idx = torch.linspace(0, x.shape[1] - 1, x.shape[1] // cfg.alpha).long()
    return [x.index_select(1, slow_idx), x]


def clip_input(
    frames: np.ndarray | torch.Tensor,
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    num_frames: int = 8,
) -> torch.Tensor:
    """(num_frames, 3, S, S) CLIP images: evenly spaced frames of the window (the slow pathway's by
    default), short side resized to `image_size` (bicubic), centre-cropped, CLIP-normalised."""
    x = _to_float_cthw(frames)
    idx = torch.linspace(0, x.shape[1] - 1, num_frames).long()
    x = resize_short_side(x.index_select(1, idx), image_size, mode="bicubic").clamp(0, 1)
    x = normalize(crop(x, image_size, None), mean, std)
    return x.permute(1, 0, 2, 3).contiguous()


def resize_short_side(x: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize (C, T, H, W) so that min(H, W) == size, keeping the aspect ratio."""
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    if new == (h, w):
        return x
    out = F.interpolate(x.transpose(0, 1), size=new, mode=mode, align_corners=False, antialias=True)
    return out.transpose(0, 1)


def crop(x: torch.Tensor, size: int, rng: np.random.Generator | None) -> torch.Tensor:
    """A size x size crop of (C, T, H, W): random position with `rng`, else the centre."""
    h, w = x.shape[-2:]
    if rng is not None:
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    else:
        top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Per-channel (x - mean) / std on (C, T, H, W)."""
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1, 1)
    return (x - m) / s


def _to_float_cthw(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(frames)
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {tuple(t.shape)} {t.dtype}")
    return t.permute(3, 0, 1, 2).float().div_(255)


def open_video(path: Path | str, name: str) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: clip {name}: video file is missing")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise VideoError(f"{path}: clip {name}: cannot open video ({_reason(e)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: clip {name}: no video stream")
    return container


def _decode(container: av.container.InputContainer, name: str):
    try:
        yield from container.decode(video=0)
    except av.error.FFmpegError as e:
        raise VideoError(f"{container.name}: clip {name}: corrupt video ({_reason(e)})") from None


def _decode_needed(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, name: str, clock: _Clock, wanted: set
):
    """Decoded frames, where a packet whose frame is not wanted is decoded only if other frames refer to it.

    The decoder skips a non-reference frame (most B-frames) it is told to skip (`skip_frame`, set per packet):
    the frames the window does not use between its stride-2 frames and before it after the keyframe. No frame
    another one is predicted from is skipped, so the wanted frames come out bit-identical (tests/test_video.py).
    """
    codec = stream.codec_context
    try:
        for packet in container.demux(stream):
            index = round((packet.pts - clock.base) / clock.ticks) if packet.pts is not None else None
            codec.skip_frame = "DEFAULT" if index is None or index in wanted else "NONREF"
            yield from packet.decode()
    except av.error.FFmpegError as e:
        raise VideoError(f"{container.name}: clip {name}: corrupt video ({_reason(e)})") from None
    finally:
        codec.skip_frame = "DEFAULT"


def _reason(e: Exception) -> str:
    """FFmpeg's own words (PyAV's strerror), without the errno and path PyAV wraps around them."""
    text = getattr(e, "strerror", None) or (str(e).splitlines()[0] if str(e) else type(e).__name__)
    return text if len(text) < 120 else text[:117] + "..."
