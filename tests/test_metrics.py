"""The metric: reference figures on real Ego4D val windows, and its properties."""

from __future__ import annotations

import json
from pathlib import Path

import editdistance
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ego4d_lta.challenge.metrics import aued, edit_distance_at_z, prefix_edit_distances, reference_edit_distance, score

NUM_NOUNS_V1 = 478


def _parse(shared_data: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(observed (n, 8, 2), future (n, 20, 2)) (verb, noun) ids of AntGPT's v1 val windows."""
    dicts = json.loads((shared_data / "antgpt_v1_val" / "dicts.json").read_text())

    def ids(text: str) -> list[tuple[int, int]]:
        pairs = [a.strip().split(" ") for a in text.replace("###", "").strip().split(",")]
        return [(dicts["v2i"][v], dicts["n2i"][n]) for v, n in pairs]

    observed, future = [], []
    for line in (shared_data / "antgpt_v1_val" / name).read_text().splitlines():
        row = json.loads(line)
        observed.append(ids(row["prompt"]))
        future.append(ids(row["completion"]))
    return np.array(observed), np.array(future)


def _ed20(preds: np.ndarray, future: np.ndarray) -> list[float]:
    s = score(preds[..., 0], preds[..., 1], future[..., 0], future[..., 1], NUM_NOUNS_V1)
    return [round(s.ed20[h], 4) for h in ("verb", "noun", "action")]


def test_reference_rows_of_shared_data_readme(shared_data: Path) -> None:
    observed, future = _parse(shared_data, "val_nseg8.jsonl")
    assert observed.shape == (6687, 8, 2) and future.shape == (6687, 20, 2)
    repeat_last = np.repeat(observed[:, None, -1:, :], 20, axis=2)  # (n, K=1, Z, 2)
    assert _ed20(repeat_last, future) == [0.8176, 0.6364, 0.9006]

    observed, future = _parse(shared_data, "val_nseg8_recog.jsonl")
    repeat_last = np.repeat(observed[:, None, -1:, :], 20, axis=2)
    assert _ed20(repeat_last, future) == [0.8022, 0.7551, 0.9440]
    rotations = np.stack([observed[:, [(r + i) % 8 for i in range(20)]] for r in range(5)], axis=1)
    assert _ed20(rotations, future) == [0.7542, 0.7283, 0.9231]


def test_vectorised_metric_equals_editdistance_package_on_real_windows(shared_data: Path) -> None:
    observed, future = _parse(shared_data, "val_nseg8_recog.jsonl")
    rotations = np.stack([observed[:, [(r + i) % 8 for i in range(20)]] for r in range(5)], axis=1)
    for head in (0, 1):
        fast = edit_distance_at_z(rotations[..., head], future[..., head])[-1]
        assert fast == pytest.approx(reference_edit_distance(rotations[..., head], future[..., head]), abs=1e-12)


tokens = st.integers(0, 3)  # few symbols: many matches, the interesting case


@settings(max_examples=120, deadline=None)
@given(st.data(), st.integers(1, 12))
def test_prefix_distances_equal_levenshtein_of_each_prefix(data: st.DataObject, z: int) -> None:
    pred = data.draw(arrays(np.int64, (3, z), elements=tokens))
    truth = data.draw(arrays(np.int64, (3, z), elements=tokens))
    table = prefix_edit_distances(pred, truth)
    for m in range(3):
        for j in range(1, z + 1):
            assert table[m, j - 1] == editdistance.eval(pred[m, :j].tolist(), truth[m, :j].tolist())


@settings(max_examples=80, deadline=None)
@given(st.data(), st.integers(1, 6), st.integers(1, 20))
def test_bounds_min_over_k_and_symmetry(data: st.DataObject, k: int, z: int) -> None:
    n = 4
    preds = data.draw(arrays(np.int64, (n, k, z), elements=tokens))
    truth = data.draw(arrays(np.int64, (n, z), elements=tokens))
    ed = edit_distance_at_z(preds, truth)
    assert ((ed >= 0) & (ed <= 1)).all()
    # min over K: the score of K sequences is the mean of the per-window best single sequence
    singles = np.stack(
        [[edit_distance_at_z(preds[i : i + 1, j : j + 1], truth[i : i + 1]) for j in range(k)] for i in range(n)]
    )  # (n, k, z)
    assert np.allclose(ed, singles.min(axis=1).mean(axis=0))
    # adding a candidate never hurts; the ground truth itself scores 0
    with_truth = np.concatenate([preds, truth[:, None, :]], axis=1)
    assert (edit_distance_at_z(with_truth, truth) == 0).all()
    # Levenshtein is symmetric
    swapped = edit_distance_at_z(truth[:, None, :], preds[:, 0])
    assert np.allclose(edit_distance_at_z(preds[:, :1], truth), swapped)


def test_action_pairs_kth_verb_with_kth_noun() -> None:
    verb_truth = np.zeros((1, 20), np.int64)
    noun_truth = np.ones((1, 20), np.int64)
    # sequence 0 has the right verbs, sequence 1 the right nouns: each head is perfect, the action is not
    verb = np.stack([np.zeros(20), np.full(20, 5)])[None].astype(np.int64)
    noun = np.stack([np.full(20, 7), np.ones(20)])[None].astype(np.int64)
    s = score(verb, noun, verb_truth, noun_truth, num_nouns=10)
    assert s.ed20["verb"] == 0 and s.ed20["noun"] == 0 and s.ed20["action"] == 1.0


def test_aued_is_trapezoid_over_z_divided_by_z_minus_1() -> None:
    ed = np.linspace(0.2, 0.8, 20)
    expected = sum((ed[i] + ed[i + 1]) / 2 for i in range(19)) / 19
    assert aued(ed) == pytest.approx(expected)
    s = score(
        np.zeros((2, 5, 20), np.int64),
        np.zeros((2, 5, 20), np.int64),
        np.ones((2, 20), np.int64),
        np.zeros((2, 20), np.int64),
        num_nouns=3,
    )
    assert s.ed_at_z["verb"] == [1.0] * 20 and s.aued["verb"] == pytest.approx(1.0)
    assert s.ed_at_z["noun"] == [0.0] * 20 and s.aued["noun"] == 0.0


def test_the_package_uses_one_levenshtein_library() -> None:
    """Issue 23.10: metrics needed editdistance and the ensemble rapidfuzz; rapidfuzz alone now (editdistance, the
    official scorer's, is the tests' reference only)."""
    import subprocess
    import sys

    code = "import sys, ego4d_lta.challenge.metrics, ego4d_lta.workflow.ensemble; print('editdistance' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
