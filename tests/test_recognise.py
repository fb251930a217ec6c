"""`ego4d-lta recognise` (issue 22, items 2, 3 and 5): a per-segment recogniser from a feature cache alone, train
recognitions by k-fold cross-fitting, recognitions with top-k probabilities, and the bottom-up chain to a test
submission, on the synthetic no-video data with an Ego4D-style feature download."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.annotations import load_annotations, load_taxonomy, taxonomy_path
from ego4d_lta.cli import main as cli
from ego4d_lta.data.feature_cache import FeatureCache, ShardWriter
from ego4d_lta.data.feature_record import CacheManifest, ClipFeatures, FeatureRecord, SlowFastFeatures
from ego4d_lta.data.label_windows import load_recognitions
from ego4d_lta.data.segment_features import segment_features
from ego4d_lta.models.recogniser import RecogniserSpec
from ego4d_lta.runtime.recognition import FitSettings, accuracies, class_probabilities, fit_recogniser
from ego4d_lta.stages.synth import SynthConfig, generate
from ego4d_lta.stages.synth.features import download_dir

RELEASED = "slowfast8x8_r101_k400"
FOLDS = 3
SEED = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic annotations (no videos) and the three splits' caches imported from their Ego4D-style download."""
    out = tmp_path_factory.mktemp("recognise") / "data"
    generate(out, SynthConfig(videos=False, features_like_ego4d=True), workers=1)
    for split in ("train", "val", "test"):
        args = ["import-features", "--split", split, "--data", str(out), "--ego4d-features", str(download_dir(out))]
        assert cli([*args, "-q"]) == 0
    return out


def _recognise(data: Path, run: Path, *extra: str) -> int:
    return cli(["recognise", "--data", str(data), "--set", f"data.released={RELEASED}", "--run", str(run), *extra])


