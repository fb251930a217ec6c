"""K as a set: the observed-action candidates, the choice from a pool of model samples and replays, and its
reproducibility through `predict_windows`."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.rules import NUM_OBSERVED, K, Z
from ego4d_lta.challenge.selection import observed_candidates, pair_distances
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.config import GenerateConfig, load_config
from ego4d_lta.data.label_windows import LabelWindows
from ego4d_lta.models.decoder import heads_drawer
from ego4d_lta.models.forecaster import FeatureDims, ForecastingModel, build_forecaster
from ego4d_lta.runtime.inference import choose_set, predict_windows
from tests.test_labels import CYCLE, N, V, cycle_data  # noqa: F401 (a fixture)


def test_observed_candidates_replay_the_observed_actions_in_order() -> None:
    rng = np.random.default_rng(0)
    obs_verb, obs_noun = rng.integers(0, 50, (3, NUM_OBSERVED)), rng.integers(0, 50, (3, NUM_OBSERVED))
    verb, noun = observed_candidates(obs_verb, obs_noun, ["rotations", "repeat_last"], Z)
    assert verb.shape == noun.shape == (3, NUM_OBSERVED + 1, Z)
    for w, j, z in itertools.product(range(3), range(NUM_OBSERVED), range(Z)):
        assert verb[w, j, z] == obs_verb[w, (j + z) % NUM_OBSERVED]  # rotation j starts at observed j and cycles
        assert noun[w, j, z] == obs_noun[w, (j + z) % NUM_OBSERVED]
    assert (verb[:, -1] == obs_verb[:, -1:]).all() and (noun[:, -1] == obs_noun[:, -1:]).all()
    only_last = observed_candidates(obs_verb, obs_noun, ["repeat_last"], Z)[0]
    assert only_last.shape == (3, 1, Z) and (only_last[:, 0] == obs_verb[:, -1:]).all()
    with pytest.raises(UserError, match=r"generate.candidates .*unknown 'cycles'; choose from rotations, repeat_last"):
        observed_candidates(obs_verb, obs_noun, ["rotations", "cycles"], Z)


def _peaked(windows: int, verb: int, noun: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits sure of (verb, noun) at every future position."""
    verb_logits, noun_logits = torch.zeros(windows, Z, V), torch.zeros(windows, Z, N)
    verb_logits[..., verb] = noun_logits[..., noun] = 12.0
    return verb_logits, noun_logits


def test_the_set_follows_the_weight_between_the_model_and_the_observed_replays() -> None:
    observed = (torch.tensor([[0, 1, 2, 4, 5, 0, 1, 2]] * 4), torch.tensor([[0, 2, 4, 3, 0, 3, 4, 2]] * 4))  # 8 actions
    verb_logits, noun_logits = _peaked(4, 3, 1)  # the model is sure of (3, 1), never observed
    drawn = (torch.zeros(4, K, Z, dtype=torch.long), torch.zeros(4, K, Z, dtype=torch.long))  # a candidate only
    pairs = torch.tensor(CYCLE)
    replays = observed_candidates(observed[0].numpy(), observed[1].numpy(), ["rotations", "repeat_last"], Z)
    replayed = {(tuple(v), tuple(n)) for v, n in zip(replays[0][0], replays[1][0], strict=True)}
    sets = {}
    for weight in (0.0, 0.9):
        gen = GenerateConfig(samples=16, observed_weight=weight)
        draw = heads_drawer(verb_logits, noun_logits, pairs)
        verb, noun = choose_set(draw, drawn, observed, gen, list(range(4)))
        assert verb.shape == noun.shape == (4, K, Z)
        sets[weight] = [
            {(tuple(v), tuple(n)) for v, n in zip(verb[w].tolist(), noun[w].tolist(), strict=True)} for w in range(4)
        ]
    mode = (tuple([3] * Z), tuple([1] * Z))
    assert all(mode in s for s in sets[0.0])  # only the model's samples are evidence: its sure sequence is chosen
    # the replays carry the weight: 4 or 5 of the set are replays (near neighbours, rotations are 2 edits apart
    # per head, so covering the far-away mode can still be worth a slot)
    assert all(len(s & replayed) >= 4 and len(s) == K for s in sets[0.9])
    assert all(len(s & replayed) < len(t & replayed) for s, t in zip(sets[0.0], sets[0.9], strict=True))


