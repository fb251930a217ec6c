"""How fast `import-features` turns Ego4D's per-video feature files into the cache, against the floor.

Writes a dataset without videos but with an Ego4D-style feature download (one float32 (T, 2304) `.pt` per
canonical video, several clips per video), then times on the train split (best of several runs, files in the page
cache for both, the previous run's cache deleted untimed). Sizes:
  ego4d    (default) Ego4D-like proportions: 16 canonical videos of 23 minutes (Ego4D's mean: ~3,670 hours in
           ~9,600 videos), two 8-minute LTA clips in each, about six actions a minute (2-8 s each, 0-8 s apart):
           ~1,700 segments, ~380 MB of rows, most of a video's rows in no segment. Per-video and per-segment
           costs dominate; the one-off start (annotations, manifest) is a few percent.
  small    `synth --size small --features-like-ego4d`: 2,909 segments in 23 videos (166 MB), clips of 2-3
           minutes packed with back-to-back 3 s actions, so nearly every row is pooled: a denser, smaller case
           where the annotation file and the cache writes weigh more than on real data.

  bare     per video: torch.load + per segment the mean of its rows (rows worked out beforehand, not timed)
  import   the whole `import_features` call into a fresh cache: annotations, row arithmetic, mmap reads, the
           float16 memmap writes, the per-clip fsynced progress lines, the manifest
The last line is `ratio=<import segments/s / bare segments/s>` (target >= 0.8).

    python benchmarks/bench_import.py [--size ego4d|small|tiny] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import torch

from ego4d_lta.base.jsonio import write_json_atomic
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.rules import SPLIT_FILES
from ego4d_lta.data.feature_sets import FPS
from ego4d_lta.data.released_features import pool_rows, row_count, row_windows, segment_span
from ego4d_lta.data.synthetic_render import NOUNS, VERBS
from ego4d_lta.stages.import_features import ImportConfig, import_features
from ego4d_lta.stages.synth import SynthConfig, annotation_entries, generate
from ego4d_lta.stages.synth.features import SET, download_dir
from ego4d_lta.stages.synth.records import ClipPlace

EGO4D_LIKE = {"videos": 16, "video_min": 23.0, "clips": 2, "clip_min": 8.0, "action_s": (2.0, 8.0), "gap_s": (0.0, 8.0)}


def write_ego4d_like(data: Path, seed: int = 0) -> None:
    """Replace the train split and the download of a tiny synthetic dataset by EGO4D_LIKE's layout (random rows:
    their values do not matter for speed)."""
    rng = np.random.default_rng(seed)
    folder = download_dir(data) / "v2" / SET.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    p, entries = EGO4D_LIKE, []
    video_frames, clip_frames = round(p["video_min"] * 60 * FPS), round(p["clip_min"] * 60 * FPS)
    for v in range(p["videos"]):
        video = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        free = video_frames - p["clips"] * clip_frames  # the clips at random non-overlapping places
        offsets = np.sort(rng.integers(0, free, p["clips"])) + np.arange(p["clips"]) * clip_frames
        for c, offset in enumerate(offsets):
            times, t = [], float(rng.uniform(*p["gap_s"]))
            while True:
                end = t + float(rng.uniform(*p["action_s"]))
                if end > clip_frames / FPS - 0.5:
                    break
                times.append((round(t, 3), round(end, 3)))
                t = end + float(rng.uniform(*p["gap_s"]))
            actions = [(int(rng.integers(len(VERBS))), int(rng.integers(len(NOUNS)))) for _ in times]
            place = ClipPlace(video, int(offset), clip_frames)
            uid = str(uuid.UUID(bytes=rng.bytes(16), version=4))
            entries += annotation_entries(uid, actions, times, True, place, v * p["clips"] + c)
        rows = rng.standard_normal((row_count(video_frames, SET.window, SET.stride), SET.dim), dtype=np.float32)
        torch.save(torch.from_numpy(rows), folder / f"{video}.pt")
    doc = {"version": "bench-ego4d-like", "split": "train", "clips": entries}
    write_json_atomic(data / "annotations" / SPLIT_FILES["train"], doc)


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


def best_of(repeat: int, fn, setup=lambda: None) -> tuple[float, float]:
    """Best wall and best CPU seconds of `fn` (`setup` before each run, untimed)."""
    walls, cpus = [], []
    for _ in range(repeat):
        setup()
        started, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="ego4d", choices=["ego4d", "small", "tiny"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        synth_size = "tiny" if args.size == "ego4d" else args.size
        generate(data, SynthConfig(size=synth_size, videos=False, features_like_ego4d=True), workers=1)
        if args.size == "ego4d":
            write_ego4d_like(data)
        spans = spans_per_video(data)
        segments = sum(len(s) for s in spans.values())
        size = sum(p.stat().st_size for p in spans) / 1e6
        print(f"train: {segments} segments in {len(spans)} videos ({size:.0f} MB of float32 rows)")
        bare(spans)  # page cache warm for both

        def run_import() -> None:
            cfg = ImportConfig(data, data / "features", "train", download_dir(data), progress=False)
            assert import_features(cfg).done_now == segments

        t_bare, cpu_bare = best_of(args.repeat, lambda: bare(spans))
        t_import, cpu_import = best_of(args.repeat, run_import, lambda: shutil.rmtree(data / "features", True))
        for name, wall, cpu in (("bare  ", t_bare, cpu_bare), ("import", t_import, cpu_import)):
            print(f"{name}  {segments / wall:10.0f} segments/s ({wall * 1e3:.0f} ms, CPU {cpu * 1e3:.0f} ms)")
        print(f"ratio={t_bare / t_import:.3f}")


if __name__ == "__main__":
    main()
