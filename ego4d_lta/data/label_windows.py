"""Windows whose inputs are the observed segments' (verb, noun) ids: the `labels` variant's dataset.

The labels come from a recognitions file where it has the segment (what an action recogniser saw, the realistic
test-time input), else from the annotations (train and val carry ground truth; test has none). A window with an
observed segment known to neither is unavailable: left out of training, given the fallback at prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import describe, read_json
from ego4d_lta.challenge.annotations import Taxonomy
from ego4d_lta.challenge.windows import Windows
from ego4d_lta.data.feature_record import ClipFeatures, FeatureRecord, SlowFastFeatures
from ego4d_lta.data.window_datasets import Labels

LABEL_RECORD = FeatureRecord(
    SlowFastFeatures(preset="none", weights_sha256="", dim=0),
    ClipFeatures(model="none", weights_sha256=None, pretrained=None, dim=0, frames=0, image_size=0),
    {},
)
"""The feature record of a labels-only run: no encoder, no features (width 0)."""


TOPK_FIELDS = {"verb": "verb_topk", "noun": "noun_topk"}
"""The optional confidence fields of a recognitions entry: `[[id, probability], ...]`, most likely first."""
TOPK_TOLERANCE = 1e-4
"""Slack on "probabilities of distinct classes sum to at most 1" (the writer rounds them to 6 decimals)."""


@dataclass(frozen=True)
class Recognitions:
    """Recognised (verb, noun) per segment key `"<clip_uid>_<action_idx>"`, and where the file gives them, the
    recogniser's top-k (id, probability) per head (`topk[key]["verb"]`), most likely first."""

    path: Path
    actions: dict[str, tuple[int, int]]
    topk: dict[str, dict[str, tuple[tuple[int, float], ...]]] = field(default_factory=dict)


def recognition_entry(verb_topk: list[tuple[int, float]], noun_topk: list[tuple[int, float]]) -> dict:
    """One segment's entry as `load_recognitions` reads it: the top-1 ids, then the top-k lists (the writer's side of
    the format, so the field names live here only)."""
    entry = {"verb": int(verb_topk[0][0]), "noun": int(noun_topk[0][0])}
    for head, ranked in (("verb", verb_topk), ("noun", noun_topk)):
        entry[TOPK_FIELDS[head]] = [[int(i), round(float(p), 6)] for i, p in ranked]
    return entry


