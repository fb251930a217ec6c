"""A run's model inputs, one owner for training and prediction: the cache-or-video choice, the feature record
and the prompt bank.

Frozen-encoder runs read the feature cache `FEATURES/<encoders tag>/<split>/` (made by `ego4d-lta extract`);
runs that fine-tune SlowFast decode video instead, through the same encoders the cache would have used. Every
split a run opens must come from the same encoders, weights and sampling (its `FeatureRecord`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.hashing import file_digest
from ego4d_lta.challenge.annotations import Taxonomy, load_split, load_taxonomy, split_path, taxonomy_path
from ego4d_lta.challenge.rules import SCENARIOS_FILE
from ego4d_lta.challenge.windows import Windows, make_windows
from ego4d_lta.config import Config
from ego4d_lta.data.feature_cache import FeatureCache
from ego4d_lta.data.feature_record import FeatureRecord
from ego4d_lta.data.label_windows import LABEL_RECORD, LabelWindows, load_recognitions, observed_labels
from ego4d_lta.data.segment_dataset import ClipImageSpec
from ego4d_lta.data.window_datasets import CacheWindows, Labels, VideoWindows, window_labels
from ego4d_lta.models.forecaster import FeatureDims, labels_only, needed_arrays, needs_prompts
from ego4d_lta.runtime.encoder_config import EncoderConfig, caches_present, encoder_preset, load_encoders


@dataclass
class SplitInputs:
    split: str
    table: pd.DataFrame
    taxonomy: Taxonomy
    windows: Windows
    labels: Labels | None
    dataset: CacheWindows | VideoWindows | LabelWindows
    recognised: tuple[np.ndarray, np.ndarray] | None = None
    """(n, 8) recognised verb and noun ids of each window's observed segments (-1 where the file lacks one), from
    predict's recognitions file; None without one. What the set selection replays as observed candidates."""

    @property
    def available(self) -> np.ndarray:
        """(n,) windows whose 8 observed segments have features (or a readable video)."""
        return self.dataset.available


def feature_dims(record: FeatureRecord) -> FeatureDims:
    released = record.released
    slowfast = record.slowfast.dim if record.slowfast else released.dim if released.array == "slowfast" else 0
    omnivore = released.dim if released and released.array == "omnivore" else 0
    clip, frames = (record.clip.dim, record.clip.frames) if record.clip else (0, 0)
    return FeatureDims(slowfast, clip, frames, omnivore)


