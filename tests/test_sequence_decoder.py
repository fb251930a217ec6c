"""The sequence decoder (`model.decoder = "sequence"`): a proper distribution over whole sequences, draws that follow
it, greedy decoding, winner-takes-all training, and the product's train -> predict path with it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.metrics import score
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main as cli
from ego4d_lta.config import load_config
from ego4d_lta.models.forecaster import FeatureDims, build_forecaster
from ego4d_lta.models.sequence_decoder import WTA_RELAX, CopySource, PointerGeneratorDecoder, SequenceNLL
from tests.test_labels import SMALL, cycle_data  # noqa: F401 (a fixture)

V, N, SEGMENTS = 3, 2, 4
ACTIONS = list(itertools.product(range(V), range(N)))


def _decoder(seed: int = 0, hypotheses: int = 1) -> tuple[PointerGeneratorDecoder, torch.Tensor]:
    torch.manual_seed(seed)
    decoder = PointerGeneratorDecoder(8, 6, 2, V, N, hypotheses, dropout=0.0).eval()
    with torch.no_grad():
        decoder.gate.bias.fill_(0.3)  # copy and generate both carry mass
    return decoder, torch.randn(1, SEGMENTS, 8)


LABELS = CopySource(torch.tensor([[0, 2, 2, 1]]), torch.tensor([[1, 0, 0, 1]]))  # segments' observed actions


def _soft() -> CopySource:
    g = torch.Generator().manual_seed(1)
    return CopySource(
        torch.log_softmax(torch.randn(1, SEGMENTS, V, generator=g), -1),
        torch.log_softmax(torch.randn(1, SEGMENTS, N, generator=g), -1),
    )


def _probabilities(decoder, tokens, source, steps: int) -> dict[tuple, float]:
    """p(sequence) of every sequence of `steps` actions, from the decoder's teacher-forced NLL."""
    out = {}
    for seq in itertools.product(ACTIONS, repeat=steps):
        targets = (torch.tensor([[a[0] for a in seq]]), torch.tensor([[a[1] for a in seq]]))
        out[seq] = float(torch.exp(-decoder(tokens, source, targets).nll[0, 0].detach()))
    return out


@pytest.mark.parametrize("source", ["labels", "recognised"])
def test_the_sequences_probabilities_sum_to_one(source: str) -> None:
    decoder, tokens = _decoder()
    probs = _probabilities(decoder, tokens, LABELS if source == "labels" else _soft(), 2)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert min(probs.values()) > 0
    # the copied actions carry the pointer's mass: observed (2, 0) (twice) is likelier than never-observed (0, 0)
    if source == "labels":
        first = {a: sum(p for s, p in probs.items() if s[0] == a) for a in ACTIONS}
        unseen = CopySource(torch.full((1, SEGMENTS), -1), torch.full((1, SEGMENTS), -1))
        generated = {
            a: sum(p for s, p in _probabilities(decoder, tokens, unseen, 1).items() if s[0] == a) for a in ACTIONS
        }
        assert first[(2, 0)] - generated[(2, 0)] > first[(0, 1)] - generated[(0, 1)] > 0  # 2 pointers against 1
        assert first[(0, 0)] == pytest.approx(generated[(0, 0)], abs=1e-6)  # never observed: no copy mass


def _draw_frequencies(decoder, tokens, source, pairs, temperature=1.0, top_p=1.0, n=40_000) -> dict[tuple, float]:
    decoder.set_pairs(pairs)
    u = torch.rand(1, n, 1, generator=torch.Generator().manual_seed(2))
    verb, noun = decoder.draw(tokens, source, u, "nucleus", temperature, top_p)
    drawn = list(zip(verb[0, :, 0].tolist(), noun[0, :, 0].tolist(), strict=True))
    return {a: drawn.count(a) / n for a in ACTIONS}


@pytest.mark.parametrize("kind", ["labels", "recognised"])
def test_draws_follow_the_trained_likelihood_and_the_temperature(kind: str) -> None:
    decoder, tokens = _decoder()
    source = LABELS if kind == "labels" else _soft()
    p = {s[0]: v for s, v in _probabilities(decoder, tokens, source, 1).items()}
    everything = torch.tensor(ACTIONS)
    got = _draw_frequencies(decoder, tokens, source, everything)
    assert max(abs(got[a] - p[a]) for a in ACTIONS) < 0.01, (got, p)
    cooled = {a: p[a] ** 2 / sum(q**2 for q in p.values()) for a in ACTIONS}  # temperature 0.5: p^2, renormalised
    got = _draw_frequencies(decoder, tokens, source, everything, temperature=0.5)
    assert max(abs(got[a] - cooled[a]) for a in ACTIONS) < 0.01, (got, cooled)
    ranked = sorted(ACTIONS, key=p.get, reverse=True)
    kept = [a for i, a in enumerate(ranked) if sum(p[b] for b in ranked[:i]) < 0.5]  # the nucleus of mass 0.5
    got = _draw_frequencies(decoder, tokens, source, everything, top_p=0.5)
    for a in ACTIONS:
        want = p[a] / sum(p[b] for b in kept) if a in kept else 0.0
        assert abs(got[a] - want) < 0.01, (a, got, want)


