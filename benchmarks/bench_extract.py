"""End-to-end feature extraction speed against the encoders' bare throughput.

Builds a one-clip dataset (426x320, 30 fps, a keyframe every 2 s, one segment every 4 s), saves randomly
initialised encoders of the chosen preset to files (`full` = SlowFast R101 8x8 + CLIP ViT-B-16 at 224 px, the
real shapes), then times:
  extract   `ego4d_lta.stages.extract.extract` over every segment (decode in DataLoader workers, transforms,
            both encoders, writes to the memory-mapped cache), segments/s
  bare      the same encoders on ready-made input batches of the same size, no decoding: segments/s,
            SlowFast clips/s and CLIP images/s
On a GPU both run in bf16 autocast. The last line is `ratio=<extract / bare>` (target on a GPU: >= 0.7).

    python benchmarks/bench_extract.py [--encoders full|tiny] [--segments 12] [--workers 2] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ego4d_lta.challenge.rules import SPLIT_FILES, TAXONOMY_FILE
from ego4d_lta.data.feature_cache import FeatureCache
from ego4d_lta.models.clip import random_clip
from ego4d_lta.models.clip import save_weights as save_clip
from ego4d_lta.models.slowfast import SLOWFAST_PRESETS, SlowFastEncoder, freeze, save_weights
from ego4d_lta.runtime.distributed import WorldInfo, device_for
from ego4d_lta.runtime.encoder_config import ENCODER_PRESETS, load_encoders
from ego4d_lta.stages.extract import ExtractConfig, extract

sys.path.insert(0, str(Path(__file__).parent))
from bench_decode import write_clip


def make_dataset(
    root: Path,
    segments: int,
    spacing: float = 4.0,
    clips: int = 1,
    split: str = "val",
    size: tuple[int, int] = (426, 320),
) -> None:
    """`clips` copies of one clip (encoded once), each with `segments` annotated segments `spacing` s apart."""
    seconds = int(segments * spacing + 4)
    (root / "clips").mkdir(parents=True)
    write_clip(root / "clips" / "bench.mp4", seconds, *size)
    uids = ["bench"] + [f"bench{c:03d}" for c in range(1, clips)]
    for uid in uids[1:]:
        shutil.copyfile(root / "clips" / "bench.mp4", root / "clips" / f"{uid}.mp4")
    ann = root / "annotations"
    ann.mkdir()
    taxonomy = {"verbs": [f"verb_{i}" for i in range(115)], "nouns": [f"noun_{i}" for i in range(478)]}
    (ann / TAXONOMY_FILE).write_text(json.dumps(taxonomy))
    entries = [
        {
            "clip_uid": uid,
            "action_idx": i,
            "action_clip_start_sec": 1 + i * spacing,
            "action_clip_end_sec": 1 + i * spacing + 3.0,
            "verb_label": (i + c) % 115,
            "noun_label": (3 * i + c) % 478,
        }
        for c, uid in enumerate(uids)
        for i in range(segments)
    ]
    (ann / SPLIT_FILES[split]).write_text(json.dumps({"clips": entries}))


def bare_throughput(
    slowfast,
    clip,
    cfg: ExtractConfig,
    device: torch.device,
    batches: int,
    parts: tuple[str, ...] = ("slowfast", "clip"),
) -> tuple[float, float]:
    """(segments/s of the encoders in `parts` together, seconds per batch) on fixed inputs."""
    s = cfg.encoders.sampling
    b = cfg.batch_size
    slow = torch.randn(b, 3, s.num_frames // s.alpha, s.crop_size, s.crop_size, device=device)
    fast = torch.randn(b, 3, s.num_frames, s.crop_size, s.crop_size, device=device)
    images = torch.randn(b, cfg.encoders.clip_frames, 3, clip.image_size, clip.image_size, device=device)

    def step() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if "slowfast" in parts:
                slowfast([slow, fast])
            if "clip" in parts:
                clip.encode_frames(images)

    step()
    sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / batches
    return b / seconds, seconds


def check_cache(split_dir: Path, segments: int, cfg: ExtractConfig) -> None:
    """The cache holds every segment with the encoders' real shapes, finite, CLIP rows of unit norm."""
    cache = FeatureCache.open(split_dir)
    sf, cl = cache.gather(np.arange(len(cache)), "slowfast"), cache.gather(np.arange(len(cache)), "clip")
    clip_dim = cache.manifest.record.clip.dim
    assert sf.shape == (segments, SLOWFAST_PRESETS[cfg.encoders.slowfast].feature_dim), sf.shape
    assert cl.shape == (segments, cfg.encoders.clip_frames, clip_dim), cl.shape
    assert np.isfinite(sf).all() and np.isfinite(cl).all() and cache.index["ok"].all()
    assert np.allclose(np.linalg.norm(cl, axis=-1), 1, atol=5e-3)
    assert len({sf[i].tobytes() for i in range(segments)}) == segments, "every segment has its own features"
    print(f"cache ok: slowfast {sf.shape}, clip {cl.shape}, float16 on disk, {split_dir}")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoders", choices=sorted(ENCODER_PRESETS), default="full")
    ap.add_argument("--segments", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    enc = ENCODER_PRESETS[args.encoders]
    device = device_for(WorldInfo(), args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_dataset(root / "data", args.segments)
        torch.manual_seed(0)
        s = enc.sampling
        save_weights(SlowFastEncoder(SLOWFAST_PRESETS[enc.slowfast], s.num_frames, s.crop_size), root / "sf.pt")
        save_clip(random_clip(enc.clip_model), root / "clip.pt")
        cfg = ExtractConfig(
            data_dir=root / "data",
            features_dir=root / "features",
            split="val",
            encoders=enc,
            slowfast_weights=root / "sf.pt",
            clip_weights=root / "clip.pt",
            batch_size=args.batch_size,
            workers=args.workers,
            device=args.device,
            progress=False,
        )
        summary = extract(cfg)
        check_cache(summary.split_dir, args.segments, cfg)
        slowfast, clip, _ = load_encoders(enc, cfg.slowfast_weights, cfg.clip_weights)
        slowfast, clip = freeze(slowfast).to(device), clip.to(device)
        batches = max(1, args.segments // args.batch_size)
        bare, per_batch = bare_throughput(slowfast, clip, cfg, device, batches)
    frames = enc.clip_frames
    print(
        f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"encoders: {enc.tag}, {s.crop_size} px, batch {args.batch_size}, {args.workers} decode workers")
    rate = summary.segments_per_second
    print(f"extract   {rate:8.2f} segments/s ({summary.done_now} segments, {summary.seconds:.1f} s)")
    print(
        f"bare      {bare:8.2f} segments/s  = SlowFast {bare:.2f} clips/s + CLIP {bare * frames:.1f} img/s "
        f"({per_batch * 1000:.0f} ms per batch)"
    )
    print(f"ratio={summary.segments_per_second / bare:.3f}")


if __name__ == "__main__":
    main()
