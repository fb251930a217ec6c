"""What `ego4d-lta resize` costs: CPU seconds per hour of source video, against decoding the source alone.

Re-encoding every clip to 320p is the CPU step a user waits on before any GPU work, so the README's cost table
needs its rate. A synthetic source clip at an Ego4D-like resolution (default
1920x1080, 30 fps, textured panning content at a high bitrate) goes through `stages.resize.resize_clip`, once
per x264 preset; the floor is a bare PyAV decode of the same clip (the one part no setting can skip). CPU time
is `process_time` (all threads), so a loaded machine inflates wall time, not the figures.

    python benchmarks/bench_resize.py [--size 1920x1080] [--seconds 20] [--presets medium,veryfast]

Last line: `ratio=<decode-only CPU / resize CPU>` for the first preset (the share of the work that is decoding).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).parent))
from bench_decode import cpu, write_clip

from ego4d_lta.stages.resize import ResizeConfig, resize_clip


def decode_only(path: Path) -> None:
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"  # as resize_clip decodes
        for _ in c.decode(video=0):
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1920x1080", help="source WIDTHxHEIGHT")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--presets", default="medium,veryfast", help="x264 presets to time (the first is resize's default)")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = args.seconds * 30
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "source.mp4"
        write_clip(src, args.seconds, width, height, crf=18)
        mbps = src.stat().st_size * 8 / args.seconds / 1e6
        print(f"source: {width}x{height}, 30 fps, {args.seconds} s, {mbps:.1f} Mbit/s")
        decode_only(src)  # warm the page cache and the codec
        floor = cpu(lambda: decode_only(src))
        print(f"decode only        {frames / floor:7.1f} frames/s per core   {floor / args.seconds:6.2f} "
              "core-hours per hour of video")  # fmt: skip
        first = None
        for preset in args.presets.split(","):
            dst = Path(tmp) / f"{preset}.mp4"
            spent = cpu(lambda d=dst, p=preset: resize_clip(src, d, ResizeConfig(preset=p)))
            first = first or spent
            out_mbps = dst.stat().st_size * 8 / args.seconds / 1e6
            print(f"resize {preset:<11} {frames / spent:7.1f} frames/s per core   {spent / args.seconds:6.2f} "
                  f"core-hours per hour of video   output {out_mbps:.2f} Mbit/s")  # fmt: skip
    print(f"ratio={floor / first:.3f}")


if __name__ == "__main__":
    main()