def test_a_copied_action_outside_the_training_pairs_keeps_only_its_copy_mass() -> None:
    decoder, tokens = _decoder(seed=3)
    total = {s[0]: v for s, v in _probabilities(decoder, tokens, LABELS, 1).items()}
    unseen = CopySource(torch.full((1, SEGMENTS), -1), torch.full((1, SEGMENTS), -1))
    generated = {s[0]: v for s, v in _probabilities(decoder, tokens, unseen, 1).items()}  # (1 - g) p_gen alone
    pairs = [a for a in ACTIONS if a != (2, 0)]  # observed twice, never a training pair
    mass = {a: (generated[a] if a in pairs else 0.0) + total[a] - generated[a] for a in ACTIONS}
    want = {a: m / sum(mass.values()) for a, m in mass.items()}
    got = _draw_frequencies(decoder, tokens, LABELS, torch.tensor(pairs))
    assert max(abs(got[a] - want[a]) for a in ACTIONS) < 0.01, (got, want)
    assert got[(0, 0)] == pytest.approx(want[(0, 0)], abs=0.01) and want[(2, 0)] > 0


def test_greedy_takes_the_most_likely_action_at_every_step() -> None:
    decoder, tokens = _decoder(seed=4)
    decoder.set_pairs(torch.tensor(ACTIONS))
    probs = _probabilities(decoder, tokens, LABELS, 2)
    first = max(ACTIONS, key=lambda a: sum(p for s, p in probs.items() if s[0] == a))
    second = max(ACTIONS, key=lambda a: probs[(first, a)])
    verb, noun = decoder.draw(tokens, LABELS, torch.rand(1, 3, 2), "greedy_sample")
    assert [(verb[0, 0, t].item(), noun[0, 0, t].item()) for t in range(2)] == [first, second]


def test_windows_draw_the_same_sequences_in_any_batch() -> None:
    decoder, _ = _decoder()
    decoder.set_pairs(torch.tensor(ACTIONS))
    tokens = torch.randn(5, SEGMENTS, 8, generator=torch.Generator().manual_seed(5))
    source = CopySource(torch.randint(V, (5, SEGMENTS)), torch.randint(N, (5, SEGMENTS)))
    noise = torch.rand(5, 7, Z)
    whole = decoder.draw(tokens, source, noise, "joint_greedy", 0.7)
    part = decoder.draw(tokens[3:], CopySource(source.verb[3:], source.noun[3:]), noise[3:], "joint_greedy", 0.7)
    assert torch.equal(whole[0][3:], part[0]) and torch.equal(whole[1][3:], part[1])


def test_winner_takes_all_counts_the_best_hypothesis_and_a_little_of_the_rest() -> None:
    nll = torch.tensor([[30.0, 10.0, 20.0], [4.0, 8.0, 6.0]])
    want = np.mean([(1 - WTA_RELAX) * 10 + WTA_RELAX * 20, (1 - WTA_RELAX) * 4 + WTA_RELAX * 6])
    assert float(SequenceNLL(nll, 20).loss("sum")) == pytest.approx(want)
    assert float(SequenceNLL(nll, 20).loss("mean")) == pytest.approx(want / 20)
    assert float(SequenceNLL(nll[:, :1], 20).loss("sum")) == pytest.approx(17.0)  # one hypothesis: its own NLL
    # only the winning code gets the (1 - relax) share of the gradient
    decoder, tokens = _decoder(hypotheses=3)
    targets = (torch.tensor([[0, 2]]), torch.tensor([[1, 0]]))
    out = decoder(tokens, LABELS, targets)
    out.loss("sum").backward()
    grads = decoder.codes.grad.norm(dim=1)
    assert int(grads.argmax()) == int(out.nll[0].argmin())


