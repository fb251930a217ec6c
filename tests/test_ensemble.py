"""`ego4d-lta ensemble`: the selection (medoid for K=1, never worse than an input), pairs kept, clear refusals."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import editdistance
import numpy as np
import pytest

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.selection import pair_distances, select
from ego4d_lta.challenge.submission import build_submission, write_submission
from ego4d_lta.challenge.validate import validate_file
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main
from ego4d_lta.workflow.ensemble import ensemble


@pytest.fixture(scope="module")
def val(synth_data: Path) -> tuple[Path, list[str], int, int]:
    """The synthetic val split: its annotations folder, challenge keys and class counts."""
    annotations = synth_data / "annotations"
    table, taxonomy = load_annotations(annotations, "val")
    required, _ = make_windows(table, include_extra=True).key_sets()
    return annotations, required, taxonomy.num_verbs, taxonomy.num_nouns


def _random_submission(path: Path, keys: list[str], verbs: int, nouns: int, seed: int, classes: int = 4) -> Path:
    """Sequences over a few classes (so the inputs overlap and the selection has something to find)."""
    rng = np.random.default_rng(seed)
    verb = rng.integers(0, min(classes, verbs), (len(keys), K, Z))
    noun = rng.integers(0, min(classes, nouns), (len(keys), K, Z))
    return write_submission(path, build_submission(keys, verb, noun))


def _pairs(sub: dict, key: str) -> set[tuple]:
    return set(zip(map(tuple, sub[key]["verb"]), map(tuple, sub[key]["noun"]), strict=True))


def _cost(dist: np.ndarray, weights: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    return (dist[np.arange(len(dist))[:, None], chosen].min(1) * weights).sum(-1)


def test_pair_distances_are_summed_levenshtein_of_verb_noun_and_action() -> None:
    rng = np.random.default_rng(0)
    verb, noun = rng.integers(0, 3, (4, 3, Z)), rng.integers(0, 3, (4, 3, Z))
    dist = pair_distances(verb, noun, num_nouns=3)
    action = verb * 3 + noun
    for w, a, b in itertools.product(range(4), range(3), range(3)):
        want = sum(editdistance.eval(list(s[w, a]), list(s[w, b])) for s in (verb, noun, action))
        assert dist[w, a, b] == want
    assert (dist[:, range(3), range(3)] == 0).all()


def test_pair_distances_of_large_pools_and_ids_match_editdistance_and_keep_the_selection() -> None:
    """Pools of 100 over Ego4D-sized vocabularies (action ids > 2**15): every pair as `editdistance` computes it, and
    the selection from them equals the selection from the oracle's distances on this fixed input."""
    rng = np.random.default_rng(5)
    n, p, num_nouns = 3, 100, 521
    verb = rng.choice([0, 7, 116], (n, p, Z), p=[0.6, 0.3, 0.1])  # few classes: many near-equal sequences
    noun = rng.choice([1, 300, 520], (n, p, Z), p=[0.5, 0.3, 0.2])
    dist = pair_distances(verb, noun, num_nouns)
    action = verb * num_nouns + noun
    assert action.max() > 2**15
    heads = [s.tolist() for s in (verb, noun, action)]
    want = np.zeros((n, p, p), dtype=np.int64)
    for w, a, b in itertools.product(range(n), range(p), range(p)):
        if a < b:
            want[w, a, b] = want[w, b, a] = sum(editdistance.eval(h[w][a], h[w][b]) for h in heads)
    np.testing.assert_array_equal(dist, want)
    weights = rng.random(p)
    weights /= weights.sum()
    own = [np.arange(5)]
    got, want_sel = select(dist, weights, K, own), select(want, weights, K, own)
    np.testing.assert_array_equal(got[0], want_sel[0])
    assert len({tuple(sorted(row)) for row in got[0]}) == n  # the windows differ: the picks depend on the distances