def load_recognitions(path: Path | str, taxonomy: Taxonomy) -> Recognitions:
    """Read `{"<clip_uid>_<action_idx>": {"verb": id, "noun": id}, ...}`, ids inside the taxonomy; an entry may also
    carry `"verb_topk"` / `"noun_topk"`: `[[id, probability], ...]`, distinct ids of the taxonomy, the first the
    entry's top-1 id, probabilities finite, in [0, 1], non-increasing and summing to at most 1."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level is {describe(data)}, expected an object of segment key -> {{verb, noun}}")
    allowed = {"verb", "noun", *TOPK_FIELDS.values()}
    actions, topk = {}, {}
    for key, value in data.items():
        if not isinstance(value, dict) or not {"verb", "noun"} <= set(value) or not set(value) <= allowed:
            raise UserError(
                f'{path}: {key!r} is {describe(value)}, expected {{"verb": id, "noun": id}} '
                f'(optionally "verb_topk", "noun_topk": [[id, probability], ...])'
            )
        ids, ranked = [], {}
        for head, size in (("verb", taxonomy.num_verbs), ("noun", taxonomy.num_nouns)):
            v = value[head]
            if type(v) is not int or not 0 <= v < size:
                raise UserError(f"{path}: {key!r}: {head} {v!r} is not a {head} id 0..{size - 1} of the taxonomy")
            ids.append(v)
            if TOPK_FIELDS[head] in value:
                ranked[head] = _topk(path, key, head, value[TOPK_FIELDS[head]], v, size)
        actions[key] = (ids[0], ids[1])
        if ranked:
            topk[key] = ranked
    return Recognitions(path, actions, topk)


def _topk(path: Path, key: str, head: str, value: object, top1: int, size: int) -> tuple[tuple[int, float], ...]:
    """One `<head>_topk` list, checked; a broken one is a one-line UserError naming the file, the key and the rule."""
    where = f"{path}: {key!r}: {TOPK_FIELDS[head]}"
    pairs = value if isinstance(value, list) else None
    if not pairs or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise UserError(f"{where} is {describe(value)}, expected a non-empty list of [id, probability] pairs")
    ids = [i for i, _ in pairs]
    probs = [p for _, p in pairs]
    bad_id = next((i for i in ids if type(i) is not int or not 0 <= i < size), None)
    if bad_id is not None or len(set(ids)) != len(ids):
        rule = f"{bad_id!r} is not a {head} id 0..{size - 1} of the taxonomy" if bad_id is not None else "repeats an id"
        raise UserError(f"{where}: {rule}")
    if ids[0] != top1:
        raise UserError(f"{where}: starts with {ids[0]}, but the entry's {head} (its top-1) is {top1}")
    if not all(type(p) in (int, float) and math.isfinite(p) and 0 <= p <= 1 for p in probs):
        raise UserError(f"{where}: a probability is not a finite number in [0, 1]")
    if any(a < b for a, b in pairwise(probs)):
        raise UserError(f"{where}: probabilities are not sorted, most likely first")
    if sum(probs) > 1 + TOPK_TOLERANCE:
        raise UserError(f"{where}: probabilities of distinct {head}s sum to {sum(probs):.4f} > 1")
    return tuple((i, float(p)) for i, p in pairs)


def segment_labels(
    table: pd.DataFrame, recognitions: Recognitions | None, annotations: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(verb, noun) id per table row: the recognised one where the file has the segment, else the annotation's
    (-1 where neither has it; with `annotations` False, -1 wherever the file lacks the segment)."""
    verb = table["verb"].to_numpy(np.int64).copy()
    noun = table["noun"].to_numpy(np.int64).copy()
    if not annotations:
        verb[:], noun[:] = -1, -1
    if recognitions is not None:
        keys = [f"{u}_{a}" for u, a in zip(table["clip_uid"], table["action_idx"], strict=True)]
        for row, key in enumerate(keys):
            hit = recognitions.actions.get(key)
            if hit is not None:
                verb[row], noun[row] = hit
    return verb, noun


class LabelWindows(Dataset):
    """Batches of `obs_verb` / `obs_noun` (B, 8) ids (and the future labels when known), by window index lists."""

    def __init__(
        self,
        table: pd.DataFrame,
        windows: Windows,
        labels: Labels | None,
        recognitions: Recognitions | None,
        annotations: bool = True,
    ) -> None:
        self.obs_verb, self.obs_noun = observed_labels(table, windows, recognitions, annotations)
        self.available = ((self.obs_verb >= 0) & (self.obs_noun >= 0)).all(axis=1)
        self.obs_verb[~self.available] = 0  # gathered but never used: the window gets the fallback
        self.obs_noun[~self.available] = 0
        self.labels = labels

    def __len__(self) -> int:
        return len(self.available)

    def feature_stats(self, windows: np.ndarray) -> dict[str, torch.Tensor]:
        """No features to standardise (training calls this for every variant)."""
        return {}

    def set_epoch(self, epoch: int) -> None:
        """The inputs are the same every epoch."""

    def __getitem__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        batch = {
            "index": torch.from_numpy(idx),
            "obs_verb": torch.from_numpy(self.obs_verb[idx]),
            "obs_noun": torch.from_numpy(self.obs_noun[idx]),
            "available": torch.from_numpy(self.available[idx]),
        }
        if self.labels is not None:
            batch["verb"] = torch.from_numpy(self.labels.verb[idx])
            batch["noun"] = torch.from_numpy(self.labels.noun[idx])
        return batch


def observed_labels(
    table: pd.DataFrame, windows: Windows, recognitions: Recognitions | None, annotations: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8) verb and noun ids of each window's observed segments (`segment_labels`; -1 where unknown)."""
    verb, noun = segment_labels(table, recognitions, annotations)
    return verb[windows.observed], noun[windows.observed]


def action_pairs(table: pd.DataFrame) -> np.ndarray:
    """(P, 2) the distinct labelled (verb, noun) pairs of a table, sorted: the `joint` strategy's support."""
    labelled = table[(table["verb"] >= 0) & (table["noun"] >= 0)]
    return np.unique(labelled[["verb", "noun"]].to_numpy(np.int64), axis=0).reshape(-1, 2)
