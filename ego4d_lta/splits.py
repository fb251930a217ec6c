"""A split's windows and their model inputs, shared by training and prediction.

Frozen-encoder runs read the feature cache `FEATURES/<encoders tag>/<split>/` (made by `ego4d-lta extract`);
runs that fine-tune SlowFast decode video instead, through the same encoders the cache would have used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ego4d_lta.challenge import SCENARIOS_FILE
from ego4d_lta.config import Config
from ego4d_lta.data.annotations import Taxonomy, load_split, load_taxonomy, split_path, taxonomy_path
from ego4d_lta.data.datasets import ClipImageSpec
from ego4d_lta.data.features import FeatureCache
from ego4d_lta.data.label_windows import LabelWindows, load_recognitions
from ego4d_lta.data.window_data import CacheWindows, Labels, VideoWindows, window_labels
from ego4d_lta.data.windows import Windows, make_windows
from ego4d_lta.encoder_config import ENCODER_PRESETS, EncoderConfig, file_digest
from ego4d_lta.errors import UserError
from ego4d_lta.models.forecaster import FeatureDims, needs_prompts


@dataclass
class SplitInputs:
    split: str
    table: pd.DataFrame
    taxonomy: Taxonomy
    windows: Windows
    labels: Labels | None
    dataset: CacheWindows | VideoWindows | LabelWindows

    @property
    def available(self) -> np.ndarray:
        """(n,) windows whose 8 observed segments have features (or a readable video)."""
        return self.dataset.available


def encoder_config(cfg: Config) -> EncoderConfig:
    if cfg.data.encoders not in ENCODER_PRESETS:
        raise UserError(f"data.encoders {cfg.data.encoders!r}: choose from {', '.join(ENCODER_PRESETS)}")
    enc = ENCODER_PRESETS[cfg.data.encoders]
    return replace(enc, clip_model=cfg.data.clip_model) if cfg.data.clip_model else enc


def cache_dir(cfg: Config, split: str) -> Path:
    return cfg.features_root / encoder_config(cfg).tag / split


def load_table(cfg: Config, split: str, require_labels: bool) -> tuple[pd.DataFrame, Taxonomy]:
    annotations = Path(cfg.data.data_dir) / "annotations"
    taxonomy = load_taxonomy(taxonomy_path(annotations))
    return load_split(split_path(annotations, split), taxonomy, require_labels=require_labels), taxonomy


def open_cache(cfg: Config, split: str) -> FeatureCache:
    directory = cache_dir(cfg, split)
    if not (directory / "manifest.json").is_file():
        raise UserError(
            f"{directory}: no feature cache for {split}; run `ego4d-lta extract --split {split} "
            f"--data {cfg.data.data_dir} --encoders {cfg.data.encoders}` first"
        )
    cache = FeatureCache.open(directory)
    annotations = split_path(Path(cfg.data.data_dir) / "annotations", split)
    if annotations.is_file() and cache.manifest.get("annotations_sha256") != file_digest(annotations):
        raise UserError(
            f"{directory}: made from another {annotations.name} than the one in {annotations.parent}; "
            f"re-extract (`ego4d-lta extract --split {split}`)"
        )
    return cache


def feature_record(manifest: dict) -> dict:
    """What the features are (encoders, their weights, sampling): must agree between splits and with a checkpoint."""
    sf, cl = manifest["slowfast"], manifest["clip"]
    return {
        "slowfast": {"preset": sf["preset"], "weights_sha256": sf["weights_sha256"], "dim": sf["dim"]},
        "clip": {k: cl[k] for k in ("model", "weights_sha256", "pretrained", "dim", "frames", "image_size")},
        "sampling": manifest["sampling"],
    }


def feature_dims(record: dict) -> FeatureDims:
    if not record["slowfast"]:  # a labels-only run: no features
        return FeatureDims()
    return FeatureDims(record["slowfast"]["dim"], record["clip"]["dim"], record["clip"]["frames"])


def check_same_features(expected: dict, found: dict, where: str) -> None:
    """One line naming the first difference (e.g. other SlowFast weights between train and val)."""
    for section in ("slowfast", "clip", "sampling"):
        for key, value in expected[section].items():
            if found[section].get(key) != value:
                raise UserError(
                    f"{where}: features made with {section}.{key}={found[section].get(key)!r}, "
                    f"expected {value!r}; re-extract with the same encoders"
                )


def load_prompt_bank(cfg: Config, cache: FeatureCache) -> dict[str, np.ndarray] | None:
    """The cache's CLIP prompt bank (group -> (n, D) embeddings), when the variant needs one."""
    if not needs_prompts(cfg.model.variant):
        return None
    from ego4d_lta.models.prompts import PromptBank

    path = cache.split_dir.parent / str(cache.manifest.get("prompt_bank", ""))
    if not path.is_file():
        raise UserError(f"{path}: the prompt bank of the feature cache is missing; rerun `ego4d-lta extract`")
    return PromptBank.load(path).embeddings


