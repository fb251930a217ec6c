"""The `labels` variant (observed (verb, noun) ids in, no clips or cache), recognitions files, joint decoding, the
observed-action prior, and the report's recipe: each config field does what it says."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.metrics import score
from ego4d_lta.challenge.rules import NUM_OBSERVED, K, Z
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main as cli
from ego4d_lta.config import Config, load_config
from ego4d_lta.data.label_windows import action_pairs, load_recognitions, segment_labels
from ego4d_lta.models.decoder import MultiHeadDecoder, generate, sampling_noise
from ego4d_lta.models.forecaster import FeatureDims, build_forecaster
from ego4d_lta.models.fusion import SlowFastPart
from ego4d_lta.runtime.training import loss_fn

V, N = 6, 5
CYCLE = [(0, 0), (1, 2), (2, 4), (3, 1), (4, 3)]
"""Every clip walks this 5-cycle of actions from its own start: repeating the last action or cycling the 8
observed ones is wrong, a model that learns what follows what is right."""


def write_dataset(root: Path, clips: dict[str, dict[str, int]]) -> Path:
    """Annotations in the official layout; `clips[split][uid] = start`; 40 actions per clip (30 on test)."""
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "fho_lta_taxonomy.json").write_text(json.dumps({"verbs": list("abcdef"), "nouns": list("vwxyz")}))
    files = {"train": "fho_lta_train.json", "val": "fho_lta_val.json", "test": "fho_lta_test_unannotated.json"}
    for split, uids in clips.items():
        entries = []
        for uid, start in uids.items():
            for i in range(30 if split == "test" else 40):
                verb, noun = CYCLE[(start + i) % len(CYCLE)]
                entry = {"clip_uid": uid, "action_idx": i, "action_clip_start_sec": 2.0 * i}
                entry["action_clip_end_sec"] = 2.0 * i + 1
                if split != "test":
                    entry |= {"verb_label": verb, "noun_label": noun}
                entries.append(entry)
        (ann / files[split]).write_text(json.dumps({"clips": entries}))
    return root


@pytest.fixture(scope="module")
def cycle_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cycle")
    return write_dataset(
        root,
        {
            "train": {f"train{c:02d}": c for c in range(20)},
            "val": {f"val{c}": c for c in range(5)},
            "test": {"testa": 0, "testb": 3},
        },
    )


SMALL = [
    "train.epochs=6",
    "train.batch_size=32",
    "optim.base_batch=32",
    "optim.lr=3e-3",
    "optim.warmup_steps=10",
    "model.layers=1",
    "model.label_dim=32",
    "model.heads=2",
    "model.ffn_dim=64",
    "train.select_by='verb'",
]


def test_labels_preset_trains_from_annotations_and_predicts_val_and_test(
    cycle_data: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    argv = ["train", "--config", "labels", "--data", str(cycle_data), "--run", str(run), "--device", "cpu", "-q"]
    assert cli(argv + [a for s in SMALL for a in ("--set", s)]) == 0
    assert not (cycle_data / "features").exists()  # no cache was needed
    ckpt = torch.load(run / "best.pt", weights_only=False)
    history = ckpt["state"]["history"]
    assert ckpt["state"]["best"]["epoch"] == 1 + int(np.argmin([h["val"]["verb"] for h in history]))  # select_by
    assert ckpt["model"]["decoder.pairs"].tolist() == [list(p) for p in sorted(CYCLE)]

    val, _ = load_annotations(cycle_data / "annotations", "val")
    windows = make_windows(val, include_extra=False)
    last = windows.observed[:, -1]
    repeat = [np.broadcast_to(val[h].to_numpy()[last][:, None, None], (len(windows), K, Z)) for h in ("verb", "noun")]
    truth = [val[h].to_numpy()[windows.future] for h in ("verb", "noun")]
    repeat_ed = score(*repeat, *truth, N).ed20["action"]
    sub = tmp_path / "val.json"
    predict = ["predict", "--run", str(run), "--split", "val", "--out", str(sub), "--device", "cpu", "-q"]
    assert cli([*predict, "--set", "generate.strategy='joint'"]) == 0
    capsys.readouterr()
    assert cli(["validate", str(sub), "--data", str(cycle_data), "--split", "val", "--json"]) == 0
    model_ed = json.loads(capsys.readouterr().out)["scores"]["action"]
    assert model_ed < repeat_ed - 0.3, (model_ed, repeat_ed)  # it learnt what follows what: repeat-last is ~0.95

    # test: recognitions cover clip testa only; testb's windows get the fallback, with a warning
    recog = tmp_path / "recog.json"
    recog.write_text(json.dumps({f"testa_{i}": {"verb": CYCLE[i % 5][0], "noun": CYCLE[i % 5][1]} for i in range(30)}))
    out = tmp_path / "test.json"
    test = ["predict", "--run", str(run), "--split", "test", "--out", str(out), "--device", "cpu", "-q"]
    assert cli([*test, "--recognitions", str(recog)]) == 0
    err = capsys.readouterr().err
    assert "2 of 4 windows had no features or recognitions (clips testb)" in err
    preds = json.loads(out.read_text())
    after_7 = CYCLE[8 % 5]  # testa's window 7 observed actions 0..7: the next one is CYCLE[8 % 5]
    assert preds["testa_7"]["verb"][0][0] == after_7[0] or preds["testa_7"]["verb"][1][0] == after_7[0]
    assert json.loads(out.with_suffix(".meta.json").read_text())["recognitions"]["windows_covered"] == 2

    # a recognitions file is an input: never written over, and one that covers nothing is refused, not ignored
    for argv in (
        [*test, "--recognitions", str(recog), "--out", str(recog)],
        ["ensemble", str(out), str(sub), "-o", str(recog), "--split", "test", "--data", str(cycle_data)],
    ):
        before = recog.read_bytes()
        assert cli(argv) == 2 and recog.read_bytes() == before
        assert "recog.json" in capsys.readouterr().err
    empty = tmp_path / "empty.json"
    for content in ({}, {"val0_x": {"verb": 0, "noun": 0}}):
        empty.write_text(json.dumps(content))
        assert cli([*predict, "--recognitions", str(empty)]) == 2
        assert (
            "covers no val window's 8 observed segments; keys are '<clip_uid>_<action_idx>'" in capsys.readouterr().err
        )
    # on val a file replaces the annotations whole: a window it does not cover gets the fallback, counted
    val_recog = {f"val0_{i}": {"verb": CYCLE[i % 5][0], "noun": CYCLE[i % 5][1]} for i in range(40)}
    empty.write_text(json.dumps(val_recog))
    assert cli([*predict, "--recognitions", str(empty)]) == 0
    assert "windows had no features or recognitions (clips val1, val2, val3, val4)" in capsys.readouterr().err


def test_recognitions_replace_the_annotations_and_bad_files_are_one_line(cycle_data: Path, tmp_path: Path) -> None:
    table, tax = load_annotations(cycle_data / "annotations", "val")
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"val0_3": {"verb": 5, "noun": 4}, "elsewhere_1": {"verb": 0, "noun": 0}}))
    verb, noun = segment_labels(table, load_recognitions(path, tax))
    row = int(np.flatnonzero((table["clip_uid"] == "val0") & (table["action_idx"] == 3))[0])
    assert (verb[row], noun[row]) == (5, 4)
    others = np.arange(len(table)) != row
    assert (verb[others] == table["verb"].to_numpy()[others]).all()
    for bad, rule in (
        ({"val0_3": {"verb": 6, "noun": 0}}, "'val0_3': verb 6 is not a verb id 0..5"),
        ({"val0_3": {"verb": 1}}, "'val0_3' is"),
        ([1, 2], "top level is"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(UserError, match=rule) as e:
            load_recognitions(path, tax)
        assert str(path) in str(e.value)


def test_joint_decoding_samples_seen_pairs_by_log_p_verb_plus_log_p_noun() -> None:
    g = torch.Generator().manual_seed(0)
    verb_logits, noun_logits = torch.randn(64, Z, V, generator=g), torch.randn(64, Z, N, generator=g)
    pairs = torch.tensor([[0, 1], [2, 2], [5, 0], [3, 4]])
    noise = torch.from_numpy(sampling_noise(0, 64, K, Z))
    verbs, nouns = generate(verb_logits, noun_logits, noise, "joint", pairs=pairs)
    sampled = set(zip(verbs.flatten().tolist(), nouns.flatten().tolist(), strict=True))
    assert sampled <= {tuple(p) for p in pairs.tolist()} and len(sampled) == 4
    independent = generate(verb_logits, noun_logits, noise, "iid")
    assert not set(zip(independent[0].flatten().tolist(), independent[1].flatten().tolist(), strict=True)) <= sampled
    # at a tiny temperature, the argmax of log p(v) + log p(n) over the pair list (brute force over the grid)
    cold, cold_n = generate(verb_logits, noun_logits, noise, "joint", temperature=1e-4, pairs=pairs)
    grid = torch.log_softmax(verb_logits, -1)[..., :, None] + torch.log_softmax(noun_logits, -1)[..., None, :]
    allowed = torch.full((V, N), -torch.inf)
    allowed[pairs[:, 0], pairs[:, 1]] = 0
    best = (grid + allowed).flatten(-2).argmax(-1)  # (B, Z)
    assert torch.equal(cold, (best // N)[:, None].expand(-1, K, -1))
    assert torch.equal(cold_n, (best % N)[:, None].expand(-1, K, -1))
    with pytest.raises(ValueError, match="pairs"):
        generate(verb_logits, noun_logits, noise, "joint")


def test_observed_bonus_pulls_samples_toward_the_observed_actions() -> None:
    verb_logits, noun_logits = torch.zeros(8, Z, V), torch.zeros(8, Z, N)
    pairs = torch.tensor(CYCLE)
    noise = torch.from_numpy(sampling_noise(1, 8, K, Z))
    observed = (torch.full((8, NUM_OBSERVED), 1), torch.full((8, NUM_OBSERVED), 2))  # the pair (1, 2) only
    share = []
    for bonus in (0.0, 3.0):
        v, n = generate(verb_logits, noun_logits, noise, "joint", pairs=pairs, observed=observed, observed_bonus=bonus)
        share.append(float(((v == 1) & (n == 2)).float().mean()))
    assert share[0] < 0.35 and share[1] > 0.75  # uniform: 1/5; with e^3 more weight: ~0.83
    v, n = generate(verb_logits, noun_logits, noise, "iid", observed=observed, observed_bonus=30.0)
    assert (v == 1).all() and (n == 2).all()


def test_the_model_reads_only_the_last_observed_segments() -> None:
    cfg = load_config(
        "labels", ["model.observed=3", "model.label_dim=16", "model.layers=1", "model.decoder='heads'"]
    ).model
    torch.manual_seed(0)
    model = build_forecaster(cfg, FeatureDims(), V, N).eval()
    batch = {"obs_verb": torch.randint(V, (2, 8)), "obs_noun": torch.randint(N, (2, 8))}
    before = model(batch)[0]
    early = {k: v.clone() for k, v in batch.items()}
    early["obs_verb"][:, :5] = (early["obs_verb"][:, :5] + 1) % V  # the 5 oldest: not read
    assert torch.equal(model(early)[0], before)
    late = {k: v.clone() for k, v in batch.items()}
    late["obs_verb"][:, 5] = (late["obs_verb"][:, 5] + 1) % V  # the oldest of the last 3: read
    assert not torch.allclose(model(late)[0], before)


def test_loss_sum_is_z_times_the_mean() -> None:
    g = torch.Generator().manual_seed(0)
    verb, noun = torch.randn(4, Z, V, generator=g), torch.randn(4, Z, N, generator=g)
    batch = {"verb": torch.randint(V, (4, Z), generator=g), "noun": torch.randint(N, (4, Z), generator=g)}
    by_hand = sum(
        torch.nn.functional.cross_entropy(verb[:, z], batch["verb"][:, z])
        + torch.nn.functional.cross_entropy(noun[:, z], batch["noun"][:, z])
        for z in range(Z)
    )
    assert torch.allclose(loss_fn(verb, noun, batch, "sum"), by_hand)
    assert torch.allclose(loss_fn(verb, noun, batch, "mean"), by_hand / Z)


def test_report_recipe_sets_every_row_of_the_table() -> None:
    cfg = load_config("slowfast_clip", ["train.epochs=2"], recipe="report")
    default = Config()
    rows = {
        "generate.strategy": (cfg.generate.strategy, "iid"),
        "generate.temperature": (cfg.generate.temperature, 1.0),
        "model.observed": (cfg.model.observed, 4),
        "train.loss": (cfg.train.loss, "sum"),
        "model.slowfast_input_dropout": (cfg.model.slowfast_input_dropout, 0.5),
        "model.slowfast_standardise": (cfg.model.slowfast_standardise, False),
        "optim": ((cfg.optim.optimizer, cfg.optim.lr, cfg.optim.weight_decay), ("adam", 1e-4, 1e-4)),
        "optim.warmup_steps": (cfg.optim.warmup_steps, 1000),
        "optim.grad_clip": (cfg.optim.grad_clip, 0.0),
        "train.precision": (cfg.train.precision, "fp32"),
        "train.select_by": (cfg.train.select_by, "verb"),
        "model.recognition_weight": (cfg.model.recognition_weight, 0.0),
    }
    assert {k: got for k, (got, _) in rows.items()} == {k: want for k, (_, want) in rows.items()}
    assert cfg.train.epochs == 2 and cfg.model.variant == "slowfast_clip"  # --set still wins, the preset stays
    labels = load_config("labels", recipe="report").generate  # the report's decoder, also over a preset's set selection
    assert (labels.strategy, labels.samples, labels.observed_bonus) == ("iid", 0, 0.0)
    assert (default.generate.strategy, default.model.observed) != ("iid", 4)  # the recipe changed something
    with pytest.raises(UserError, match="--recipe nope: no such recipe; choose from report"):
        load_config("slowfast_clip", recipe="nope")


def test_report_recipe_restores_the_heads_over_a_sequence_decoder_preset(tmp_path: Path) -> None:
    preset = tmp_path / "seq.toml"
    preset.write_text('[model]\nvariant = "labels"\ndecoder = "sequence"\n')
    assert load_config(str(preset)).model.decoder == "sequence"
    assert load_config(str(preset), recipe="report").model.decoder == "heads"


def test_report_slowfast_head_is_dropout_then_linear_on_raw_features() -> None:
    torch.manual_seed(0)
    raw = torch.randn(3, 8, 12) * 5 + 7
    feats = {"slowfast": raw, "slowfast_z": torch.zeros_like(raw)}  # standardised would be all zeros here
    report, default = SlowFastPart(12, 4, dropout=0.5, standardise=False), SlowFastPart(12, 4)
    report.eval()
    assert torch.allclose(report(feats), report.proj(raw))
    assert torch.allclose(default(feats), default.proj.bias.expand(3, 8, 4))
    report.train()
    dropped = report.dropout(torch.ones(10_000))
    assert 0.4 < float((dropped == 0).float().mean()) < 0.6 and float(dropped.max()) == 2.0


def test_decoder_pairs_travel_with_the_state_dict() -> None:
    dec = MultiHeadDecoder(8, Z, V, N, 0.0)
    dec.set_pairs(torch.tensor(CYCLE))
    fresh = MultiHeadDecoder(8, Z, V, N, 0.0)
    fresh.load_state_dict(dec.state_dict())
    assert fresh.pairs.tolist() == [list(p) for p in CYCLE]
    old = {k: v for k, v in dec.state_dict().items() if k != "pairs"}  # a checkpoint from before joint decoding
    fresh.load_state_dict(old)
    assert fresh.pairs.shape == (0, 2)


def test_action_pairs_are_the_distinct_labelled_pairs(cycle_data: Path) -> None:
    table, _ = load_annotations(cycle_data / "annotations", "train")
    assert action_pairs(table).tolist() == [list(p) for p in sorted(CYCLE)]


def test_observed_copy_adds_learned_weight_to_the_observed_classes() -> None:
    cfg = load_config(
        "labels", ["model.observed=2", "model.label_dim=16", "model.layers=1", "model.decoder='heads'"]
    ).model
    torch.manual_seed(0)
    model = build_forecaster(cfg, FeatureDims(), V, N).eval()
    batch = {"obs_verb": torch.tensor([[0, 0, 0, 0, 0, 0, 1, 2]]), "obs_noun": torch.tensor([[0, 0, 0, 0, 0, 0, 3, 3]])}
    before = model(batch)
    with torch.no_grad():
        model.copy.weight[0, :, 1] = 0.2  # verb: copy the last segment's class (2), x GAIN = +2 logits
        model.copy.weight[1, 4, :] = 0.1  # noun at z = 5: both read segments say noun 3, +1 each
    after = model(batch)
    verb_gain, noun_gain = after[0] - before[0], after[1] - before[1]
    assert torch.allclose(verb_gain[0, :, 2], torch.full((Z,), 2.0))
    assert verb_gain[0, :, [0, 1, 3, 4, 5]].abs().max() < 1e-6
    assert torch.allclose(noun_gain[0, 4, 3], torch.tensor(2.0))
    assert float(noun_gain.detach().abs().sum()) == pytest.approx(2.0)
    with pytest.raises(UserError, match="copy_observed needs a variant with the labels part"):
        build_forecaster(load_config("slowfast", ["model.copy_observed=true"]).model, FeatureDims(), V, N)


def test_the_dry_run_refuses_what_the_real_run_would(cycle_data: Path, tmp_path: Path, capsys) -> None:
    """`train --dry-run` checks the loggers' packages and the device as the real run does, before its plan."""
    base = ["train", "--config", "labels", "--data", str(cycle_data), "--run", str(tmp_path / "r"), "--dry-run"]
    assert cli(base) == 0 and "nothing written" in capsys.readouterr().out
    cases = []
    if importlib.util.find_spec("wandb") is None:  # an optional extra
        cases.append((["--log", "wandb"], "--log wandb: the wandb package is not installed"))
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "--device cuda: CUDA is not available on this machine"))
    for extra, message in cases:
        assert cli([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_a_vanishing_nucleus_keeps_the_top_class() -> None:
    """top_p below float32's smallest number (1e-300 rounds to 0 against the probabilities) cut every class and
    indexed class -1; the top class always stays, so the draw is the argmax."""
    from ego4d_lta.models.decoder import sample_sequences

    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, Z, V, generator=g)
    noise = torch.rand(4, K, Z, generator=g)
    ids = sample_sequences(logits, noise, "nucleus", 1.0, 1e-300)
    assert torch.equal(ids, logits.argmax(-1)[:, None].expand(-1, K, -1))
