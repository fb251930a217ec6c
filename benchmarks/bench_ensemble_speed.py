"""What `ego4d-lta ensemble` costs per window: pair distances, then the selection, before and after rapidfuzz.

Two pools of `--pool` samples per window (P = 2 x pool sequences of Z = 20 (verb, noun) over Ego4D's 117 verbs
and 521 nouns, drawn from a peaked distribution as a model's samples are), `--windows` windows:
  before  the vectorised numpy Levenshtein table (`metrics.prefix_edit_distances`) over the upper triangle's pairs,
          as `selection.pair_distances` computed them until rapidfuzz (kept here as the reference)
  after   `selection.pair_distances` (rapidfuzz `process.cdist`)
Both feed `selection.select`; the script fails unless distances and selections are identical.
Figures are ms per window of CPU time (one thread: the time on one core however loaded the machine is), the best
of `--repeat` runs. The last line is `ratio=<before / after>` of
the whole per-window cost (distances + selection).

    python benchmarks/bench_ensemble_speed.py [--windows 200] [--pool 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ego4d_lta.challenge.metrics import action_tokens, prefix_edit_distances
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.selection import pair_distances, select

VERBS, NOUNS = 117, 521


def numpy_pair_distances(verb: np.ndarray, noun: np.ndarray, num_nouns: int) -> np.ndarray:
    """The previous implementation: one vectorised Levenshtein table per upper-triangle pair, 250,000 pairs a batch."""
    n, p, z = verb.shape
    tokens = [t.astype(np.int32) for t in (verb, noun, action_tokens(verb, noun, num_nouns))]
    out = np.zeros((n, p, p), dtype=np.int64)
    left, right = np.triu_indices(p, 1)
    step = max(1, 250_000 // max(1, len(left)))
    for start in range(0, n, step):
        block = slice(start, start + step)
        m = len(range(*block.indices(n)))
        upper = np.zeros((m, len(left)), dtype=np.int64)
        for seq in tokens:
            a = seq[block][:, left].reshape(-1, z)
            b = seq[block][:, right].reshape(-1, z)
            upper += prefix_edit_distances(a, b)[:, -1].reshape(m, len(left))
        out[block, left, right] = upper
        out[block, right, left] = upper
    return out


def pools(windows: int, pool: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(windows, 2 * pool, Z) verbs and nouns: per window a few likely classes, sampled with a skewed law."""
    rng = np.random.default_rng(seed)
    likely_v = rng.integers(0, VERBS, (windows, 1, 1, 8))
    likely_n = rng.integers(0, NOUNS, (windows, 1, 1, 8))
    law = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05])
    shape = (windows, 2 * pool, Z)
    verb = np.take_along_axis(likely_v, rng.choice(8, shape, p=law)[..., None], -1)[..., 0]
    noun = np.take_along_axis(likely_n, rng.choice(8, shape, p=law)[..., None], -1)[..., 0]
    return verb, noun


def best_of(repeat: int, fn, *args):
    times, out = [], None
    for _ in range(repeat):
        start = time.process_time()
        out = fn(*args)
        times.append(time.process_time() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--pool", type=int, default=50, help="samples per window of each of the two pools")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    verb, noun = pools(args.windows, args.pool)
    p = verb.shape[1]
    weights = np.full(p, 1 / p)
    t_before, before = best_of(args.repeat, numpy_pair_distances, verb, noun, NOUNS)
    t_after, after = best_of(args.repeat, pair_distances, verb, noun, NOUNS)
    if not np.array_equal(before, after):
        raise SystemExit(f"distances differ in {int((before != after).sum())} of {before.size} entries")
    t_select, chosen = best_of(args.repeat, select, after, weights, K, [])
    if not np.array_equal(chosen[0], select(before, weights, K, [])[0]):
        raise SystemExit("selections differ")
    ms = 1000 / args.windows
    head = f"{args.windows} windows, two pools of {args.pool} (P = {p}, Z = {Z})"
    print(f"{head}, best of {args.repeat}, CPU ms per window")
    print(f"pair distances  before (numpy table) {t_before * ms:7.2f}   after (rapidfuzz cdist) {t_after * ms:7.2f}")
    print(f"selection (build + swap)             {t_select * ms:7.2f}")
    total_before, total_after = t_before + t_select, t_after + t_select
    print(f"per window      before {total_before * ms:7.2f}   after {total_after * ms:7.2f}   (same picks)")
    print(f"ratio={total_before / total_after:.2f}")


if __name__ == "__main__":
    main()