def test_one_pick_is_the_weighted_medoid_and_k_picks_never_lose_to_an_input() -> None:
    rng = np.random.default_rng(1)
    n, p, k = 50, 8, 3
    dist = rng.integers(0, 60, (n, p, p)).astype(float)
    dist = (dist + dist.transpose(0, 2, 1)) / 2
    dist[:, range(p), range(p)] = 0
    weights = rng.random(p)
    weights /= weights.sum()
    chosen, cost = select(dist, weights, 1, [])
    assert (chosen[:, 0] == (dist * weights).sum(-1).argmin(1)).all()

    own = [np.array([0, 1, 2]), np.array([5, 6, 7])]
    chosen, cost = select(dist, weights, k, own)
    np.testing.assert_allclose(cost, _cost(dist, weights, chosen))
    assert all((cost <= _cost(dist, weights, np.broadcast_to(o, (n, k))) + 1e-9).all() for o in own)
    optimum = np.min([_cost(dist, weights, np.broadcast_to(c, (n, k))) for c in itertools.combinations(range(p), k)], 0)
    assert (cost >= optimum - 1e-9).all() and cost.mean() <= optimum.mean() * 1.02  # build + swap: near optimal
    assert len({tuple(sorted(row)) for row in chosen}) > 1 and all(len(set(row)) == k for row in chosen)


