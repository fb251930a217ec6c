"""`ego4d-lta extract`: run the frozen SlowFast and CLIP encoders once over every annotated segment of a split.

Each clip is decoded once, sequentially, in a DataLoader worker, and every segment's window is cut from that
pass (design §4.4); the main process batches the windows through both encoders (bf16 on a GPU) and writes
float16 features into the shard's memory-mapped arrays. The text prompt bank is built (or found) beside them.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ego4d_lta import __version__
from ego4d_lta.base.denormals import flush_denormals
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.hashing import file_digest
from ego4d_lta.challenge.annotations import Taxonomy, load_split, load_taxonomy, split_path, taxonomy_path
from ego4d_lta.challenge.rules import SCENARIOS_FILE
from ego4d_lta.data.feature_cache import MANIFEST, ShardWriter, record_prompt_bank
from ego4d_lta.data.feature_record import CacheManifest, FeatureRecord
from ego4d_lta.data.segment_dataset import ClipImageSpec, ClipPassDataset
from ego4d_lta.models.clip import ClipEncoder
from ego4d_lta.models.prompts import PromptBank, cached_bank, load_places, load_scenarios, vocabulary
from ego4d_lta.models.slowfast import SlowFastEncoder
from ego4d_lta.runtime.distributed import WorldInfo, device_for
from ego4d_lta.runtime.encoder_config import ENCODER_PRESETS, EncoderConfig, load_encoders
from ego4d_lta.runtime.jobs import check_split_and_shard


@dataclass
class ExtractConfig:
    data_dir: Path
    features_dir: Path
    split: str
    encoders: EncoderConfig = field(default_factory=EncoderConfig)
    slowfast_weights: Path | None = None
    clip_weights: Path | None = None
    clip_pretrained: str | None = None
    """An open_clip pretrained tag (needs the network); `clip_weights` is the offline way."""
    shard: tuple[int, int] = (0, 1)
    """(i, n): this run does shard i of n (0 <= i < n); clips are dealt round-robin in sorted order."""
    views: int = 1
    """Windows per segment: view 0 is the centre, views 1.. random positions (train split only)."""
    augment: bool = False
    """Views 1.. also get a random short side (`train_jitter`), random crop and flip (the report's training crops)."""
    batch_size: int = 8
    workers: int = 2
    device: str = "auto"
    limit: int | None = None
    """Only the shard's first `limit` clips (a smoke run); recorded in the manifest."""
    scenarios: Path | None = None
    seed: int = 0
    progress: bool = True


@dataclass
class ExtractSummary:
    split_dir: Path
    rows: int
    clips: int
    done_now: int
    failed: dict[str, str]
    seconds: float
    bank: Path

    @property
    def segments_per_second(self) -> float:
        return self.done_now / self.seconds if self.seconds else 0.0


def segment_rows(table: pd.DataFrame, views: int) -> pd.DataFrame:
    """One row per (segment, view), sorted by clip, action_idx, view."""
    base = table[["clip_uid", "action_idx", "start_sec", "end_sec"]]
    rows = pd.concat([base.assign(view=v) for v in range(views)], ignore_index=True)
    return rows.sort_values(["clip_uid", "action_idx", "view"], kind="stable").reset_index(drop=True)


def shard_clips(clips: list[str], shard: tuple[int, int], limit: int | None) -> list[str]:
    i, n = shard
    mine = sorted(clips)[i::n]
    return mine[:limit] if limit is not None else mine


def build_manifest(
    cfg: ExtractConfig, record: FeatureRecord, annotations: Path, bank: Path, weights_origin: str = ""
) -> CacheManifest:
    return CacheManifest(
        record=record,
        split=cfg.split,
        annotations_sha256=file_digest(annotations),
        views=cfg.views,
        augment=cfg.augment,
        seed=cfg.seed,
        shards=cfg.shard[1],
        limit=cfg.limit,
        prompt_bank=bank.name,
        package=__version__,
        weights_origin=weights_origin,
    )


@flush_denormals()
def extract(cfg: ExtractConfig) -> ExtractSummary:
    """Extract (or finish extracting) one shard of one split into FEATURES_DIR/<tag>/<split>/."""
    check_split_and_shard(cfg.split, cfg.shard)
    i, n = cfg.shard
    if cfg.views < 1 or (cfg.views > 1 and cfg.split != "train"):
        raise UserError(f"--views {cfg.views}: extra random views are for the train split only (use 1)")
    if cfg.augment and cfg.views < 2:
        raise UserError("--augment: augments views 1.. (view 0 stays the centre crop); needs --views 2 or more")
    annotations = cfg.data_dir / "annotations"
    taxonomy = load_taxonomy(taxonomy_path(annotations))
    split_file = split_path(annotations, cfg.split)
    table = load_split(split_file, taxonomy, require_labels=cfg.split != "test")
    video_dir = cfg.data_dir / "clips"
    if not video_dir.is_dir():
        raise UserError(f"{video_dir}: clips folder not found (expected DATA_DIR/clips/<clip_uid>.mp4)")

    slowfast_weights, clip_weights, origin = _weights(cfg)
    slowfast, clip, record = load_encoders(cfg.encoders, slowfast_weights, clip_weights, cfg.clip_pretrained)
    device = device_for(WorldInfo(), cfg.device)
    slowfast.to(device)
    clip.to(device)
    split_dir = cfg.features_dir / cfg.encoders.tag / cfg.split
    bank_path, vocab = _prompt_bank(cfg, annotations, taxonomy, clip, record, split_dir.parent)

    manifest = build_manifest(cfg, record, split_file, bank_path, origin)
    rows = segment_rows(table, cfg.views)
    clips = shard_clips(rows["clip_uid"].unique().tolist(), cfg.shard, cfg.limit)
    rows = rows[rows["clip_uid"].isin(set(clips))].reset_index(drop=True)
    dims = {"slowfast": (slowfast.feature_dim,), "clip": (cfg.encoders.clip_frames, clip.embed_dim)}
    writer = ShardWriter.open(split_dir, manifest, cfg.shard, rows, dims)
    if writer.damaged:
        print(f"warning: {writer.damaged}; extracting the shard again from scratch", file=sys.stderr)
    _warn_without_scenarios(annotations, vocab)
    changed = _record_bank(split_dir.parent, bank_path, vocab, record)
    if changed:
        print(f"prompt bank {bank_path.name} now used by the {', '.join(changed)} caches", file=sys.stderr)
    pending = writer.pending_clips()
    todo = int(rows["clip_uid"].isin(set(pending)).sum())
    spec = ClipImageSpec(clip.image_size, clip.mean, clip.std, cfg.encoders.clip_frames)
    dataset = ClipPassDataset(
        video_dir, rows, pending, cfg.encoders.sampling, spec, cfg.batch_size, cfg.seed, cfg.augment
    )
    started = time.perf_counter()
    done_now = _run_passes(cfg, dataset, writer, slowfast, clip, device, todo, f"extract {cfg.split} {i}/{n}")
    seconds = time.perf_counter() - started
    done = writer.finish(limited=cfg.limit is not None)
    return ExtractSummary(split_dir, len(rows), len(clips), done_now, done["failed"], seconds, bank_path)


def _run_passes(
    cfg: ExtractConfig,
    dataset: ClipPassDataset,
    writer: ShardWriter,
    slowfast: SlowFastEncoder,
    clip: ClipEncoder,
    device: torch.device,
    todo: int,
    desc: str,
) -> int:
    """Decode the pending clips (DataLoader workers), encode their windows and write them; returns rows written."""
    workers = min(cfg.workers, len(dataset.clips))
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )
    done_now = 0
    with _progress_bar(todo, cfg.progress, desc) as bar:
        for batch in loader:
            if "failed" in batch:
                writer.clip_finished(batch["failed"], error=batch["error"])
                bar.write(f"warning: {batch['error']}", file=sys.stderr)
                continue
            if len(batch["rows"]):
                feats = encode_batch(slowfast, clip, batch, device)
                writer.write(batch["rows"].numpy(), feats)
                done_now += len(batch["rows"])
                bar.update(len(batch["rows"]))
            for clip_uid in batch["clips"]:
                writer.clip_finished(clip_uid)
    return done_now


