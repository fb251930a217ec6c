"""`ego4d-lta resize`: re-encode clips to 320p H.264 with a keyframe every 2 s, resumable and shardable.

The official pipeline trains on clips re-encoded to 320p; a 2 s keyframe interval makes random window
access 1.5-1.8x cheaper for 4-10 % more bytes (research/decode.md). Each output is written to a temporary
file and renamed, so an existing output is a finished one and a rerun skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ego4d_lta.base.durable import atomic_target
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.progress import progress_bar
from ego4d_lta.data.video import VideoError, open_video


@dataclass(frozen=True)
class ResizeConfig:
    short_side: int = 320
    keyframe_seconds: float = 2.0
    crf: int = 23
    preset: str = "medium"
    shard: tuple[int, int] = (0, 1)


@dataclass
class ResizeSummary:
    done: list[str]
    skipped: list[str]
    failed: dict[str, str]


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Even (width, height) with the short side at `short_side`; never upscaled."""
    scale = min(1.0, short_side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def resize_clip(src: Path, dst: Path, cfg: ResizeConfig) -> None:
    """One clip: video stream only (LTA uses no audio), same frame rate and timestamps."""
    with open_video(src, src.stem) as container, atomic_target(dst) as tmp:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        width, height = output_size(stream.width, stream.height, cfg.short_side)
        try:
            with av.open(str(tmp), "w", format="mp4") as out:
                enc = out.add_stream("libx264", rate=rate)
                enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
                gop = max(1, round(float(rate) * cfg.keyframe_seconds))
                enc.codec_context.options = {"crf": str(cfg.crf), "preset": cfg.preset, "g": str(gop)}
                for frame in container.decode(video=0):
                    small = frame.reformat(width=width, height=height, format="yuv420p")
                    for packet in enc.encode(small):
                        out.mux(packet)
                for packet in enc.encode():
                    out.mux(packet)
        except av.error.FFmpegError as e:
            raise VideoError(f"{src}: clip {src.stem}: corrupt video ({str(e).splitlines()[0][:100]})") from None


def resize_all(src_dir: Path, dst_dir: Path, cfg: ResizeConfig, progress: bool = False) -> ResizeSummary:
    """Every `*.mp4` of `src_dir` in this shard (sorted names, round-robin), skipping finished outputs.

    `progress`: a bar on stderr in clips/s with an ETA (whole lines in a log file).
    """
    if not src_dir.is_dir():
        raise UserError(f"--src {src_dir}: folder not found")
    if src_dir.resolve() == dst_dir.resolve():
        raise UserError(f"--dst {dst_dir}: must differ from --src (outputs never overwrite inputs)")
    i, n = cfg.shard
    if not 0 <= i < n:
        raise UserError(f"--shard {i}/{n}: needs 0 <= i < n")
    dst_dir.mkdir(parents=True, exist_ok=True)
    clips = sorted(src_dir.glob("*.mp4"))[i::n]
    summary = ResizeSummary([], [], {})
    with progress_bar(len(clips), f"resize {i}/{n}", "clip", disable=not progress) as bar:
        for src in clips:
            dst = dst_dir / src.name
            if dst.exists():
                summary.skipped.append(src.stem)
            else:
                try:
                    resize_clip(src, dst, cfg)
                    summary.done.append(src.stem)
                except VideoError as e:
                    summary.failed[src.stem] = str(e)
            bar.set_postfix(failed=len(summary.failed), refresh=False)
            bar.update(1)
    return summary