def test_cli_combines_two_submissions_keeping_verb_noun_pairs(val, tmp_path: Path, capsys) -> None:
    annotations, keys, verbs, nouns = val
    a = _random_submission(tmp_path / "a.json", keys, verbs, nouns, seed=0)
    b = _random_submission(tmp_path / "b.json", keys, verbs, nouns, seed=1)
    out = tmp_path / "out" / "ens.json"
    args = ["ensemble", str(a), str(b), "-o", str(out), "--split", "val", "--annotations", str(annotations)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"{out}: K=5 chosen from 10 sequences per window of 2 inputs, {len(keys)} windows" in printed
    assert printed.count("valid val submission") == 3 and printed.count("action") == 3  # a, b and the ensemble
    assert validate_file(out, annotations, "val").valid
    got, inputs = json.loads(out.read_text()), [json.loads(p.read_text()) for p in (a, b)]
    assert list(got) == keys
    for key in keys:
        assert len(_pairs(got, key)) == K and _pairs(got, key) <= _pairs(inputs[0], key) | _pairs(inputs[1], key)

    result = ensemble([a, b], tmp_path / "weighted.json", annotations, "val", weights=[3.0, 1.0])
    assert result.expected <= min(result.inputs_expected) and result.expected < max(result.inputs_expected)
    weighted = json.loads((tmp_path / "weighted.json").read_text())
    taken_from_a = sum(len(_pairs(weighted, key) & _pairs(inputs[0], key)) for key in keys)
    assert taken_from_a > len(keys) * K / 2, "the heavier submission supplies most sequences"


def test_ensemble_of_a_submission_with_itself_is_that_submission(val, tmp_path: Path) -> None:
    annotations, keys, verbs, nouns = val
    a = _random_submission(tmp_path / "a.json", keys, verbs, nouns, seed=2, classes=50)  # 5 distinct sequences
    ensemble([a, a], tmp_path / "same.json", annotations, "val")
    want, got = json.loads(a.read_text()), json.loads((tmp_path / "same.json").read_text())
    assert all(_pairs(got, key) == _pairs(want, key) and len(_pairs(want, key)) == K for key in keys)


def test_a_pool_weighs_its_input_not_its_size(val, tmp_path: Path) -> None:
    """Each of a pool's N samples weighs the input's weight / N: a pool repeating 5 sequences 4 times each is, to
    the selection, the submission of those 5 (which it would outweigh 4 to 1 if each sample weighed as much).

    Up to the search: on ties greedy and swaps may part ways, and a submission's own 5 are a fallback, a pool's not."""
    annotations, keys, verbs, nouns = val
    five = _random_submission(tmp_path / "five.json", keys, verbs, nouns, seed=5)
    doc = json.loads(five.read_text())
    pool = {key: {head: seqs * 4 for head, seqs in value.items()} for key, value in doc.items()}
    (tmp_path / "five.pool20.json").write_text(json.dumps(pool))
    other = _random_submission(tmp_path / "other.json", keys, verbs, nouns, seed=6)
    a = ensemble([five, other], tmp_path / "a.json", annotations, "val")
    b = ensemble([tmp_path / "five.pool20.json", other], tmp_path / "b.json", annotations, "val")
    assert (a.pool, b.pool, b.submissions) == (10, 25, [other])
    assert b.expected == pytest.approx(a.expected, rel=1e-3)  # the search (greedy, swaps) may part ways slightly
    got_a = json.loads(a.out.read_text())
    heavy = ensemble([tmp_path / "five.pool20.json", other], tmp_path / "c.json", annotations, "val", [4.0, 1.0])
    got_c = json.loads(heavy.out.read_text())
    assert sum(_pairs(got_c, key) != _pairs(got_a, key) for key in keys) > len(keys) / 4  # weights do matter


def test_bad_inputs_are_one_line_errors_and_nothing_is_written(val, tmp_path: Path, capsys) -> None:
    annotations, keys, verbs, nouns = val
    a = _random_submission(tmp_path / "a.json", keys, verbs, nouns, seed=0)
    short = tmp_path / "short.json"
    doc = json.loads(a.read_text())
    doc.pop(keys[3])
    short.write_text(json.dumps(doc))
    uneven = tmp_path / "uneven.pool.json"  # a pool whose entries hold different numbers of samples
    pool = {
        key: {"verb": [[0] * Z] * (8 if i else 9), "noun": [[0] * Z] * (8 if i else 9)} for i, key in enumerate(keys)
    }
    uneven.write_text(json.dumps(pool))
    broken_first = tmp_path / "broken.json"  # a submission whose first entry is broken is still a submission
    doc = json.loads(a.read_text())
    doc[keys[0]]["verb"] = doc[keys[0]]["verb"][:4]
    broken_first.write_text(json.dumps(doc))
    out = tmp_path / "out.json"
    base = ["-o", str(out), "--split", "val", "--annotations", str(annotations)]
    cases = [
        ([a, short], [], f"{short}: not a valid val submission: 1 of {len(keys)} expected keys are missing"),
        ([a, tmp_path / "nope.json"], [], "nope.json: no such file"),
        ([a, broken_first], [], f"{broken_first}: not a valid val submission: key '{keys[0]}': 'verb' has 4"),
        ([a, uneven], [], f"{uneven}: not a valid val pool of 8 samples per window: key '{keys[0]}': 'verb' has 9"),
        ([a], [], "ensemble needs at least 2 submissions"),
        ([a, a], ["--weights", "1"], "--weights: 1 values for 2 inputs"),
        ([a, a], ["--weights", "1", "-2"], "every weight must be a positive number"),
    ]
    for files, extra, message in cases:
        assert main(["ensemble", *map(str, files), *base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("weights", [None, [1e308, 1e308], [2.0, 2.0]])
def test_a_sequence_half_the_pool_agrees_on_is_always_chosen(val, tmp_path: Path, weights) -> None:
    """By hand, not by the code's own objective: B repeats one pair b five times, so b is half the pool's weight;
    A has five distinct pairs. Any 5 without b leave that half at distance > 0, while b costs one of A's pairs (a
    tenth): every window's 5 are b and 4 of A's. Returning A (or B) unchanged fails; so do weights that overflow
    to nothing (1e308 + 1e308 was inf: every weight 0, the first 5 chosen)."""
    annotations, keys, verbs, nouns = val
    a = _random_submission(tmp_path / "a.json", keys, verbs, nouns, seed=3, classes=50)
    rng = np.random.default_rng(4)
    b_verb = np.repeat(rng.integers(0, verbs, (len(keys), 1, Z)), K, axis=1)
    b_noun = np.repeat(rng.integers(0, nouns, (len(keys), 1, Z)), K, axis=1)
    b = write_submission(tmp_path / "b.json", build_submission(keys, b_verb, b_noun))
    ensemble([a, b], tmp_path / "out.json", annotations, "val", weights)
    got, want_a = json.loads((tmp_path / "out.json").read_text()), json.loads(a.read_text())
    for i, key in enumerate(keys):
        pair_b = (tuple(b_verb[i, 0]), tuple(b_noun[i, 0]))
        chosen = list(zip(map(tuple, got[key]["verb"]), map(tuple, got[key]["noun"]), strict=True))
        assert pair_b in chosen and len(set(chosen)) == K, key
        assert set(chosen) - {pair_b} <= _pairs(want_a, key), key