@dataclass
class PromptsSummary:
    bank: Path
    vocab: dict[str, list[str]]
    changed: list[str]
    """The splits whose cache now uses `bank` and used another before."""
    using: list[str]
    """Every split cache in the folder that uses `bank` now."""


def rebuild_prompts(cfg: ExtractConfig) -> PromptsSummary:
    """`extract --prompts-only`: build the CLIP prompt bank from the taxonomy, the scenario list and Places365, and
    point every split cache of these encoders at it. The features are untouched: the bank does not depend on them."""
    annotations = cfg.data_dir / "annotations"
    taxonomy = load_taxonomy(taxonomy_path(annotations))
    tag_dir = cfg.features_dir / cfg.encoders.tag
    if not any(tag_dir.glob(f"*/{MANIFEST}")):
        raise UserError(
            f"run `ego4d-lta extract` without --prompts-only first: {tag_dir} holds no feature cache to give a bank"
        )
    slowfast_weights, clip_weights, _ = _weights(cfg)
    _, clip, record = load_encoders(cfg.encoders, slowfast_weights, clip_weights, cfg.clip_pretrained)
    bank_path, vocab = _prompt_bank(cfg, annotations, taxonomy, clip, record, tag_dir)
    _warn_without_scenarios(annotations, vocab)
    changed = _record_bank(tag_dir, bank_path, vocab, record)
    using = [CacheManifest.read(p) for p in sorted(tag_dir.glob(f"*/{MANIFEST}"))]
    return PromptsSummary(bank_path, vocab, changed, [m.split for m in using if m.prompt_bank == bank_path.name])