def test_video_variants_copy_through_the_recognition_heads() -> None:
    cfg = load_config("tiny", ["model.decoder='sequence'", "model.recognition_weight=0"])  # no heads: no copies
    torch.manual_seed(0)
    forecaster = build_forecaster(cfg.model, FeatureDims(slowfast=16, clip=8), V, N).eval()
    forecaster.decoder.set_pairs(torch.tensor(ACTIONS))
    with torch.no_grad():
        forecaster.decoder.gate.bias.fill_(30.0)  # a gate all for copying: with nothing to copy, it still generates
    feats = {"slowfast": torch.randn(2, 8, 16), "clip": torch.randn(2, 8, 3, 8)}
    targets = (torch.randint(V, (2, Z)), torch.randint(N, (2, Z)))
    assert forecaster.recognition is None
    verb, noun = forecaster.drawer(feats)(torch.rand(2, 2, 4, Z), "nucleus")
    assert ((verb >= 0) & (verb < V) & (noun >= 0) & (noun < N)).all()
    (nll,) = forecaster(feats, targets=targets)
    assert float(nll.nll.detach().min()) > 20 * 25  # generating costs log(1 + e^30) ~ 30 nats a step: no copy mass
    cfg = load_config("tiny", ["model.decoder='sequence'", "model.sequence_dim=16"])
    torch.manual_seed(0)
    forecaster = build_forecaster(cfg.model, FeatureDims(slowfast=16, clip=8), V, N).eval()
    forecaster.decoder.set_pairs(torch.tensor(ACTIONS))
    feats = {"slowfast": torch.randn(2, 8, 16), "clip": torch.randn(2, 8, 3, 8)}
    with torch.no_grad():  # a recognition head sure that every segment is (2, 1): copies emit (2, 1)
        forecaster.recognition.verb.weight.zero_()
        forecaster.recognition.verb.bias.copy_(torch.tensor([0.0, 0.0, 30.0]))
        forecaster.recognition.noun.weight.zero_()
        forecaster.recognition.noun.bias.copy_(torch.tensor([0.0, 30.0]))
        forecaster.decoder.gate.weight.zero_()
        forecaster.decoder.gate.bias.fill_(30.0)  # always copy
    verb, noun = forecaster.drawer(feats)(torch.rand(2, 2, 4, Z), "nucleus")
    assert (verb == 2).all() and (noun == 1).all()
    (nll,) = forecaster(feats, targets=(torch.full((2, Z), 2), torch.full((2, Z), 1)))
    assert float(nll.nll.detach().max()) < 1e-3  # the copied action is certain


def test_the_labels_preset_with_the_sequence_decoder_learns_the_cycle(cycle_data: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    run = tmp_path / "run"
    sets = [*SMALL, "model.decoder='sequence'", "model.sequence_dim=32", "model.hypotheses=2", "generate.samples=0"]
    argv = ["train", "--config", "labels", "--data", str(cycle_data), "--run", str(run), "--device", "cpu", "-q"]
    assert cli(argv + [a for s in sets for a in ("--set", s)]) == 0
    val, _ = load_annotations(cycle_data / "annotations", "val")
    windows = make_windows(val, include_extra=False)
    truth = [val[h].to_numpy()[windows.future] for h in ("verb", "noun")]
    last = windows.observed[:, -1]
    repeat = [np.broadcast_to(val[h].to_numpy()[last][:, None, None], (len(windows), K, Z)) for h in ("verb", "noun")]
    sub = tmp_path / "val.json"
    predict = ["predict", "--run", str(run), "--split", "val", "--out", str(sub), "--device", "cpu", "-q"]
    assert cli([*predict, "--set", "generate.samples=20"]) == 0  # the set selection draws from the sequence decoder
    capsys.readouterr()
    assert cli(["validate", str(sub), "--data", str(cycle_data), "--split", "val", "--json"]) == 0
    model_ed = json.loads(capsys.readouterr().out)["scores"]["action"]
    assert model_ed < score(*repeat, *truth, N).ed20["action"] - 0.3
    test = tmp_path / "test.json"
    argv = ["predict", "--run", str(run), "--split", "test", "--out", str(test), "--device", "cpu", "-q"]
    assert cli([*argv, "--pool", "8"]) == 0  # the pool for `ensemble` is drawn from the sequence decoder too
    pool = json.loads(test.with_suffix(".pool8.json").read_text())
    assert len(json.loads(test.read_text())) == len(pool) == 4
    assert all(len(entry["verb"]) == 8 for entry in pool.values())


def test_an_unknown_decoder_is_one_line(cycle_data: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    argv = ["train", "--config", "labels", "--data", str(cycle_data), "--run", str(tmp_path / "r"), "--dry-run"]
    assert cli([*argv, "--set", "model.decoder='beam'"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "ego4d-lta train: error: model.decoder 'beam': choose heads or sequence"
    assert not (tmp_path / "r").exists()