@pytest.fixture(scope="module")
def recognised(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of `recognise --split train val test --folds 3` (seed 4)."""
    run = tmp_path_factory.mktemp("runs") / "recogniser"
    assert _recognise(data, run, "--split", "train", "val", "test", "--folds", str(FOLDS), "--seed", str(SEED)) == 0
    return run


def test_val_accuracy_is_far_above_the_majority_class_and_the_report_says_it(
    data: Path, recognised: Path, capsys: pytest.CaptureFixture
) -> None:
    report = json.loads((recognised / "report.json").read_text())
    val, majority = report["val"], report["val"]["majority"]
    table, tax = load_annotations(data / "annotations", "val")
    recognitions = load_recognitions(recognised / "recognitions.json", tax)
    found = np.array([recognitions.actions[f"{u}_{a}"] for u, a in zip(table.clip_uid, table.action_idx, strict=True)])
    # the file's top-1 ids scored here against the annotations: what the report claims
    assert val["verb_top1"] == pytest.approx(float((found[:, 0] == table.verb.to_numpy()).mean()))
    assert val["noun_top1"] == pytest.approx(float((found[:, 1] == table.noun.to_numpy()).mean()))
    assert majority["verb"] == pytest.approx(
        float((table.verb == load_annotations(data / "annotations", "train")[0].verb.mode()[0]).mean())
    )
    for head in ("verb", "noun", "action"):
        assert val[f"{head}_top1"] > majority[head] + 0.3
        assert val[f"{head}_top5"] >= val[f"{head}_top1"]
    assert val["segments"] == len(table)
    assert len(report["history"]) == report["fit"]["epochs"] and report["history"][-1] < report["history"][0]


def test_every_segment_is_recognised_with_its_top_k_in_a_file_load_recognitions_reads(
    data: Path, recognised: Path
) -> None:
    tax = load_taxonomy(taxonomy_path(data / "annotations"))
    recognitions = load_recognitions(recognised / "recognitions.json", tax)
    keys = set()
    for split in ("train", "val", "test"):
        table, _ = load_annotations(data / "annotations", split)
        keys |= {f"{u}_{a}" for u, a in zip(table.clip_uid, table.action_idx, strict=True)}
    assert set(recognitions.actions) == keys == set(recognitions.topk)
    for key, (verb, noun) in recognitions.actions.items():
        ranked = recognitions.topk[key]
        assert ranked["verb"][0][0] == verb and ranked["noun"][0][0] == noun
        assert len(ranked["verb"]) == len(ranked["noun"]) == 5


def _folds_by_hand(train: pd.DataFrame, folds: int, seed: int) -> dict[str, int]:
    """The documented rule, written out again: videos sorted, shuffled by the seed, dealt round-robin."""
    videos = sorted(set(train.video_uid))
    order = np.random.default_rng(seed).permutation(len(videos))
    return {videos[j]: rank % folds for rank, j in enumerate(order)}


def test_no_train_segment_is_recognised_by_a_recogniser_that_saw_its_clip(data: Path, recognised: Path) -> None:
    report = json.loads((recognised / "report.json").read_text())
    train, tax = load_annotations(data / "annotations", "train")
    assignment = _folds_by_hand(train, FOLDS, SEED)
    assert report["folds"]["assignment"] == assignment and report["folds"]["by"] == "video"
    fold = train.video_uid.map(assignment).to_numpy()
    assert set(fold) == set(range(FOLDS))
    # every clip lies in one fold, so the recogniser without that fold never saw the clip (or any of its video)
    assert (train.groupby("clip_uid").video_uid.nunique() == 1).all()
    cache = FeatureCache.open(data / "features" / f"ego4d-{RELEASED}" / "train")
    x = cache.gather(cache.positions(list(zip(train.clip_uid, train.action_idx, strict=True))), "slowfast")
    verb, noun = train.verb.to_numpy(), train.noun.to_numpy()
    spec = RecogniserSpec(x.shape[1], tax.num_verbs, tax.num_nouns)
    settings = FitSettings(**report["fit"])
    recognitions = load_recognitions(recognised / "recognitions.json", tax)
    keys = [f"{u}_{a}" for u, a in zip(train.clip_uid, train.action_idx, strict=True)]
    written = np.array([[p for _, p in recognitions.topk[k]["verb"]] for k in keys])
    seen, _ = fit_recogniser(x, verb, noun, spec, settings)  # one that saw every clip
    for f in range(FOLDS):
        held = fold == f
        model, _ = fit_recogniser(x[~held], verb[~held], noun[~held], spec, settings)
        pv, _ = class_probabilities(model, x[held])
        mine = np.sort(pv, axis=1)[:, ::-1][:, :5]
        assert np.allclose(written[held], mine, atol=2e-6), f"fold {f}: not the recogniser trained without it"
        pv_seen, _ = class_probabilities(seen, x[held])
        assert not np.allclose(written[held], np.sort(pv_seen, axis=1)[:, ::-1][:, :5], atol=2e-6)


def test_the_bottom_up_chain_gives_a_valid_key_complete_test_submission(
    data: Path, recognised: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    recognitions = str(recognised / "recognitions.json")
    run = str(tmp_path / "labels")
    sets = ["--set", f"data.recognitions={recognitions}", "--set", "train.batch_size=32", "--set", "train.epochs=2"]
    assert cli(["train", "--config", "labels", "--data", str(data), "--run", run, *sets, "-q", "--log", "none"]) == 0
    out = tmp_path / "labels-test.json"
    predict = ["predict", "--split", "test", "--run", run, "--data", str(data), "--out", str(out), "-q"]
    assert cli([*predict, "--recognitions", recognitions]) == 0
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["recognitions"]["windows_covered"] == meta["recognitions"]["windows"] > 0
    capsys.readouterr()
    assert cli(["validate", str(out), "--data", str(data), "--split", "test"]) == 0
    assert "valid test submission" in capsys.readouterr().out


def test_the_same_seed_writes_the_same_file(data: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert _recognise(data, tmp_path / name, "--split", "val", "--epochs", "2", "-q") == 0
    assert (tmp_path / "a" / "recognitions.json").read_bytes() == (tmp_path / "b" / "recognitions.json").read_bytes()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--split", "train"], "--split train: the train split's recognitions must come from recognisers"),
        (["--split", "val", "--folds", "3"], "--folds 3 cross-fits the train split's recognitions: add --split train"),
        (["--split", "train", "--folds", "9"], "--folds 9: the train split has only 5 videos"),
        (["--set", "model.layers=2"], "recognise takes data.* settings only"),
        (["--set", "data.released=omnivore_video_swinl"], "no imported features for train"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    assert _recognise(data, tmp_path / "run", *extra, "-q") == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "recognitions.json").exists()


def test_outputs_never_replace_an_input_or_a_forecaster_run(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    taxonomy = data / "annotations" / "fho_lta_taxonomy.json"
    before = taxonomy.read_bytes()
    assert _recognise(data, tmp_path / "run", "--out", str(taxonomy), "-q") == 2
    assert "is one of this command's inputs" in capsys.readouterr().err and taxonomy.read_bytes() == before
    forecaster = tmp_path / "forecaster"
    forecaster.mkdir()
    (forecaster / "last.pt").write_bytes(b"x")
    assert _recognise(data, forecaster, "-q") == 2
    assert "holds a forecaster run (last.pt)" in capsys.readouterr().err


def test_accuracies_count_top_1_top_k_and_the_likeliest_pairs() -> None:
    """Worked by hand: row 0's verb is only second, row 1's noun ties and loses to the lower id; the action's top-2
    pairs under p(verb) p(noun) are (0, 0), (0, 1) for row 0 and (1, 0), (1, 1) for row 1."""
    pv = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    pn = np.array([[0.6, 0.4], [0.5, 0.5]])
    found = accuracies(pv, pn, np.array([1, 1]), np.array([0, 1]), k=2)
    assert found == {
        "segments": 2,
        "verb_top1": 0.5,
        "verb_top2": 1.0,
        "noun_top1": 0.5,
        "noun_top2": 1.0,
        "action_top1": 0.0,
        "action_top2": 0.5,
    }


# -- the file format -------------------------------------------------------------------------------------------


def test_old_two_field_entries_are_still_read(data: Path, tmp_path: Path) -> None:
    tax = load_taxonomy(taxonomy_path(data / "annotations"))
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"c_0": {"verb": 1, "noun": 2}, "c_1": {"noun": 0, "verb": 9}}))
    recognitions = load_recognitions(path, tax)
    assert recognitions.actions == {"c_0": (1, 2), "c_1": (9, 0)} and recognitions.topk == {}


GOOD = {"verb": 1, "noun": 2, "verb_topk": [[1, 0.7], [0, 0.2]], "noun_topk": [[2, 0.5], [3, 0.5]]}


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"verb_topk": [[1, 0.2], [0, 0.7]]}, "verb_topk: probabilities are not sorted"),
        ({"verb_topk": [[1, 1.5]]}, "verb_topk: a probability is not a finite number in [0, 1]"),
        ({"noun_topk": [[2, -0.1]]}, "noun_topk: a probability is not a finite number in [0, 1]"),
        ({"noun_topk": [[2, "0.5"]]}, "noun_topk: a probability is not a finite number in [0, 1]"),
        ({"verb_topk": [[1, 0.7], [10, 0.2]]}, "verb_topk: 10 is not a verb id 0..9 of the taxonomy"),
        ({"verb_topk": [[1, 0.5], [1, 0.4]]}, "verb_topk: repeats an id"),
        ({"verb_topk": [[0, 0.7], [1, 0.2]]}, "verb_topk: starts with 0, but the entry's verb (its top-1) is 1"),
        ({"noun_topk": [[2, 0.6], [3, 0.6]]}, "noun_topk: probabilities of distinct nouns sum to 1.2000 > 1"),
        ({"noun_topk": []}, "noun_topk is a list, expected a non-empty list of [id, probability] pairs"),
        ({"noun_topk": [[2, 0.5, 1]]}, "noun_topk is a list, expected a non-empty list of [id, probability] pairs"),
        ({"noun_topk": {"2": 0.5}}, "noun_topk is an object, expected a non-empty list"),
        ({"verb_probability": 0.9}, 'expected {"verb": id, "noun": id} (optionally "verb_topk"'),
    ],
)
def test_a_broken_top_k_field_is_refused_in_one_line_naming_file_key_and_rule(
    data: Path, tmp_path: Path, change: dict, rule: str
) -> None:
    tax = load_taxonomy(taxonomy_path(data / "annotations"))
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"c_0": GOOD, "c_1": GOOD | change}))
    with pytest.raises(UserError) as e:
        load_recognitions(path, tax)
    message = str(e.value)
    assert rule in message and str(path) in message and "'c_1'" in message and "\n" not in message


def test_a_good_top_k_file_is_read_with_its_probabilities(data: Path, tmp_path: Path) -> None:
    tax = load_taxonomy(taxonomy_path(data / "annotations"))
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"c_0": GOOD, "c_1": {"verb": 3, "noun": 4, "noun_topk": [[4, 1]]}}))
    recognitions = load_recognitions(path, tax)
    assert recognitions.topk["c_0"] == {"verb": ((1, 0.7), (0, 0.2)), "noun": ((2, 0.5), (3, 0.5))}
    assert recognitions.topk["c_1"] == {"noun": ((4, 1.0),)} and recognitions.actions["c_1"] == (3, 4)


# -- the features a recogniser reads ---------------------------------------------------------------------------


def test_segment_features_join_every_array_with_clip_frames_mean_pooled(tmp_path: Path) -> None:
    manifest = CacheManifest(
        FeatureRecord(SlowFastFeatures("tiny", "0" * 64, 3), ClipFeatures("tiny", "1" * 64, None, 2, 4, 64), {}),
        split="val",
        annotations_sha256="2" * 64,
    )
    index = pd.DataFrame(
        [("a", i, 0, float(i), i + 1.0) for i in range(3)],
        columns=["clip_uid", "action_idx", "view", "start_sec", "end_sec"],
    )
    rng = np.random.default_rng(0)
    slowfast = rng.normal(size=(3, 3)).astype(np.float16)
    clip = rng.normal(size=(3, 4, 2)).astype(np.float16)
    writer = ShardWriter.open(tmp_path / "val", manifest, (0, 1), index, {"slowfast": (3,), "clip": (4, 2)})
    writer.write(np.arange(3), {"slowfast": slowfast, "clip": clip})
    writer.clip_finished("a", unusable={1: "no rows"})
    writer.finish()
    table = pd.DataFrame({"clip_uid": ["a", "a", "a", "b"], "action_idx": [2, 0, 1, 0]})
    found = segment_features(FeatureCache.open(tmp_path / "val"), table)
    assert found.arrays == ("slowfast", "clip") and found.dim == 5
    assert found.ok.tolist() == [True, True, False, False]  # action 1 unusable, clip b not in the cache
    expected = np.concatenate([slowfast.astype(np.float32), clip.astype(np.float32).mean(1)], axis=1)
    assert np.allclose(found.x[:2], expected[[2, 0]], atol=1e-6)
    assert (found.x[2:] == 0).all()


def test_clips_of_one_video_share_a_fold_even_where_some_rows_name_no_video() -> None:
    from ego4d_lta.runtime.recognition import assign_folds, fold_groups

    table = pd.DataFrame(
        {
            "clip_uid": ["c1", "c1", "c2", "c3", "c4", "c5"],
            "video_uid": ["v1", "v1", "v1", "", "v2", None],
        }
    )
    groups, by = fold_groups(table)
    assert by == "video (clip where none)"
    assert list(groups) == ["v1", "v1", "v1", "clip:c3", "v2", "clip:c5"]  # c1 and c2 stay together by their video
    fold = assign_folds(groups, 2, seed=0)
    assert fold["v1"] in (0, 1) and len(set(fold.values())) == 2
    assert fold_groups(table.iloc[[0, 2, 4]])[1] == "video"