def test_the_chosen_set_is_optimal_on_a_pool_small_enough_to_enumerate() -> None:
    """Against the brute-force best K of the pool under the expected best-of-K distance to the model's samples."""
    g = torch.Generator().manual_seed(3)
    verb_logits, noun_logits = torch.randn(3, Z, V, generator=g), torch.randn(3, Z, N, generator=g)
    observed = (torch.randint(V, (3, NUM_OBSERVED), generator=g), torch.randint(N, (3, NUM_OBSERVED), generator=g))
    drawn = (torch.randint(V, (3, K, Z), generator=g), torch.randint(N, (3, K, Z), generator=g))
    gen = GenerateConfig(strategy="iid", samples=3, observed_weight=0.5, candidates=["repeat_last"])
    verb, noun = choose_set(heads_drawer(verb_logits, noun_logits), drawn, observed, gen, [0, 1, 2], joint=False)
    # the pool: the drawn 5 (weight 0), the 3 samples (0.5 / 3), repeat-last (0.5); rebuild the samples' part
    from ego4d_lta.models.decoder import generate
    from ego4d_lta.runtime.inference import window_noise

    sampled = generate(verb_logits, noun_logits, window_noise(0, [0, 1, 2], 3), "nucleus", 1.0)
    last = (observed[0][:, -1:, None].expand(-1, 1, Z), observed[1][:, -1:, None].expand(-1, 1, Z))
    pool_v = torch.cat([drawn[0], sampled[0], last[0]], 1).numpy()
    pool_n = torch.cat([drawn[1], sampled[1], last[1]], 1).numpy()
    weights = np.array([0] * K + [0.5 / 3] * 3 + [0.5])
    dist = pair_distances(pool_v, pool_n, N)
    for w in range(3):
        cost = {c: (dist[w, list(c)].min(0) * weights).sum() for c in itertools.combinations(range(9), K)}
        best = min(cost.values())
        chosen = [
            next(i for i in range(9) if (pool_v[w, i] == v).all() and (pool_n[w, i] == n).all())
            for v, n in zip(verb[w].numpy(), noun[w].numpy(), strict=True)
        ]
        assert cost[tuple(sorted(chosen))] <= best + 1e-9


def test_predictions_with_set_selection_do_not_depend_on_the_batch(cycle_data: Path) -> None:  # noqa: F811
    cfg = load_config("labels", ["model.label_dim=16", "model.layers=1", "model.heads=2", "model.ffn_dim=32"])
    torch.manual_seed(0)
    forecaster = build_forecaster(cfg.model, FeatureDims(), V, N)
    forecaster.decoder.set_pairs(torch.tensor(CYCLE))
    model = ForecastingModel(forecaster)
    table, _ = load_annotations(cycle_data / "annotations", "val")
    dataset = LabelWindows(table, make_windows(table, include_extra=True), None, None)
    gen = GenerateConfig(strategy="joint_greedy", samples=12, observed_weight=0.4)
    runs = [predict_windows(model, dataset, gen, (0, 0), torch.device("cpu"), b) for b in (3, 64)]
    assert np.array_equal(runs[0].verb, runs[1].verb) and np.array_equal(runs[0].noun, runs[1].noun)
    plain = predict_windows(model, dataset, GenerateConfig(strategy="joint_greedy"), (0, 0), torch.device("cpu"), 64)
    assert not np.array_equal(plain.verb, runs[0].verb)  # the set selection changed what is written
