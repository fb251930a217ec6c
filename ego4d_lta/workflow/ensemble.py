"""`ego4d-lta ensemble`: several submissions -> one K = 5 submission, by a medoid-style selection per window.

The challenge scores the best of K sequences, so averaging logits or voting per position would not do: what
helps is K sequences that cover where the inputs' samples concentrate. Per window, the pool is every input's
(verb, noun) sequence pairs, K of a submission or N of a pool (`predict --pool N`: more samples of the same run,
a better estimate of where they concentrate), each weighing its input's weight / its count. We choose K pairs that
minimise the pool's expected min-over-chosen distance, E_{y ~ pool} min_{s in chosen} d(s, y), where
d = Levenshtein(verb) + Levenshtein(noun) + Levenshtein(action): the challenge's three heads, pairs kept whole.
Like k-medoids (PAM): greedy build (add the pair that lowers it most, K times), then swaps while one lowers it;
per window the best of that and each submission's own K pairs, so the result is never worse than any of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.annotations import Taxonomy, load_annotations
from ego4d_lta.challenge.metrics import action_tokens
from ego4d_lta.challenge.rules import K
from ego4d_lta.challenge.submission import CheckResult, build_submission, check_submission, read_submission
from ego4d_lta.challenge.validate import write_checked
from ego4d_lta.challenge.windows import make_windows

PARALLEL_POOL = 512
"""Pool size (sequences per window) from which `cdist` runs on every core; below, threads cost more than they save."""
CHUNK_DISTANCES = 1_000_000
"""Pool distances (windows x P x P) per block: with `select`'s swap arrays (K + 2 times as big, float64) ~60 MB."""


@dataclass
class Member:
    """One checked input: its keys and (n, k, Z) predictions (k = K for a submission, N for a pool)."""

    path: Path
    check: CheckResult
    k: int = K


@dataclass
class EnsembleResult:
    out: Path
    windows: int
    inputs: list[Path]
    expected: float
    """The chosen sets' mean expected min distance to the pool (per window, summed over the three heads)."""
    inputs_expected: list[float]
    """The same for each submission's own K pairs (pools have none): the ensemble's is never larger."""
    submissions: list[Path]
    """The inputs that are submissions (K = 5), in order: `inputs_expected` is theirs."""
    pool: int
    """Sequences per window the K were chosen from."""


def load_member(path: Path, split: str, required: list[str], extra: list[str], taxonomy: Taxonomy) -> Member:
    """Read a submission (or a pool) and check it exactly as `validate` does; an invalid one is refused, named."""
    obj, raw = read_submission(path)
    k = samples_per_window(obj)
    check = check_submission(obj, required, extra, taxonomy, raw=raw, k=k)
    if not check.valid:
        more = f" (and {len(check.errors) - 1} more)" if len(check.errors) > 1 else ""
        what = "submission" if k == K else f"pool of {k} samples per window"
        raise UserError(f"{path}: not a valid {split} {what}: {check.errors[0]}{more}")
    return Member(Path(path), check, k)


def samples_per_window(obj: object) -> int:
    """N for a pool of N samples (N > K, the most common count of its entries; the check then holds every entry to
    it), else K: a submission, even one whose entries are broken, is checked as one."""
    if not isinstance(obj, dict):
        return K
    counts = Counter(
        len(v["verb"]) for v in obj.values() if isinstance(v, dict) and isinstance(v.get("verb"), list)
    ).most_common(1)
    return counts[0][0] if counts and counts[0][0] > K else K


def pair_distances(verb: np.ndarray, noun: np.ndarray, num_nouns: int) -> np.ndarray:
    """(n, P, Z) paired sequences -> (n, P, P) distances: Levenshtein of verb + noun + action, whole length.

    rapidfuzz's `cdist` (bit-parallel Levenshtein in C++, over integer sequences as lists) per window and head:
    ~3 ms per window for P = 100 against ~40 ms for the vectorised numpy table (benchmarks/bench_ensemble_speed.py).
    Its threads only pay off for large pools (measured: none at P = 100, a little at P = 1000)."""
    n, p, _ = verb.shape
    heads = (verb, noun, action_tokens(verb, noun, num_nouns))
    workers = 1 if p < PARALLEL_POOL else -1
    out = np.zeros((n, p, p), dtype=np.int64)
    for w in range(n):
        for seq in heads:
            rows = seq[w].tolist()  # the same object twice: cdist computes a symmetric scorer's triangle once
            out[w] += process.cdist(rows, rows, scorer=Levenshtein.distance, dtype=np.int32, workers=workers)
    return out