def cache_inputs(cfg: Config, split: str, training: bool, cache: FeatureCache | None = None) -> SplitInputs:
    """Windows of `split` over its feature cache (training: every window incl. the extra one, random views)."""
    table, taxonomy = load_table(cfg, split, require_labels=training)
    windows = make_windows(table, include_extra=training)
    cache = cache or open_cache(cfg, split)
    views = int(cache.manifest.get("views", 1)) if training else 1
    dataset = CacheWindows(cache, table, windows, window_labels(windows, table), views, cfg.train.seed)
    return SplitInputs(split, table, taxonomy, windows, dataset.labels, dataset)


def label_inputs(cfg: Config, split: str, training: bool, recognitions: str = "") -> SplitInputs:
    """Windows of `split` whose inputs are the observed segments' labels (the `labels` variant): recognised ones
    from the `recognitions` file where it has them, else the annotations'."""
    table, taxonomy = load_table(cfg, split, require_labels=training)
    windows = make_windows(table, include_extra=training)
    recog = load_recognitions(recognitions, taxonomy) if recognitions else None
    dataset = LabelWindows(table, windows, window_labels(windows, table), recog)
    return SplitInputs(split, table, taxonomy, windows, dataset.labels, dataset)


def video_inputs(cfg: Config, split: str, training: bool, image: ClipImageSpec) -> SplitInputs:
    """Windows of `split` decoded from DATA/clips (end-to-end training of SlowFast)."""
    table, taxonomy = load_table(cfg, split, require_labels=training)
    windows = make_windows(table, include_extra=training)
    labels = window_labels(windows, table)
    video_dir = Path(cfg.data.data_dir) / "clips"
    sampling = encoder_config(cfg).sampling
    dataset = VideoWindows(video_dir, table, windows, labels, sampling, image, training, cfg.train.seed)
    return SplitInputs(split, table, taxonomy, windows, labels, dataset)


def video_encoders(cfg: Config, taxonomy: Taxonomy):
    """(VideoEncoders, feature record, prompt bank) for end-to-end runs, from the weight files in cfg.data."""
    from ego4d_lta.extract import load_encoders
    from ego4d_lta.models.encoders import VideoEncoders
    from ego4d_lta.models.prompts import cached_bank, load_places, load_scenarios, vocabulary

    enc = encoder_config(cfg)
    if not cfg.data.slowfast_weights or not cfg.data.clip_weights:
        raise UserError("model.finetune_slowfast needs data.slowfast_weights and data.clip_weights (weight files)")
    from ego4d_lta.extract import ExtractConfig

    ecfg = ExtractConfig(
        data_dir=Path(cfg.data.data_dir),
        features_dir=cfg.features_root,
        split="train",
        encoders=enc,
        slowfast_weights=Path(cfg.data.slowfast_weights),
        clip_weights=Path(cfg.data.clip_weights),
    )
    slowfast, clip, record = load_encoders(ecfg)
    manifest = {
        **record,
        "sampling": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(enc.sampling).items()},
    }
    bank = None
    if needs_prompts(cfg.model.variant):
        scenarios = Path(cfg.data.data_dir) / "annotations" / SCENARIOS_FILE
        vocab = vocabulary(
            taxonomy.verbs, taxonomy.nouns, load_scenarios(scenarios if scenarios.is_file() else None), load_places()
        )
        bank = cached_bank(cfg.features_root / enc.tag, clip, file_digest(Path(cfg.data.clip_weights)), vocab)[
            0
        ].embeddings
    return VideoEncoders(slowfast, clip, cfg.model.finetune_slowfast), feature_record(manifest), bank
