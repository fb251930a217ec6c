"""Every GPU figure a cluster user plans by, in one run: one JSON object on stdout (issue 15).

On one GPU, installing nothing (the project's .venv, or a wheelhouse's folder) and downloading nothing, it makes
its own data at the real shapes (426x320 30-fps clips as `ego4d-lta resize` writes them; random-init SlowFast R101
8x8 and CLIP ViT-B/16 saved to files; a feature cache of random features in the real format) and times, with the
project's own code paths and the other benchmarks' helpers:
  encoders     SlowFast clips/s and CLIP images/s bare, and both together (segments/s), bf16 autocast
               (bench_extract.bare_throughput)
  extract      `stages.extract.extract` end to end (decode in `--workers` DataLoader workers, transforms, both encoders,
               the memory-mapped cache), segments/s, and its ratio to the bare encoders (target >= 0.7)
  decode       one core: the extraction pass (`stream_windows`) in segments/s, and the frames a sequential PyAV
               decode gets through (bench_decode.bare_pass), per CPU second
  train_cache  `slowfast_clip` optimizer steps from the cache at batch 64 and 512 (bench_train.time_steps; target
               >= 5,000 windows/s at 64)
  train_video  the end-to-end path (`model.finetune_slowfast`: decode, trainable SlowFast, frozen CLIP, same step)
  predict      `runtime.inference.predict_windows` (what `predict` runs) on the cache, windows/s
each with the peak GPU memory it took (GiB; null on a CPU), and from them the projected wall time of the whole
pipeline (extract every LTA segment, `--epochs` epochs, predict test) on one node of `--gpus` GPUs, with the
segment counts it assumes. Progress goes to stderr. `--out FILE` is rewritten after every stage; a stage that
fails is recorded under "errors" (exit 1) while the others still run. `--quick --device cpu` runs the same paths
at tiny shapes (tiny encoders, 86x64 clips, small batches; ~1 min of CPU): tests/test_gpu_check.py runs it.
`--smoke --device cpu` runs the GPU run's full shapes at the fewest counts (13 min of a loaded 2-core CPU; its
end-to-end stage needs over 20 GB of memory): the pre-flight before a GPU slot. On a GPU node without network,
scripts/wheelhouse.py brings what it lacks (docs/slurm.md). Not yet run on a GPU.

    python benchmarks/gpu_check.py [--device cuda] [--workers N] [--out gpu_check.json]
    python benchmarks/gpu_check.py --quick --device cpu
    python benchmarks/gpu_check.py --smoke --device cpu
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_decode import bare_pass, cpu
from bench_extract import bare_throughput, make_dataset
from bench_train import random_cache, time_steps

from ego4d_lta.config import load_config
from ego4d_lta.data.label_windows import action_pairs
from ego4d_lta.data.video import frame_indices, probe, stream_windows, window_start
from ego4d_lta.models.clip import random_clip
from ego4d_lta.models.clip import save_weights as save_clip
from ego4d_lta.models.forecaster import ForecastingModel, build_forecaster
from ego4d_lta.models.slowfast import SLOWFAST_PRESETS, SlowFastEncoder, freeze, save_weights
from ego4d_lta.runtime.distributed import WorldInfo, device_for
from ego4d_lta.runtime.encoder_config import ENCODER_PRESETS, load_encoders
from ego4d_lta.runtime.inference import predict_windows
from ego4d_lta.runtime.inputs import RunInputs, feature_dims
from ego4d_lta.stages.extract import ExtractConfig, extract

ASSUMED_SEGMENTS = {"train": 63_956, "val": 33_149, "test": 33_149}
"""Ego4D LTA v2 (the challenge's version), one segment per action of fho_lta_{train,val}.json: train 63,956 as printed
from the real file by durandtibo/arctix (docs/docs/datasets/ego4d.md, ec32972) and by a second, unattributed
write-up that gives val 33,149 (the two add up to its 97,105). The test count is not published: assumed as large
as val. Windows ~ segments (each clip has 27 fewer windows than actions: an upper bound). For scale, v1 had
23,610 train and 15,587 val actions (facebookresearch/EgocentricUserAdaptation's notebooks)."""


@dataclass(frozen=True)
class Sizes:
    encoders: str
    frame: tuple[int, int]
    clips: int
    segments: int
    """Segments per clip (>= 28: a training window needs 8 observed and 20 future)."""
    extract_batch: int
    bare_batches: int
    cache_windows: int
    cache_batches: tuple[int, int]
    cache_steps: int
    video_batch: int
    video_steps: int


FULL = Sizes("full", (426, 320), 32, 36, 32, 10, 18_000, (64, 512), 30, 2, 4)
"""End to end at 2 windows a step (16 R101 clips): one window trained in fp32 on a CPU took over 20 GB."""
QUICK = Sizes("tiny", (86, 64), 2, 29, 4, 1, 120, (8, 32), 3, 1, 1)
SMOKE = Sizes("full", (426, 320), 1, 29, 4, 1, 1_200, (64, 512), 1, 1, 1)
"""The GPU run's shapes (R101, ViT-B/16, 426x320, batch 64 and 512) at the fewest counts: a CPU checks the full-size
paths with it before a short GPU slot is spent on them."""


def peak_gib(device: torch.device, fn: Callable[[], object]) -> tuple[object, float | None]:
    """fn()'s result and the peak GPU memory it allocated (GiB; None off a GPU)."""
    if device.type != "cuda":
        return fn(), None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = fn()
    torch.cuda.synchronize(device)
    return out, round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def save_encoders(root: Path, encoders: str) -> tuple[Path, Path]:
    """Random-init weight files of the preset (as bench_extract does): extraction loads them like real ones."""
    enc = ENCODER_PRESETS[encoders]
    torch.manual_seed(0)
    s = enc.sampling
    sf, cl = root / "slowfast.pt", root / "clip.pt"
    save_weights(SlowFastEncoder(SLOWFAST_PRESETS[enc.slowfast], s.num_frames, s.crop_size), sf)
    save_clip(random_clip(enc.clip_model), cl)
    return sf, cl


def check(args: argparse.Namespace) -> dict:
    sizes = QUICK if args.quick else SMOKE if args.smoke else FULL
    device = device_for(WorldInfo(), args.device)
    torch.set_flush_denormal(True)  # as `ego4d-lta train` does
    workers = args.workers if args.workers is not None else (1 if args.quick else max(1, (os.cpu_count() or 2) - 2))
    started = time.perf_counter()
    out: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu_cores": os.cpu_count(),
        "host": platform.node(),
        "torch": torch.__version__,
        "quick": args.quick,
        "smoke": args.smoke,
        "encoders": sizes.encoders,
        "precision": "bf16" if device.type == "cuda" else "fp32",
    }
    stage = Stages(out, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sf_weights, clip_weights = save_encoders(root, sizes.encoders)
        data = root / "video"
        log(f"writing {sizes.clips} clips of {sizes.segments} segments at {sizes.frame[0]}x{sizes.frame[1]}")
        make_dataset(data, sizes.segments, clips=sizes.clips, split="train", size=sizes.frame)
        ecfg = ExtractConfig(
            data_dir=data,
            features_dir=root / "features",
            split="train",
            encoders=ENCODER_PRESETS[sizes.encoders],
            slowfast_weights=sf_weights,
            clip_weights=clip_weights,
            batch_size=sizes.extract_batch,
            workers=workers,
            device=args.device,
            progress=False,
        )
        cache = root / "cache"
        stage("encoders, bare", lambda: bare_encoders(ecfg, sizes, device))
        stage(f"extraction, {workers} decode workers", lambda: extract_rate(ecfg, sizes, device, out))
        stage("decode, one core", lambda: decode_per_core(data / "clips" / "bench.mp4", sizes, ecfg))
        stage("a cache of random features", lambda: random_cache(cache, train_config(sizes, 64), sizes.cache_windows))
        for name, batch in zip(("train_cache_b64", "train_cache_b512"), sizes.cache_batches, strict=True):
            stage(
                f"training from the cache, batch {batch}",
                lambda n=name, b=batch: train_cache(cache, sizes, n, b, device),
            )
        stage("predict", lambda: predict_rate(cache, sizes, device))
        stage(
            "training end to end from video",
            lambda: train_video(data, sizes, sf_weights, clip_weights, workers, device),
        )
    stage("projection", lambda: {"projection": project(out, args.gpus, args.epochs)})
    out["seconds"] = round(time.perf_counter() - started, 1)
    stage.save()
    return out


class Stages:
    """Runs the check's stages one after another, adding each one's figures to `out` and writing `out` to the --out
    file after each (a GPU slot is short: a stage that fails or a run cut off at its time limit must not cost the
    figures already taken). A failed stage is logged with its traceback and recorded under "errors"."""

    def __init__(self, out: dict, path: Path | None) -> None:
        self.out, self.path = out, path

    def __call__(self, name: str, fn: Callable[[], dict | None]) -> None:
        log(name)
        failed = False
        try:
            self.out.update(fn() or {})
        except Exception as e:  # recorded, and the exit status says so
            traceback.print_exc(file=sys.stderr)
            self.out.setdefault("errors", {})[name] = f"{type(e).__name__}: {e}"[:500]
            failed = True
        if failed:  # out of the except block, whose traceback held the stage's tensors
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # what an out-of-memory stage held goes back for the next one
        self.save()

    def save(self) -> None:
        if self.path is not None:
            part = self.path.with_name(self.path.name + ".part")
            part.write_text(json.dumps(self.out, indent=1) + "\n")
            part.replace(self.path)


def extract_rate(ecfg: ExtractConfig, sizes: Sizes, device: torch.device, out: dict) -> dict:
    """`stages.extract.extract` end to end, and its rate over the bare encoders' (measured just before)."""
    summary, mem = peak_gib(device, lambda: extract(ecfg))
    free(device)
    rate, bare = summary.segments_per_second, out.get("encoders_segments_per_s")  # None if that stage failed
    return {
        "extract_segments": summary.done_now,
        "extract_workers": ecfg.workers,
        "extract_batch": sizes.extract_batch,
        "extract_segments_per_s": round(rate, 2),
        "extract_vs_bare": round(rate / bare, 3) if bare else None,
        "extract_peak_gib": mem,
    }


def bare_encoders(ecfg: ExtractConfig, sizes: Sizes, device: torch.device) -> dict:
    """SlowFast alone, CLIP alone, both: bench_extract's bare loop on ready-made batches of the extraction's size."""
    slowfast, clip, _ = load_encoders(ecfg.encoders, ecfg.slowfast_weights, ecfg.clip_weights)
    slowfast, clip = freeze(slowfast).to(device), clip.to(device)
    runs, n = {}, sizes.bare_batches
    for parts in (("slowfast",), ("clip",), ("slowfast", "clip")):
        timed, mem = peak_gib(device, lambda p=parts: bare_throughput(slowfast, clip, ecfg, device, n, p))
        runs[parts] = timed[0], mem
    free(device)
    both = runs[("slowfast", "clip")]
    return {
        "slowfast_clips_per_s": round(runs[("slowfast",)][0], 2),
        "slowfast_peak_gib": runs[("slowfast",)][1],
        "clip_images_per_s": round(runs[("clip",)][0] * ecfg.encoders.clip_frames, 1),
        "clip_peak_gib": runs[("clip",)][1],
        "encoders_segments_per_s": round(both[0], 2),
        "encoders_peak_gib": both[1],
    }


def decode_per_core(path: Path, sizes: Sizes, ecfg: ExtractConfig) -> dict:
    """The extraction pass over the clip's segment windows, and a bare sequential decode of the same frames, each in
    CPU seconds of this process (one decode thread per worker as in extraction)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    info = probe(path)
    s = ecfg.encoders.sampling
    windows = [
        frame_indices(window_start((1 + i * 4.0, 4 + i * 4.0), info.duration, s), info.frames, s, info.fps)
        for i in range(sizes.segments)
    ]
    pass_s = cpu(lambda: list(stream_windows(path, windows)))
    bare_s = cpu(lambda: bare_pass(path, windows))
    torch.set_num_threads(threads)
    decoded = int(max(w.max() for w in windows)) + 1
    return {
        "decode_segments_per_s_per_core": round(len(windows) / pass_s, 2),
        "decode_frames_per_s_per_core": round(decoded / bare_s, 1),
        "decode_frame_size": list(sizes.frame),
    }


def train_config(sizes: Sizes, batch: int, workers: int | None = None):
    sets = [f"train.batch_size={batch}"] + ([f"data.workers={workers}"] if workers is not None else [])
    cfg = load_config("tiny" if sizes.encoders == "tiny" else "slowfast_clip", sets)
    cfg.data.encoders = sizes.encoders
    return cfg


def cache_model(cfg, training: bool, device: torch.device):
    """The run's inputs from the cache (as train and predict open them) and a fresh forecaster for them."""
    sources = RunInputs(cfg)
    inputs = sources.open("train", training=training)
    tax = inputs.taxonomy
    torch.manual_seed(0)
    forecaster = build_forecaster(cfg.model, feature_dims(sources.record), tax.num_verbs, tax.num_nouns)
    forecaster.decoder.set_pairs(torch.from_numpy(action_pairs(inputs.table)))  # what the joint and sequence draw
    return inputs, ForecastingModel(forecaster).to(device)


def train_cache(data: Path, sizes: Sizes, name: str, batch: int, device: torch.device) -> dict:
    """bench_train's cache path: timed optimizer steps on the cache's windows (the config's loader workers)."""
    cfg = train_config(sizes, batch)
    cfg.data.data_dir = str(data)
    inputs, model = cache_model(cfg, True, device)
    rate, mem = peak_gib(device, lambda: time_steps(model, inputs.dataset, cfg, device, sizes.cache_steps))
    free(device)
    return {name: {"batch": batch, "windows_per_s": round(rate, 1), "peak_gib": mem}}


def predict_rate(data: Path, sizes: Sizes, device: torch.device) -> dict:
    """`predict_windows` (predict's inference: model, K = 5 sampled sequences per window) over the cache's windows."""
    cfg = train_config(sizes, sizes.cache_batches[0])
    cfg.data.data_dir = str(data)
    inputs, model = cache_model(cfg, False, device)
    batch = cfg.train.eval_batch_size

    def run() -> float:
        predict_windows(model, inputs.dataset, cfg.generate, (0, 0), device, batch)  # warm-up
        start = time.perf_counter()
        predict_windows(model, inputs.dataset, cfg.generate, (0, 0), device, batch)
        return len(inputs.dataset) / (time.perf_counter() - start)

    rate, mem = peak_gib(device, run)
    free(device)
    return {"predict_windows_per_s": round(rate, 1), "predict_batch": batch, "predict_peak_gib": mem}


def train_video(data: Path, sizes: Sizes, sf: Path, clip: Path, workers: int, device: torch.device) -> dict:
    """bench_train's end-to-end path: windows decoded from video, trainable SlowFast, frozen CLIP, the same step."""
    cfg = train_config(sizes, sizes.video_batch, workers)
    cfg.data.data_dir = str(data)
    cfg.model.finetune_slowfast = True
    cfg.data.slowfast_weights, cfg.data.clip_weights = str(sf), str(clip)
    video = RunInputs(cfg)
    vid = video.open("train", training=True)
    tax = vid.taxonomy
    torch.manual_seed(0)
    forecaster = build_forecaster(cfg.model, feature_dims(video.record), tax.num_verbs, tax.num_nouns, video.bank)
    model = ForecastingModel(forecaster, video.encoders).to(device)
    rate, mem = peak_gib(device, lambda: time_steps(model, vid.dataset, cfg, device, sizes.video_steps, warmup=1))
    free(device)
    return {
        "train_video_windows_per_s": round(rate, 2),
        "train_video_batch": sizes.video_batch,
        "train_video_peak_gib": mem,
    }


def project(out: dict, gpus: int, epochs: int) -> dict:
    """Minutes on one node of `gpus` GPUs: each GPU at this run's rates (with as many decode cores as here), DDP
    scaling linearly, one window per segment."""
    seg = ASSUMED_SEGMENTS
    extract_min = sum(seg.values()) / (gpus * out["extract_segments_per_s"]) / 60
    train_min = epochs * seg["train"] / (gpus * out["train_cache_b64"]["windows_per_s"]) / 60
    predict_min = seg["test"] / (gpus * out["predict_windows_per_s"]) / 60
    total = extract_min + train_min + predict_min
    return {
        "gpus": gpus,
        "epochs": epochs,
        "assumed_segments": dict(seg),
        "assumption": "train and val: Ego4D LTA v2's action counts; test = val (assumed); windows ~ segments; "
        f"each GPU with {out['extract_workers']} decode workers as here; linear DDP scaling",
        "extract_min": round(extract_min, 2),
        "train_min": round(train_min, 2),
        "predict_min": round(predict_min, 3),
        "total_min": round(total, 2),
        "target_min": 30,
    }


def free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def log(text: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="tiny shapes: the same code paths in a minute or two")
    ap.add_argument("--smoke", action="store_true", help="full shapes, fewest counts: a CPU pre-flight of the GPU run")
    ap.add_argument("--workers", type=int, default=None, help="decode workers (default: cores - 2; quick: 1)")
    ap.add_argument("--gpus", type=int, default=8, help="GPUs of the node the projection is for")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here, after each stage")
    args = ap.parse_args()
    if args.quick and args.smoke:
        ap.error("--quick and --smoke are two different sizes: pick one")
    with contextlib.redirect_stdout(sys.stderr):  # the project's own prints: stdout holds only the JSON
        result = check(args)
    bad = [k for k, v in flat(result).items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        log(f"not finite: {bad}")
    print(json.dumps(result, indent=1))  # --out was written after each stage
    if result.get("errors"):
        log(f"failed stages: {', '.join(result['errors'])}")
        sys.exit(1)


def flat(obj: dict, prefix: str = "") -> dict:
    items = {}
    for k, v in obj.items():
        items.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return items


if __name__ == "__main__":
    main()
