"""Recognition heads (`model.recognition_weight`): built only when asked, the forecast untouched at weight 0, a loss
that learns, the observed labels in the batches, the val scores in the run's metrics, and old checkpoints still
loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main
from ego4d_lta.config import load_config
from ego4d_lta.data.window_datasets import SEGMENT_LABELS, label_batch, window_labels
from ego4d_lta.models.forecaster import VARIANTS, build_forecaster
from ego4d_lta.runtime.run_log import epoch_line
from ego4d_lta.runtime.training import loss_fn, recognition_loss, training_loss
from tests.test_forecaster import TINY, N, V, random_bank, random_feats, tiny_model_cfg

VIDEO_VARIANTS = [v for v in VARIANTS if v != "labels"]


def build(variant: str, weight: float, seed: int = 0, **kw):
    torch.manual_seed(seed)
    cfg = tiny_model_cfg(variant, recognition_weight=weight, **kw)
    return build_forecaster(cfg, TINY, V, N, random_bank(TINY.clip))


def labelled_batch(b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 1)
    batch = random_feats(b, seed=seed)
    batch["verb"], batch["noun"] = torch.randint(V, (b, 20), generator=g), torch.randint(N, (b, 20), generator=g)
    batch[SEGMENT_LABELS[0]] = torch.randint(V, (b, 8), generator=g)
    batch[SEGMENT_LABELS[1]] = torch.randint(N, (b, 8), generator=g)
    return batch


@pytest.mark.parametrize("variant", VIDEO_VARIANTS)
def test_the_heads_exist_iff_the_weight_is_positive(variant: str) -> None:
    without, with_heads = build(variant, 0.0), build(variant, 0.5)
    assert without.recognition is None and not [k for k in without.state_dict() if k.startswith("recognition.")]
    heads = {k: tuple(v.shape) for k, v in with_heads.state_dict().items() if k.startswith("recognition.")}
    width = with_heads.aggregator.out_dim
    assert heads == {
        "recognition.verb.weight": (V, width),
        "recognition.verb.bias": (V,),
        "recognition.noun.weight": (N, width),
        "recognition.noun.bias": (N,),
    }
    # built last: every other weight starts as it does without heads (same seed)
    shared = {k: v for k, v in with_heads.state_dict().items() if not k.startswith("recognition.")}
    assert shared.keys() == without.state_dict().keys()
    assert all(torch.equal(v, without.state_dict()[k]) for k, v in shared.items())
    with pytest.raises(ValueError, match="no recognition heads"):
        without(random_feats(2), recognise=True)


def test_the_labels_variant_builds_no_heads_and_its_preset_says_so() -> None:
    assert build("labels", 1.0).recognition is None  # its input is the observed labels
    assert load_config("labels").model.recognition_weight == 0.0
    assert load_config("tiny").model.recognition_weight > 0  # the video presets have them by default
    with pytest.raises(UserError, match=r"model\.recognition_weight must be >= 0"):
        load_config("tiny", ["model.recognition_weight=-1"])


def _old_loss(verb_logits, noun_logits, batch, reduction):  # the loss before recognition heads, as it was
    verb = F.cross_entropy(verb_logits.float().flatten(0, 1), batch["verb"].flatten())
    noun = F.cross_entropy(noun_logits.float().flatten(0, 1), batch["noun"].flatten())
    return (verb + noun) * (verb_logits.shape[1] if reduction == "sum" else 1)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_weight_zero_keeps_the_forward_and_the_loss_bit_for_bit(reduction: str) -> None:
    model, batch = build("slowfast_clip", 0.0).eval(), labelled_batch(5)
    agg = model.aggregator  # the forward as it was: fusion -> positions -> encoder -> last token -> decoder
    x = model.fusion(batch)
    old = model.decoder(agg.encoder(agg.position_dropout(x + agg.positions[: x.shape[1]].to(x.dtype)))[:, -1])
    outputs = model(batch)
    assert len(outputs) == 2 and all(torch.equal(a, b) for a, b in zip(outputs, old, strict=True))
    expected = _old_loss(*outputs, batch, reduction)
    assert torch.equal(loss_fn(*outputs, batch, reduction), expected)
    assert torch.equal(training_loss(outputs, batch, reduction, 0.0), expected)
    # with heads, the forecast is the same function of the shared weights, and the loss adds weight x recognition
    heads = build("slowfast_clip", 0.7).eval()
    verb, noun, (rec_verb, rec_noun) = heads(batch, recognise=True)
    assert torch.equal(verb, outputs[0]) and torch.equal(noun, outputs[1])
    assert rec_verb.shape == (5, 8, V) and rec_noun.shape == (5, 8, N)
    total = training_loss((verb, noun, (rec_verb, rec_noun)), batch, reduction, 0.7)
    rec = F.cross_entropy(rec_verb.flatten(0, 1), batch[SEGMENT_LABELS[0]].flatten()) + F.cross_entropy(
        rec_noun.flatten(0, 1), batch[SEGMENT_LABELS[1]].flatten()
    )
    assert torch.allclose(total, expected + 0.7 * rec)


def test_the_heads_recognise_the_last_observed_segments_the_model_reads() -> None:
    model, batch = build("slowfast", 1.0, observed=4).eval(), labelled_batch(3)
    _, _, (verb, noun) = model(batch, recognise=True)
    assert verb.shape == (3, 4, V)
    last4 = {k: batch[k][:, -4:] for k in SEGMENT_LABELS}
    assert torch.equal(recognition_loss(verb, noun, batch), recognition_loss(verb, noun, last4))


def test_the_recognition_loss_falls_in_a_short_training() -> None:
    """Segments whose SlowFast features say their class: a few steps of the joint loss learn to read it."""
    g = torch.Generator().manual_seed(3)
    batch = labelled_batch(32, seed=3)
    codes = torch.randn(V, TINY.slowfast, generator=g) * 3
    batch["slowfast"] = codes[batch[SEGMENT_LABELS[0]]] + torch.randn(32, 8, TINY.slowfast, generator=g)
    batch[SEGMENT_LABELS[1]] = batch[SEGMENT_LABELS[0]] % N
    model = build("slowfast", 1.0)

    def measured() -> float:
        model.eval()
        with torch.no_grad():
            _, _, rec = model(batch, recognise=True)
        model.train()
        return float(recognition_loss(*rec, batch))

    before = measured()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(40):
        loss = training_loss(model(batch, recognise=True), batch, "mean", 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = measured()
    assert after < 0.3 * before, (before, after)


def test_window_labels_carry_the_observed_segments_labels() -> None:
    n = 30
    table = pd.DataFrame(
        {"clip_uid": ["a"] * n, "action_idx": np.arange(n), "verb": np.arange(n) % 5, "noun": np.arange(n) % 7}
    )
    windows = make_windows(table)
    labels = window_labels(windows, table)
    assert np.array_equal(labels.observed_verb, (windows.observed % 5)) and labels.observed_verb.dtype == np.int64
    assert np.array_equal(labels.observed_noun, (windows.observed % 7))
    batch = label_batch(labels, np.array([1, 0]))
    assert torch.equal(batch["segment_verb"], torch.from_numpy(windows.observed[[1, 0]] % 5))
    assert torch.equal(batch["verb"], torch.from_numpy(windows.future[[1, 0]] % 5))
    assert window_labels(windows, table.assign(verb=-1)) is None  # the test split: nothing to learn from


def test_the_epoch_line_shows_the_recognition_scores() -> None:
    entry = {"epoch": 1, "step": 4, "loss": 2.0, "lr": 1e-3, "windows_per_s": 10.0, "seconds": 1.0}
    entry |= {"val": {"verb": 0.5, "noun": 0.6, "action": 0.7}}
    plain = epoch_line(entry, 2, best=False)
    assert "recognised" not in plain
    line = epoch_line({**entry, "val_recognition": {"loss": 3.0, "verb": 0.25, "noun": 0.5}}, 2, best=True)
    assert line == plain + "; recognised verb 0.250 noun 0.500 *best"


def _train(data: Path, run: Path, weight: float, *more: str) -> None:
    sets = ["--set", "train.epochs=1", "--set", f"model.recognition_weight={weight}", "--log", "none", "-q", *more]
    assert main(["train", "--config", "tiny", "--data", str(data), "--run", str(run), *sets]) == 0


def _predict(run: Path, out: Path) -> bytes:
    assert main(["predict", "--split", "val", "--run", str(run), "--out", str(out), "-q"]) == 0
    return out.read_bytes()


def test_a_run_with_heads_logs_them_and_an_old_checkpoint_still_predicts(
    demo_report: dict, demo_dir: Path, tmp_path: Path
) -> None:
    heads, plain = tmp_path / "heads", tmp_path / "plain"
    _train(demo_dir / "data", heads, 1.0)
    [entry] = [json.loads(line) for line in (heads / "metrics.jsonl").read_text().splitlines()]
    seen = entry["val_recognition"]
    assert seen.keys() == {"loss", "verb", "noun"} and seen["loss"] > 0
    assert all(0 <= seen[h] <= 1 for h in ("verb", "noun"))
    assert "recognition.verb.weight" in torch.load(heads / "best.pt", weights_only=True)["model"]
    _predict(heads, tmp_path / "heads.json")

    # a checkpoint from before the fields (no keys: no recognition heads, the 20 heads) loads as weight 0 and the
    # heads decoder, not as today's defaults, and predicts exactly as it did
    _train(demo_dir / "data", plain, 0.0, "--set", "model.decoder='heads'")
    assert "val_recognition" not in json.loads((plain / "metrics.jsonl").read_text())
    old = torch.load(plain / "best.pt", weights_only=True)
    assert not [k for k in old["model"] if k.startswith("recognition.")]
    del old["config"]["model"]["recognition_weight"], old["config"]["model"]["decoder"]
    (tmp_path / "old").mkdir()
    torch.save(old, tmp_path / "old" / "best.pt")
    assert _predict(tmp_path / "old", tmp_path / "old.json") == _predict(plain, tmp_path / "plain.json")
