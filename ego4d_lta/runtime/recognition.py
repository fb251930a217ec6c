"""Training and scoring a per-segment recogniser, and k-fold cross-fitting over the train split (no file I/O here).

Cross-fitting: the train split's groups (its videos, so clips of one video stay together; clips where the
annotations name no video) are sorted, shuffled by the seed and dealt round-robin into K folds; fold f's segments
are recognised by a recogniser trained on the other K - 1 folds only. The train split's recognitions then carry the
errors of unseen data, as test's will.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ego4d_lta.base.denormals import flush_denormals
from ego4d_lta.models.recogniser import RecogniserSpec, SegmentRecogniser, build_recogniser

TOPK = 5
"""The k of top-k accuracy (and the default length of the written top-k lists)."""


@dataclass(frozen=True)
class FitSettings:
    """How a recogniser is trained: Adam on the sum of the verb and noun cross-entropies, fixed epochs."""

    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 256
    weight_decay: float = 1e-4
    """L2 on every weight (Adam's)."""
    seed: int = 0
    """Initial weights, data order and dropout: the same seed and data give the same recogniser."""


@flush_denormals()
def fit_recogniser(
    x: np.ndarray, verb: np.ndarray, noun: np.ndarray, spec: RecogniserSpec, settings: FitSettings
) -> tuple[SegmentRecogniser, list[float]]:
    """A recogniser trained on rows `x` (n, dim) with labels `verb`, `noun` (n,); and its mean loss per epoch."""
    if not len(x):
        raise ValueError("no labelled segments with features to train a recogniser on")
    model = build_recogniser(spec, settings.seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    vt, nt = torch.from_numpy(verb.astype(np.int64)), torch.from_numpy(noun.astype(np.int64))
    model.set_statistics(xt.mean(0), xt.std(0, unbiased=False))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    order = torch.Generator().manual_seed(settings.seed)
    loss_of = nn.CrossEntropyLoss()
    history = []
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global RNG: seeded here, restored after
        torch.manual_seed(settings.seed)
        model.train()
        for _ in range(settings.epochs):
            total = 0.0
            perm = torch.randperm(len(xt), generator=order)
            for start in range(0, len(perm), settings.batch_size):
                pick = perm[start : start + settings.batch_size]
                verb_logits, noun_logits = model(xt[pick])
                loss = loss_of(verb_logits, vt[pick]) + loss_of(noun_logits, nt[pick])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(pick)
            history.append(total / len(xt))
    model.eval()
    return model, history


@torch.no_grad()
@flush_denormals()
def class_probabilities(model: SegmentRecogniser, x: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(n, verbs) and (n, nouns) softmax probabilities of each row of `x`."""
    model.eval()
    verbs, nouns = [], []
    for start in range(0, len(x), batch):
        verb_logits, noun_logits = model(torch.from_numpy(np.ascontiguousarray(x[start : start + batch])))
        verbs.append(verb_logits.softmax(-1).numpy())
        nouns.append(noun_logits.softmax(-1).numpy())
    spec = model.spec
    empty_v, empty_n = np.zeros((0, spec.num_verbs), np.float32), np.zeros((0, spec.num_nouns), np.float32)
    return (np.concatenate(verbs) if verbs else empty_v), (np.concatenate(nouns) if nouns else empty_n)


def ranked(p: np.ndarray, k: int) -> np.ndarray:
    """(n, min(k, classes)) class ids of each row, most probable first (ties: the lower id first)."""
    return np.argsort(-p, axis=1, kind="stable")[:, : min(k, p.shape[1])]


def top_actions(pv: np.ndarray, pn: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most probable (verb, noun) pairs of each row under p(verb) p(noun): (n, k) verbs and nouns. They lie
    within the top-k verbs x top-k nouns, so only those k^2 pairs are scored."""
    tv, tn = ranked(pv, k), ranked(pn, k)
    joint = np.take_along_axis(pv, tv, 1)[:, :, None] * np.take_along_axis(pn, tn, 1)[:, None, :]
    best = np.argsort(-joint.reshape(len(pv), -1), axis=1, kind="stable")[:, :k]
    return np.take_along_axis(tv, best // tn.shape[1], 1), np.take_along_axis(tn, best % tn.shape[1], 1)


def accuracies(pv: np.ndarray, pn: np.ndarray, verb: np.ndarray, noun: np.ndarray, k: int = TOPK) -> dict:
    """Top-1 and top-k accuracy of verb, noun and action (both right; top-k: among the k likeliest pairs)."""
    tv, tn = ranked(pv, k), ranked(pn, k)
    av, an = top_actions(pv, pn, k)
    verb_hit, noun_hit = tv == verb[:, None], tn == noun[:, None]
    action_hit = (av == verb[:, None]) & (an == noun[:, None])
    out = {"segments": len(verb)}
    for name, hit in (("verb", verb_hit), ("noun", noun_hit), ("action", action_hit)):
        out[f"{name}_top1"] = float(hit[:, 0].mean()) if len(hit) else 0.0
        out[f"{name}_top{k}"] = float(hit.any(1).mean()) if len(hit) else 0.0
    return out


def majority_accuracy(train: pd.DataFrame, verb: np.ndarray, noun: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy of always answering the training set's most frequent verb, noun and (verb, noun) pair."""
    mv, mn = int(train["verb"].mode().iloc[0]), int(train["noun"].mode().iloc[0])
    pair = train.groupby(["verb", "noun"]).size().idxmax()
    n = max(len(verb), 1)
    return {
        "verb": float((verb == mv).sum() / n),
        "noun": float((noun == mn).sum() / n),
        "action": float(((verb == pair[0]) & (noun == pair[1])).sum() / n),
    }


def fold_groups(table: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Each row's cross-fitting group and what groups are: its video, or for a row that names none its clip
    ("clip:<uid>"), so the clips of one video always share a fold."""
    clips = table["clip_uid"].astype(str).to_numpy()
    if "video_uid" not in table:
        return clips, "clip"
    videos = table["video_uid"].fillna("").astype(str).to_numpy()
    named = videos != ""
    if named.all():
        return videos, "video"
    return np.where(named, videos, np.char.add("clip:", clips.astype(str))).astype(object), "video (clip where none)"


def assign_folds(groups: np.ndarray, folds: int, seed: int) -> dict[str, int]:
    """group -> fold 0..folds-1: the distinct groups sorted, shuffled by `seed`, dealt round-robin."""
    names = sorted(set(groups.tolist()))
    if not 2 <= folds <= len(names):
        raise ValueError(f"{folds} folds need 2..{len(names)} groups")
    order = np.random.default_rng(seed).permutation(len(names))
    return {names[j]: rank % folds for rank, j in enumerate(order)}


def cross_fit(
    x: np.ndarray,
    verb: np.ndarray,
    noun: np.ndarray,
    fold: np.ndarray,
    spec: RecogniserSpec,
    settings: FitSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities: row i's from the recogniser trained on every row whose `fold` differs (rows with
    fold -1, e.g. without features or labels, are neither trained on nor recognised: their probabilities stay 0)."""
    pv = np.zeros((len(x), spec.num_verbs), np.float32)
    pn = np.zeros((len(x), spec.num_nouns), np.float32)
    for f in sorted(set(fold.tolist()) - {-1}):
        train = (fold != f) & (fold >= 0)
        model, _ = fit_recogniser(x[train], verb[train], noun[train], spec, settings)
        held = fold == f
        pv[held], pn[held] = class_probabilities(model, x[held])
    return pv, pn