def select(
    dist: np.ndarray, weights: np.ndarray, k: int, own_sets: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Choose k of P pool items per window. dist: (n, P, P); weights: (P,) summing to 1.

    Returns the chosen indices (n, k) and each window's objective; `own_sets` are index arrays (k,) of
    alternatives (the inputs' own sets) that a window keeps when greedy does not beat them.
    """
    n, p, _ = dist.shape
    d = dist.astype(np.float64)
    current = np.full((n, p), np.inf)  # distance of each pool item to its nearest chosen one
    chosen = np.zeros((n, k), dtype=np.int64)
    taken = np.zeros((n, p), dtype=bool)
    rows = np.arange(n)
    for step in range(k):
        cost = (np.minimum(current[:, None, :], d) * weights).sum(-1)  # (n, candidate)
        cost[taken] = np.inf
        pick = cost.argmin(1)
        chosen[:, step], taken[rows, pick] = pick, True
        current = np.minimum(current, d[rows, pick])
    chosen = _swap(d, weights, chosen)
    best = (d[rows[:, None], chosen].min(1) * weights).sum(-1)
    for own in own_sets:
        own_cost = (d[:, own].min(1) * weights).sum(-1)
        better = own_cost < best
        chosen[better], best[better] = own, own_cost[better]
    return chosen, best


def _swap(d: np.ndarray, weights: np.ndarray, chosen: np.ndarray, rounds: int = 10) -> np.ndarray:
    """PAM's swap phase: per window, replace a chosen item by another while that lowers the cost."""
    n, k = chosen.shape
    rows = np.arange(n)
    chosen = chosen.copy()
    for _ in range(rounds):
        near = d[rows[:, None], chosen]  # (n, k, P): each chosen item's distance to the pool
        others = np.stack([np.delete(near, s, axis=1).min(1, initial=np.inf) for s in range(k)], 1)  # without slot s
        cost = (np.minimum(others[:, :, None, :], d[:, None, :, :]) * weights).sum(-1)  # (n, slot, candidate)
        cost[rows[:, None], :, chosen] = np.inf  # a candidate already chosen is no swap
        now = (near.min(1) * weights).sum(-1)
        flat = cost.reshape(n, -1).argmin(1)
        slot, cand = np.divmod(flat, d.shape[1])
        better = cost[rows, slot, cand] < now - 1e-9
        if not better.any():
            break
        chosen[rows[better], slot[better]] = cand[better]
    return chosen


def ensemble(
    paths: Sequence[Path],
    out: Path,
    annotations_dir: Path,
    split: str = "test",
    weights: Sequence[float] | None = None,
) -> EnsembleResult:
    """Combine valid submissions or pools of one split into one, check it like the server, write it atomically."""
    if not paths:
        raise UserError("ensemble needs at least 2 submissions, or a pool (predict --pool)")
    weights = [1.0] * len(paths) if weights is None else list(weights)
    if len(weights) != len(paths):
        raise UserError(f"--weights: {len(weights)} values for {len(paths)} inputs")
    if any(not np.isfinite(w) or w <= 0 for w in weights):
        raise UserError(f"--weights: every weight must be a positive number, got {weights}")
    table, taxonomy = load_annotations(annotations_dir, split)
    required, extra = make_windows(table, include_extra=True).key_sets()
    members = [load_member(Path(p), split, required, extra, taxonomy) for p in paths]
    if len(members) == 1 and members[0].k == K:
        raise UserError("ensemble needs at least 2 submissions, or a pool (predict --pool): one submission is itself")
    keys = [key for key in members[0].check.keys if all(key in m.check.keys for m in members[1:])]
    rows = [dict(zip(m.check.keys, range(len(m.check.keys)), strict=True)) for m in members]
    order = [np.array([r[key] for key in keys], dtype=np.int64) for r in rows]
    verb = np.concatenate([m.check.verb[o] for m, o in zip(members, order, strict=True)], axis=1)
    noun = np.concatenate([m.check.noun[o] for m, o in zip(members, order, strict=True)], axis=1)
    counts = np.array([m.k for m in members])
    share = np.asarray(weights, dtype=np.float64) / max(weights)  # scaled first: 1e308 + 1e308 would overflow
    pool_w = np.repeat(share / share.sum() / counts, counts)
    starts = np.concatenate([[0], counts.cumsum()])
    own = [np.arange(starts[i], starts[i + 1]) for i, m in enumerate(members) if m.k == K]  # submissions' own 5
    n, p = len(keys), len(pool_w)
    chosen, best, own_cost = np.zeros((n, K), np.int64), np.zeros(n), np.zeros((len(own), n))
    per_block = max(1, CHUNK_DISTANCES // (p * p))
    for start in range(0, n, per_block):  # windows are independent: a block at a time bounds the memory
        block = slice(start, start + per_block)
        dist = pair_distances(verb[block], noun[block], taxonomy.num_nouns)
        chosen[block], best[block] = select(dist, pool_w, K, own)
        for i, o in enumerate(own):
            own_cost[i, block] = (dist[:, o].min(1) * pool_w).sum(-1)
    picked = np.arange(n)[:, None]
    submission = build_submission(keys, verb[picked, chosen], noun[picked, chosen])
    write_checked(out, submission, annotations_dir, split, "ensemble")
    inputs_expected = [float(c.mean()) for c in own_cost]
    submissions = [m.path for m in members if m.k == K]
    return EnsembleResult(
        Path(out), len(keys), [m.path for m in members], float(best.mean()), inputs_expected, submissions, len(pool_w)
    )