class RunInputs:
    """Opens the splits of one run from one source; `record`, `bank` and `encoders` are what its model reads.

    `expected` (a checkpoint's record) fixes the record up front: every split must then match it. `labels` runs
    read no features: their inputs are the observed labels, from `recognitions` (a file; default
    `data.recognitions`) where it has the segment, else from the annotations. A file given here (predict's) replaces
    the annotations whole: a segment it lacks is unknown, and its windows get the fallback (labels runs); every
    variant's split then carries the recognised observed ids for the set selection.
    """

    def __init__(self, cfg: Config, expected: FeatureRecord | None = None, recognitions: str | None = None) -> None:
        self.cfg = cfg
        self.labels_only = labels_only(cfg.model.variant)
        self.recognitions = cfg.data.recognitions if recognitions is None else recognitions
        self.predicting = bool(recognitions)
        """A recognitions file came from predict: it alone gives the observed labels."""
        self.annotations = Path(cfg.data.data_dir) / "annotations"
        self.encoder_config: EncoderConfig = encoder_preset(cfg.data.encoders, cfg.data.clip_model or None)
        self.record = expected
        self.bank: dict[str, np.ndarray] | None = None
        self.encoders = None
        """The VideoEncoders of end-to-end runs (None: the feature cache)."""
        if self.labels_only:
            if expected is not None:
                LABEL_RECORD.check_same(expected, "the checkpoint")
            self.record = LABEL_RECORD
        elif cfg.model.finetune_slowfast:
            self._load_video_encoders()

    def open(self, split: str, training: bool) -> SplitInputs:
        """The windows of `split` (training: every window incl. the extra one, random views) and their dataset."""
        # a missing cache is the likelier mistake: looked for first
        cache = self._open_cache(split) if self.encoders is None and not self.labels_only else None
        taxonomy = load_taxonomy(taxonomy_path(self.annotations))
        labelled = training or split != "test"  # val without labels would silently train without validation
        table = load_split(split_path(self.annotations, split), taxonomy, require_labels=labelled)
        windows = make_windows(table, include_extra=training)
        labels = window_labels(windows, table)
        seed = self.cfg.train.seed
        reads = self.recognitions and (self.labels_only or self.predicting)
        recognised = load_recognitions(self.recognitions, taxonomy) if reads else None
        if self.labels_only:
            dataset = LabelWindows(table, windows, labels, recognised, annotations=not self.predicting)
        elif cache is not None:
            views = cache.manifest.views if training else 1
            dataset = CacheWindows(cache, table, windows, labels, views, seed)
        else:
            clip = self.encoders.clip
            image = ClipImageSpec(clip.image_size, clip.mean, clip.std, self.record.clip.frames)
            video_dir = Path(self.cfg.data.data_dir) / "clips"
            sampling = self.encoder_config.sampling
            dataset = VideoWindows(video_dir, table, windows, labels, sampling, image, training, seed)
        observed = observed_labels(table, windows, recognised, annotations=False) if self.predicting else None
        return SplitInputs(split, table, taxonomy, windows, dataset.labels, dataset, observed)

    def _open_cache(self, split: str) -> FeatureCache:
        extracted = self.cfg.features_root / self.encoder_config.tag / split
        cache = self.feature_cache(split, join_clip="clip" in needed_arrays(self.cfg.model.variant))
        check_variant_inputs(self.cfg.model.variant, cache, extracted)
        if self.record is None:
            self.record = cache.manifest.record
            self.bank = self._cache_bank(cache)
        else:
            self.record.check_same(cache.manifest.record, str(cache.split_dir))
        return cache

    def feature_cache(self, split: str, join_clip: bool = True) -> FeatureCache:
        """The cache of `split` this config reads, whatever the variant: the imported `data.released` set (with the
        `extract` cache's CLIP part joined when `join_clip` and that cache is there), else the `extract` cache of
        `data.encoders`. Its annotations must be the ones in DATA/annotations."""
        extracted = self.cfg.features_root / self.encoder_config.tag / split
        if not self.cfg.data.released:
            return self._open_one(split, extracted)
        # imported from Ego4D's released per-video features; CLIP, if wanted, from `extract`
        from ego4d_lta.data.feature_sets import released_tag

        cache = self._open_one(split, self.cfg.features_root / released_tag(self.cfg.data.released) / split)
        if join_clip and "clip" not in cache.arrays and (extracted / "manifest.json").is_file():
            from ego4d_lta.data.combined_cache import CombinedCache

            cache = CombinedCache(cache, self._open_one(split, extracted), ("clip",))
        return cache

    def _open_one(self, split: str, directory: Path) -> FeatureCache:
        if not (directory / "manifest.json").is_file():
            if self.cfg.data.released:
                raise UserError(
                    f"{directory}: no imported features for {split}; run `ego4d-lta import-features --split {split} "
                    f"--data {self.cfg.data.data_dir} --set {self.cfg.data.released} --ego4d-features DIR` first"
                )
            raise UserError(self._no_cache(split, directory))
        cache = FeatureCache.open(directory)
        annotations = split_path(self.annotations, split)
        if annotations.is_file() and cache.manifest.annotations_sha256 != file_digest(annotations):
            raise UserError(
                f"{directory}: made from another {annotations.name} than the one in {annotations.parent}; "
                f"re-extract (`ego4d-lta {cache.manifest.made_by} --split {split}`)"
            )
        return cache

    def _no_cache(self, split: str, directory: Path) -> str:
        """What to do without the `extract` cache this config reads: the config that reads the cache there, if any;
        else the extract command."""
        extract = (
            f"`ego4d-lta extract --split {split} --data {self.cfg.data.data_dir} --encoders {self.cfg.data.encoders}`"
        )
        present = caches_present(self.cfg.features_root, split)
        if not present:
            return f"run {extract} first: {directory} holds no feature cache for {split}"
        other = present[0]
        use = "--config tiny" if other == "tiny" else f"--set data.encoders={other}"
        return (
            f"{use} reads the {other} encoders' cache that is there, or run {extract} for data.encoders="
            f"{self.cfg.data.encoders}: {directory} holds no feature cache for {split}"
        )

    def _cache_bank(self, cache: FeatureCache) -> dict[str, np.ndarray] | None:
        """The cache's CLIP prompt bank (group -> (n, D) embeddings), when the variant needs one."""
        if not needs_prompts(self.cfg.model.variant):
            return None
        from ego4d_lta.models.prompts import PromptBank

        path = cache.split_dir.parent / cache.manifest.prompt_bank
        if not cache.manifest.prompt_bank or not path.is_file():
            raise UserError(f"{path}: the prompt bank of the feature cache is missing; rerun `ego4d-lta extract`")
        return PromptBank.load(path).embeddings

    def _load_video_encoders(self) -> None:
        """The encoders, their record and the prompt bank for end-to-end runs, from the weight files in cfg.data."""
        from ego4d_lta.models.encoders import VideoEncoders
        from ego4d_lta.models.prompts import cached_bank, load_places, load_scenarios, vocabulary

        data = self.cfg.data
        if not data.slowfast_weights or not data.clip_weights:
            raise UserError("model.finetune_slowfast needs data.slowfast_weights and data.clip_weights (weight files)")
        slowfast, clip, record = load_encoders(
            self.encoder_config, Path(data.slowfast_weights), Path(data.clip_weights)
        )
        if self.record is not None:
            self.record.check_same(record, f"{data.slowfast_weights} + {data.clip_weights}")
        self.record = record
        if needs_prompts(self.cfg.model.variant):
            taxonomy = load_taxonomy(taxonomy_path(self.annotations))
            scenarios = self.annotations / SCENARIOS_FILE
            scenario_names = load_scenarios(scenarios if scenarios.is_file() else None)
            vocab = vocabulary(taxonomy.verbs, taxonomy.nouns, scenario_names, load_places())
            bank_dir = self.cfg.features_root / self.encoder_config.tag
            bank, _ = cached_bank(bank_dir, clip, record.clip.weights_sha256, vocab)
            self.bank = bank.embeddings
        self.encoders = VideoEncoders(slowfast, clip, self.cfg.model.finetune_slowfast)


def check_variant_inputs(variant: str, cache: FeatureCache, extracted: Path) -> None:
    """The cache holds every array the variant reads, else one line saying what is missing and where it comes from."""
    missing = [name for name in needed_arrays(variant) if name not in cache.arrays]
    if not missing:
        return
    released = cache.manifest.record.released
    holds = f"Ego4D's released {released.set} features" if released else ", ".join(cache.arrays)
    hints = {
        "clip": f"CLIP features come only from the clips: no `ego4d-lta extract` cache at {extracted} (needs "
        "DATA/clips and the weights); with one there, its CLIP part joins the imported rows",
        "slowfast": "import Ego4D's slowfast8x8_r101_k400 set (--set data.released=slowfast8x8_r101_k400) or run "
        "`ego4d-lta extract`",
        "omnivore": "import Ego4D's omnivore_video_swinl set (--set data.released=omnivore_video_swinl)",
    }
    raise UserError(
        f"{cache.split_dir}: model.variant {variant} needs {' and '.join(missing)} features, but this cache holds "
        f"{holds}; {hints[missing[0]]}"
    )
