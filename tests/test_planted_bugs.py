"""Expectations computed independently of the code under test, so a one-line bug cannot pass by agreeing with itself:
sampling statistics against hand-computed softmax probabilities, the fallback action counted from the raw annotation
file, the pool's samples against the submission's. Each test here failed with its bug planted (see the docstrings).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ego4d_lta.challenge.baselines import most_frequent_action
from ego4d_lta.challenge.rules import SPLIT_FILES, K, Z
from ego4d_lta.config import GenerateConfig
from ego4d_lta.models.decoder import generate, sample_sequences, sampling_noise
from ego4d_lta.runtime.inference import predict_windows

SAMPLES = 1000  # sequences per test: 20 000 draws per head, a class frequency's standard error below 0.004


def _frequencies(ids: torch.Tensor, classes: int) -> np.ndarray:
    return np.bincount(ids.flatten().numpy(), minlength=classes) / ids.numel()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sampled_class_frequencies_follow_the_tempered_softmax(temperature: float) -> None:
    """Planted: `sample_sequences` ignoring `temperature` (frequencies then follow softmax(logits) at every T)."""
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0]).expand(1, Z, 4)
    noise = torch.from_numpy(sampling_noise(0, 1, SAMPLES, Z)[:, 0])
    ids = sample_sequences(logits, noise, "nucleus", temperature=temperature)
    expected = np.exp(np.array([2.0, 1.0, 0.0, -1.0]) / temperature)
    expected /= expected.sum()
    np.testing.assert_allclose(_frequencies(ids, 4), expected, atol=0.015)


def test_verb_and_noun_samples_are_independent_draws() -> None:
    """Planted: the noun head drawing from the verb head's noise (`generate`): with 4 verbs and 6 nouns equally
    likely the pair (v, n) then follows u -> (floor(4u), floor(6u)): 9 of the 24 pairs never occur."""
    verb_logits, noun_logits = torch.zeros(1, Z, 4), torch.zeros(1, Z, 6)
    noise = torch.from_numpy(sampling_noise(0, 1, SAMPLES, Z))
    verbs, nouns = generate(verb_logits, noun_logits, noise, "iid")
    joint = np.bincount((verbs * 6 + nouns).flatten().numpy(), minlength=24) / verbs.numel()
    np.testing.assert_allclose(joint, np.full(24, 1 / 24), atol=0.008)  # independent and uniform: 1/4 x 1/6
    np.testing.assert_allclose(_frequencies(verbs, 4), np.full(4, 1 / 4), atol=0.015)
    np.testing.assert_allclose(_frequencies(nouns, 6), np.full(6, 1 / 6), atol=0.015)


class Uniform(nn.Module):
    """Every class equally likely at every position: the samples are the noise, nothing else."""

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        b = batch["available"].shape[0]
        return torch.zeros(b, Z, 50), torch.zeros(b, Z, 60)


class Windows:
    """A split of `n` windows; those in `missing` have no features."""

    def __init__(self, n: int, missing: set[int]) -> None:
        self.n, self.missing = n, missing

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, indices) -> dict[str, torch.Tensor]:
        return {"available": torch.tensor([i not in self.missing for i in indices])}


def test_pool_samples_are_new_draws_not_the_submissions_again() -> None:
    """Planted: the pool's extra samples reusing the submission's noise seed (`inference.py`): then the pool's
    first K sequences of window 0 repeat the submission's exactly. Two independent sequences of 20 draws from 50
    classes agree with probability 50**-20: any repeat is the bug."""
    preds = predict_windows(Uniform(), Windows(24, set()), GenerateConfig(strategy="iid"), (0, 0), torch.device("cpu"),
                            batch_size=8, pool=12)  # fmt: skip
    for w in range(24):
        submitted = {tuple(s) for s in preds.verb[w]} | {tuple(s) for s in preds.noun[w]}
        pooled = {tuple(s) for s in preds.pool_verb[w]} | {tuple(s) for s in preds.pool_noun[w]}
        assert not submitted & pooled, f"window {w}: the pool repeats a submitted sequence"
    same = (preds.pool_verb[:, :K] == preds.verb).mean()
    assert same < 0.05  # position-wise agreement of independent uniform draws: 1/50


def test_windows_without_features_get_the_fallback_verb_and_noun_in_their_place() -> None:
    """Planted: verb and noun swapped where the fallback is applied; ids 3 and 7 are valid for both heads here."""
    missing = {1, 4, 5}
    preds = predict_windows(Uniform(), Windows(8, missing), GenerateConfig(), (3, 7), torch.device("cpu"),
                            batch_size=3, pool=6)  # fmt: skip
    rows = sorted(missing)
    assert (preds.verb[rows] == 3).all() and (preds.noun[rows] == 7).all()
    assert (preds.pool_verb[rows] == 3).all() and (preds.pool_noun[rows] == 7).all()
    assert preds.fallback.tolist() == [i in missing for i in range(8)]


def test_the_fallback_is_the_most_frequent_pair_counted_by_hand() -> None:
    """Planted: `idxmin` (the least frequent pair) or (noun, verb) returned in `most_frequent_action`."""
    pairs = [(2, 1)] * 3 + [(1, 2)] * 2 + [(0, 0), (5, 4), (2, 4)]
    table = pd.DataFrame(pairs, columns=["verb", "noun"])
    assert most_frequent_action(table) == (2, 1)


def test_demo_missing_video_windows_hold_the_training_sets_most_frequent_action(
    demo_report: dict, demo_dir: Path
) -> None:
    """End to end: the fallback in the demo's test submission is the (verb, noun) pair counted in the raw train
    annotation file, verb in the verb lists and noun in the noun lists."""
    train = json.loads((demo_dir / "data" / "annotations" / SPLIT_FILES["train"]).read_text())
    (verb, noun), _ = Counter((e["verb_label"], e["noun_label"]) for e in train["clips"]).most_common(1)[0]
    info = json.loads((demo_dir / "data" / "synthetic.json").read_text())
    broken = set(info["missing_videos"]) | set(info["corrupt_videos"])
    submission = json.loads(Path(demo_report["submission"]).read_text())
    fallback = {k: v for k, v in submission.items() if k.rsplit("_", 1)[0] in broken}
    assert fallback
    for entry in fallback.values():
        assert entry["verb"] == [[verb] * Z] * K and entry["noun"] == [[noun] * Z] * K