def _prompt_bank(
    cfg: ExtractConfig, annotations: Path, taxonomy: Taxonomy, clip: ClipEncoder, record: FeatureRecord, tag_dir: Path
) -> tuple[Path, dict[str, list[str]]]:
    """The prompt bank of this vocabulary, built once per CLIP model and weights in `tag_dir`."""
    scenarios_file = cfg.scenarios or _default_scenarios(annotations)
    vocab = vocabulary(taxonomy.verbs, taxonomy.nouns, load_scenarios(scenarios_file), load_places())
    weights_id = record.clip.weights_sha256 or f"tag:{record.clip.pretrained}"
    _, bank_path = cached_bank(tag_dir, clip, weights_id, vocab)
    return bank_path, vocab


def _warn_without_scenarios(annotations: Path, vocab: dict[str, list[str]]) -> None:
    if not vocab["scenario"]:
        print(
            f"warning: link Ego4D's {SCENARIOS_FILE} into {annotations}/ or pass --scenarios FILE: without it the "
            "prompt bank has no scenario prompts, which slowfast_clip_text and slowfast_clip_attn need (adding it "
            "later keeps the features: this command with --prompts-only --scenarios FILE)",
            file=sys.stderr,
        )


def _record_bank(tag_dir: Path, bank: Path, vocab: dict[str, list[str]], record: FeatureRecord) -> list[str]:
    """Point the caches of these CLIP weights in `tag_dir` at `bank`; a bank without scenarios never replaces one
    with them (a shard run where the scenario list is missing)."""

    def keep(recorded: str) -> bool:
        path = tag_dir / recorded
        return not vocab["scenario"] and path.is_file() and bool(PromptBank.load(path).names.get("scenario"))

    return record_prompt_bank(tag_dir, bank.name, record.clip, keep)


@torch.no_grad()
def encode_batch(slowfast: SlowFastEncoder, clip: ClipEncoder, batch: dict, device: torch.device) -> dict:
    """Both encoders on one batch (bf16 autocast on a GPU), as float16 numpy arrays."""
    slow = batch["slow"].to(device, non_blocking=True)
    fast = batch["fast"].to(device, non_blocking=True)
    images = batch["images"].to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        sf = slowfast([slow, fast])
        cl = clip.encode_frames(images)
    return {"slowfast": _half(sf), "clip": _half(cl)}


def _half(x: torch.Tensor) -> np.ndarray:
    return x.float().cpu().numpy().astype(np.float16)


def _weights(cfg: ExtractConfig) -> tuple[Path | None, Path | None, str]:
    """The weight files, and where they came from when we made them: the tiny encoders without files get seeded
    random-init weights in FEATURES_DIR/<tag>/weights/, made once and shared by every split and shard."""
    given = cfg.slowfast_weights or cfg.clip_weights or cfg.clip_pretrained
    if given or cfg.encoders != ENCODER_PRESETS["tiny"]:
        return cfg.slowfast_weights, cfg.clip_weights, ""
    from ego4d_lta.models.factory import TINY_SEEDS, random_tiny_weights

    out = cfg.features_dir / cfg.encoders.tag / "weights"
    slowfast, clip = random_tiny_weights(out, cfg.encoders.sampling.num_frames, cfg.encoders.sampling.crop_size)
    origin = (
        f"random init (seeds: slowfast {TINY_SEEDS['slowfast']}, clip {TINY_SEEDS['clip']}), "
        f"saved as ../weights/{slowfast.name} and ../weights/{clip.name}"
    )
    print(f"--encoders tiny without weight files: {origin.replace('../', str(out.parent) + '/')}", file=sys.stderr)
    return slowfast, clip, origin


def _default_scenarios(annotations: Path) -> Path | None:
    """`annotations/scenarios_taxonomy.json` when present (synthetic datasets write one); else no scenarios."""
    path = annotations / SCENARIOS_FILE
    return path if path.is_file() else None


def _progress_bar(total: int, show: bool, desc: str):
    """tqdm in segments/s; when disabled it still prints `write` lines (the warnings)."""
    from ego4d_lta.base.progress import progress_bar

    return progress_bar(total, desc, "seg", disable=not show, smoothing=0.1)
