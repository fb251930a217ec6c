"""`ego4d-lta ensemble`: several submissions -> one K = 5 submission, by a medoid-style selection per window.

Per window, the pool is every input's (verb, noun) sequence pairs, K of a submission or N of a pool (`predict
--pool N`: more samples of the same run, a better estimate of where they concentrate), each weighing its input's
weight / its count; the K are chosen as a set (`challenge.selection`: the expected best-of-K distance to the pool,
minimised), and per window kept only where that beats each submission's own K pairs, so the result is never worse
than any of them by that measure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import printable
from ego4d_lta.challenge.annotations import Taxonomy, load_annotations
from ego4d_lta.challenge.rules import K
from ego4d_lta.challenge.selection import CHUNK_DISTANCES, pair_distances, select
from ego4d_lta.challenge.submission import CheckResult, build_submission, check_submission, read_submission
from ego4d_lta.challenge.validate import write_checked
from ego4d_lta.challenge.windows import make_windows

MAX_POOL = 1000
"""The most samples per window one input (a pool from `predict --pool`) may hold: the selection costs P^2 per window
(3,000 took over ten minutes)."""
MAX_COMBINED = 2000
"""The most sequences per window all inputs together may give (the pool the K are chosen from)."""


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
    if k > MAX_POOL:
        raise UserError(
            f"{printable(str(path), 200)}: a pool of {k} samples per window; ensemble takes at most {MAX_POOL} per "
            "input (predict --pool N with N <= 1000)"
        )
    check = check_submission(obj, required, extra, taxonomy, raw=raw, k=k)
    if not check.valid:
        more = f" (and {len(check.errors) - 1} more)" if len(check.errors) > 1 else ""
        what = "submission" if k == K else f"pool of {k} samples per window"
        raise UserError(f"{printable(str(path), 200)}: not a valid {split} {what}: {check.errors[0]}{more}")
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
    if sum(m.k for m in members) > MAX_COMBINED:
        raise UserError(
            f"{len(members)} inputs give {sum(m.k for m in members)} sequences per window; ensemble chooses from at "
            f"most {MAX_COMBINED} (fewer inputs, or smaller pools)"
        )
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
