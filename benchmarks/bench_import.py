"""How fast `import-features` turns Ego4D's per-video feature files into the cache, against the floor.

Writes a synthetic dataset without videos but with an Ego4D-style feature download (`--features-like-ego4d`:
one float32 (T, 2304) `.pt` per canonical video, several clips per video), then times on the train split
(best of several runs, files in the page cache for both):
  bare     per video: torch.load + per segment the mean of its rows (rows worked out beforehand, not timed)
  import   the whole `import_features` call into a fresh cache: annotations, row arithmetic, mmap reads, the
           float16 memmap writes, the per-clip fsynced progress lines, the manifest
The last line is `ratio=<import segments/s / bare segments/s>` (target >= 0.8).

    python benchmarks/bench_import.py [--size small] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.data.released_features import pool_rows, row_windows, segment_span
from ego4d_lta.stages.import_features import ImportConfig, import_features
from ego4d_lta.stages.synth import SynthConfig, generate
from ego4d_lta.stages.synth.features import SET, download_dir


def spans_per_video(data: Path) -> dict[Path, list]:
    """Each video file and the row spans of its train segments (what the bare loop pools)."""
    table, _ = load_annotations(data / "annotations", "train")
    folder = download_dir(data) / "v2" / SET.name
    out = {}
    for video, rows in table.groupby("video_uid"):
        path = folder / f"{video}.pt"
        count = len(torch.load(path, weights_only=True, mmap=True))
        starts, ends = row_windows(count)
        parent = rows.clip_parent_start_frame
        frames = zip(parent + rows.start_frame, parent + rows.end_frame, strict=True)
        out[path] = [segment_span(int(a), int(b), starts, ends) for a, b in frames]
    return out


def bare(spans: dict[Path, list]) -> int:
    done = 0
    for path, segments in spans.items():
        x = torch.load(path, weights_only=True).numpy()
        for span in segments:
            pool_rows(x, span)
            done += 1
    return done


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["tiny", "small"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(data, SynthConfig(size=args.size, videos=False, features_like_ego4d=True), workers=1)
        spans = spans_per_video(data)
        segments = sum(len(s) for s in spans.values())
        size = sum(p.stat().st_size for p in spans) / 1e6
        print(f"train: {segments} segments in {len(spans)} videos ({size:.0f} MB of float32 rows)")
        bare(spans)  # page cache warm for both

        def run_import() -> None:
            shutil.rmtree(data / "features", ignore_errors=True)
            cfg = ImportConfig(data, data / "features", "train", download_dir(data), progress=False)
            assert import_features(cfg).done_now == segments

        t_bare = best_of(args.repeat, lambda: bare(spans))
        t_import = best_of(args.repeat, run_import)
        print(f"bare    {segments / t_bare:10.0f} segments/s ({t_bare * 1e3:.0f} ms)")
        print(f"import  {segments / t_import:10.0f} segments/s ({t_import * 1e3:.0f} ms)")
        print(f"ratio={t_bare / t_import:.3f}")


if __name__ == "__main__":
    main()
