"""K sequences chosen as a set: the challenge scores the best of K, so a window's K should cover where its future
may go, not be K draws near the likeliest one.

Per window there is a pool of (verb, noun) sequence pairs, each with a weight: the pool is an estimate of the
distribution of the future (a model's samples, several runs' submissions, sequences replayed from the observed
actions). We choose the K pairs that minimise the pool's expected best-of-K distance,
E_{y ~ pool} min_{s in chosen} d(s, y) (minimum Bayes risk for the challenge's min-over-K metric), where
d = Levenshtein(verb) + Levenshtein(noun) + Levenshtein(action): the challenge's three heads, pairs kept whole.
Like k-medoids (PAM): greedy build (add the pair that lowers it most, K times), then swaps while one lowers it.
An item of weight 0 is a candidate only: it can be chosen, but is no evidence of where the future goes.

`ego4d-lta ensemble` selects from its inputs' sequences; `predict` from its model's samples and the observed
candidates below (`generate.samples`, `generate.candidates`, `generate.observed_weight`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.metrics import action_tokens

PARALLEL_POOL = 512
"""Pool size (sequences per window) from which `cdist` runs on every core; below, threads cost more than they save."""
CHUNK_DISTANCES = 1_000_000
"""Pool distances (windows x P x P) per block: with `select`'s swap arrays (K + 2 times as big, float64) ~60 MB."""


def _rotations(observed: int, horizon: int) -> np.ndarray:
    """Rotation j replays the observed actions cyclically from observed[j]: (observed, horizon) positions."""
    return (np.arange(observed)[:, None] + np.arange(horizon)[None, :]) % observed


def _repeat_last(observed: int, horizon: int) -> np.ndarray:
    """The last observed action, repeated: (1, horizon) positions."""
    return np.full((1, horizon), observed - 1)


OBSERVED_CANDIDATES: dict[str, Callable[[int, int], np.ndarray]] = {
    "rotations": _rotations,
    "repeat_last": _repeat_last,
}
"""Sequences replayed from a window's observed actions, by name (`generate.candidates`): each builder maps
(observed segments N, horizon Z) to the (c, Z) observed positions its c sequences read."""


def observed_positions(kinds: Sequence[str], observed: int, horizon: int) -> np.ndarray:
    """(C, Z) observed-segment positions of the named candidate kinds, in order; an unknown name is refused."""
    unknown = [k for k in kinds if k not in OBSERVED_CANDIDATES]
    if unknown:
        raise UserError(
            f"generate.candidates {list(kinds)}: unknown {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(OBSERVED_CANDIDATES)}"
        )
    if not kinds:
        return np.zeros((0, horizon), np.int64)
    return np.concatenate([OBSERVED_CANDIDATES[k](observed, horizon) for k in kinds])


def observed_candidates(
    obs_verb: np.ndarray, obs_noun: np.ndarray, kinds: Sequence[str], horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, N) observed verb and noun ids -> (n, C, Z) verb and noun sequences of the named kinds."""
    where = observed_positions(kinds, obs_verb.shape[1], horizon)
    return obs_verb[:, where], obs_noun[:, where]


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
    dist: np.ndarray, weights: np.ndarray, k: int, own_sets: Sequence[np.ndarray] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Choose k of P pool items per window. dist: (n, P, P); weights: (P,) or per window (n, P), each summing to 1.

    Returns the chosen indices (n, k) and each window's objective; `own_sets` are index arrays (k,) of
    alternatives (an input's own set) that a window keeps when the search does not beat them.
    """
    n, p, _ = dist.shape
    d = dist.astype(np.float64)
    w = np.broadcast_to(np.asarray(weights, np.float64), (n, p))[:, None, :]  # (n, 1, P)
    current = np.full((n, p), np.inf)  # distance of each pool item to its nearest chosen one
    chosen = np.zeros((n, k), dtype=np.int64)
    taken = np.zeros((n, p), dtype=bool)
    rows = np.arange(n)
    for step in range(k):
        cost = (np.minimum(current[:, None, :], d) * w).sum(-1)  # (n, candidate)
        cost[taken] = np.inf
        pick = cost.argmin(1)
        chosen[:, step], taken[rows, pick] = pick, True
        current = np.minimum(current, d[rows, pick])
    chosen = _swap(d, w, chosen)
    best = (d[rows[:, None], chosen].min(1) * w[:, 0]).sum(-1)
    for own in own_sets:
        own_cost = (d[:, own].min(1) * w[:, 0]).sum(-1)
        better = own_cost < best
        chosen[better], best[better] = own, own_cost[better]
    return chosen, best


def select_in_blocks(verb: np.ndarray, noun: np.ndarray, num_nouns: int, weights: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices chosen by `select` from (n, P, Z) pools weighted (n, P), a block of windows at a time, so the
    distance and swap arrays stay near `CHUNK_DISTANCES` whatever the pool size and batch."""
    n, p, _ = verb.shape
    per_block = max(1, CHUNK_DISTANCES // (p * p))
    chosen = np.zeros((n, k), np.int64)
    for start in range(0, n, per_block):
        block = slice(start, start + per_block)
        chosen[block] = select(pair_distances(verb[block], noun[block], num_nouns), weights[block], k)[0]
    return chosen


def _swap(d: np.ndarray, w: np.ndarray, chosen: np.ndarray, rounds: int = 10) -> np.ndarray:
    """PAM's swap phase: per window, replace a chosen item by another while that lowers the cost."""
    n, k = chosen.shape
    rows = np.arange(n)
    chosen = chosen.copy()
    for _ in range(rounds):
        near = d[rows[:, None], chosen]  # (n, k, P): each chosen item's distance to the pool
        others = np.stack([np.delete(near, s, axis=1).min(1, initial=np.inf) for s in range(k)], 1)  # without slot s
        cost = (np.minimum(others[:, :, None, :], d[:, None, :, :]) * w[:, None]).sum(-1)  # (n, slot, candidate)
        cost[rows[:, None], :, chosen] = np.inf  # a candidate already chosen is no swap
        now = (near.min(1) * w[:, 0]).sum(-1)
        flat = cost.reshape(n, -1).argmin(1)
        slot, cand = np.divmod(flat, d.shape[1])
        better = cost[rows, slot, cand] < now - 1e-9
        if not better.any():
            break
        chosen[rows[better], slot[better]] = cand[better]
    return chosen
