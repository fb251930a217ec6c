"""Training throughput: windows/s from the feature cache against end to end from video, same variant.

Cache path: memory-mapped gathers of 8 segments per window + one optimizer step of the forecaster (what
`ego4d-lta train` does for frozen encoders). Video path: every window's 8 segments decoded (PyAV), SlowFast
(trainable) and CLIP (frozen) run on them, then the same step (`model.finetune_slowfast=true`).

    python benchmarks/bench_train.py --data demo/data                  # tiny config on the demo's caches
    python benchmarks/bench_train.py --encoders full --device cuda --batch-size 64 --skip-video
        # full-size slowfast_clip on a GPU (bf16) from a cache of random features in the real format

Without --data the tiny demo dataset and caches are made first (`ego4d-lta demo`'s steps, minutes on a CPU).
Prints `cache_windows_per_s=...`, `video_windows_per_s=...` and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ego4d_lta.config import load_config
from ego4d_lta.data.feature_cache import ShardWriter
from ego4d_lta.data.feature_record import CacheManifest, ClipFeatures, FeatureRecord, SlowFastFeatures
from ego4d_lta.data.window_datasets import EpochBatches
from ego4d_lta.models.forecaster import ForecastingModel, build_forecaster
from ego4d_lta.runtime.distributed import WorldInfo, device_for
from ego4d_lta.runtime.encoder_config import encoder_preset
from ego4d_lta.runtime.inference import autocast, to_device
from ego4d_lta.runtime.inputs import RunInputs, feature_dims
from ego4d_lta.runtime.training import make_optimizer, training_loss


def time_steps(model, dataset, cfg, device, steps: int, warmup: int = 3) -> float:
    """Windows/s over `steps` optimizer steps after `warmup` untimed ones."""
    usable = np.flatnonzero(dataset.available)
    batches = EpochBatches(usable, cfg.train.batch_size, seed=0)
    if len(batches) == 0:
        raise SystemExit(f"{len(usable)} usable windows: fewer than one batch of {cfg.train.batch_size}")
    loader = DataLoader(dataset, sampler=batches, batch_size=None, num_workers=cfg.data.workers)
    optimizer = make_optimizer(model, cfg, cfg.optim.lr)
    model.train()
    done, started = 0, None
    while done < steps + warmup:
        for batch in loader:
            if done == warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
            batch = to_device(batch, device)
            with autocast(device):
                loss = training_loss(model(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps + warmup:
                break
        batches.epoch += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.train.batch_size / (time.perf_counter() - started)


def random_cache(root: Path, cfg, windows: int, seed: int = 0) -> None:
    """A train cache of random features with the encoders' real dimensions, in the real format."""
    from ego4d_lta.base.hashing import file_digest
    from ego4d_lta.base.jsonio import write_json_atomic
    from ego4d_lta.challenge.rules import SPLIT_FILES, TAXONOMY_FILE

    clips, per_clip = max(1, windows // 20), 48
    rng = np.random.default_rng(seed)
    entries = [
        {
            "clip_uid": f"clip{c:04d}",
            "action_idx": i,
            "action_clip_start_sec": 2.0 * i,
            "action_clip_end_sec": 2.0 * i + 2,
            "verb_label": int(rng.integers(115)),
            "noun_label": int(rng.integers(478)),
        }
        for c in range(clips)
        for i in range(per_clip)
    ]
    ann = root / "annotations"
    write_json_atomic(ann / SPLIT_FILES["train"], {"clips": entries})
    write_json_atomic(
        ann / TAXONOMY_FILE, {"verbs": [f"v{i}" for i in range(115)], "nouns": [f"n{i}" for i in range(478)]}
    )
    rows = pd.DataFrame(
        {
            "clip_uid": [e["clip_uid"] for e in entries],
            "action_idx": [e["action_idx"] for e in entries],
            "view": 0,
            "start_sec": [e["action_clip_start_sec"] for e in entries],
            "end_sec": [e["action_clip_end_sec"] for e in entries],
        }
    )
    full = cfg.data.encoders == "full"
    sf_dim, clip_dim = (2304, 512) if full else (288, 64)
    record = FeatureRecord(
        SlowFastFeatures(preset="r101" if full else "tiny", weights_sha256="random", dim=sf_dim),
        ClipFeatures(model="random", weights_sha256="random", pretrained=None, dim=clip_dim, frames=8, image_size=224),
        sampling={},
    )
    manifest = CacheManifest(record, split="train", annotations_sha256=file_digest(ann / SPLIT_FILES["train"]))
    split_dir = root / "features" / encoder_preset(cfg.data.encoders).tag / "train"
    writer = ShardWriter.open(split_dir, manifest, (0, 1), rows, {"slowfast": (sf_dim,), "clip": (8, clip_dim)})
    for uid, group in rows.groupby("clip_uid"):
        n = len(group)
        clip = rng.normal(size=(n, 8, clip_dim)).astype(np.float16)
        feats = {"slowfast": rng.normal(size=(n, sf_dim)).astype(np.float16), "clip": clip}
        writer.write(group.index.to_numpy(), feats)
        writer.clip_finished(uid)
    writer.finish(limited=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None, help="dataset root with train caches (default: make the demo's)")
    p.add_argument("--encoders", choices=["tiny", "full"], default="tiny")
    p.add_argument("--variant", default="slowfast_clip")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--video-steps", type=int, default=3)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (the video path wants several)")
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-video", action="store_true")
    args = p.parse_args()

    device = device_for(WorldInfo(), args.device)
    torch.set_flush_denormal(True)  # as `ego4d-lta train` does: denormal Adam moments are ~100x slower on a CPU
    sets = [f'model.variant="{args.variant}"', f"train.batch_size={args.batch_size}", f"data.workers={args.workers}"]
    cfg = load_config("tiny" if args.encoders == "tiny" else args.variant, sets)
    cfg.data.encoders = args.encoders
    tmp = tempfile.TemporaryDirectory()
    data = args.data
    weights = None
    if data is None and args.encoders == "full":
        data = Path(tmp.name) / "data"
        random_cache(data, cfg, windows=max(2000, args.batch_size * (args.steps + 3)))
        args.skip_video = True
    elif data is None:
        from ego4d_lta.workflow.demo import DEMO_SYNTH, demo_weights, ensure_dataset, extract_all

        data = Path(tmp.name) / "data"
        ensure_dataset(data, DEMO_SYNTH)
        weights = demo_weights(Path(tmp.name) / "weights")
        extract_all(data, *weights)
    cfg.data.data_dir = str(data)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cfg.data.encoders} encoders, "
        f"{cfg.model.variant}, batch {cfg.train.batch_size}",
        flush=True,
    )

    sources = RunInputs(cfg)
    inputs = sources.open("train", training=True)
    tax = inputs.taxonomy
    torch.manual_seed(0)
    model = ForecastingModel(
        build_forecaster(cfg.model, feature_dims(sources.record), tax.num_verbs, tax.num_nouns)
    ).to(device)
    cache_rate = time_steps(model, inputs.dataset, cfg, device, args.steps)
    print(f"cache_windows_per_s={cache_rate:.1f}", flush=True)
    if args.skip_video:
        return
    if weights is None:
        root = Path(args.data).parent
        weights = (root / "weights" / "slowfast_tiny.pt", root / "weights" / "clip_tiny.pt")
    cfg.model.finetune_slowfast = True
    cfg.data.slowfast_weights, cfg.data.clip_weights = str(weights[0]), str(weights[1])
    video = RunInputs(cfg)
    vid = video.open("train", training=True)
    torch.manual_seed(0)
    forecaster = build_forecaster(cfg.model, feature_dims(video.record), tax.num_verbs, tax.num_nouns, video.bank)
    model = ForecastingModel(forecaster, video.encoders).to(device)
    video_rate = time_steps(model, vid.dataset, cfg, device, args.video_steps, warmup=1)
    print(f"video_windows_per_s={video_rate:.2f}")
    print(f"ratio={cache_rate / video_rate:.0f}x (cache over end-to-end video)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
