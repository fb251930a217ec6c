"""Reference predictors scored by the same code as the model: what a forecaster has to beat."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ego4d_lta.challenge.annotations import Taxonomy
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.windows import Windows

BASELINES = ("random", "majority", "repeat_last")


def random_baseline(windows: Windows, taxonomy: Taxonomy, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random verb and noun ids, K independent sequences per window."""
    rng = np.random.default_rng(seed)
    n = len(windows)
    return rng.integers(taxonomy.num_verbs, size=(n, K, Z)), rng.integers(taxonomy.num_nouns, size=(n, K, Z))


def most_frequent_action(train: pd.DataFrame) -> tuple[int, int]:
    """The training set's most frequent (verb, noun): also the model's prediction for windows without inputs."""
    verb, noun = train.groupby(["verb", "noun"]).size().idxmax()
    return int(verb), int(noun)


def majority_baseline(windows: Windows, train: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The training set's most frequent (verb, noun) action, repeated Z times in all K sequences."""
    verb, noun = most_frequent_action(train)
    n = len(windows)
    return np.full((n, K, Z), verb, np.int64), np.full((n, K, Z), noun, np.int64)


def repeat_last_baseline(windows: Windows, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The last observed segment's ground-truth action, repeated (needs a labelled split)."""
    last = windows.observed[:, -1]
    verb = table["verb"].to_numpy()[last]
    noun = table["noun"].to_numpy()[last]
    if (verb < 0).any():
        raise ValueError("repeat_last needs ground-truth labels of the observed segments")
    shape = (len(windows), K, Z)
    return np.broadcast_to(verb[:, None, None], shape).copy(), np.broadcast_to(noun[:, None, None], shape).copy()


def baseline_predictions(
    name: str, windows: Windows, table: pd.DataFrame, train: pd.DataFrame, taxonomy: Taxonomy, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(verb, noun) (n, K, Z) predictions of the named baseline."""
    if name == "random":
        return random_baseline(windows, taxonomy, seed)
    if name == "majority":
        return majority_baseline(windows, train)
    if name == "repeat_last":
        return repeat_last_baseline(windows, table)
    raise ValueError(f"unknown baseline {name!r}: expected one of {', '.join(BASELINES)}")
