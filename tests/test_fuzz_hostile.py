"""Fuzz: hostile annotation files, `--set` overrides and config files. Every command ends with exit 0 or 2 (a one-line
error, never a traceback: an uncaught exception fails the test), prints no raw control character, and touches
nothing outside its temporary folder. `import-features` is fuzzed with generated feature files and manifests in
test_fuzz_import.py."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ego4d_lta.challenge.rules import SPLIT_FILES, TAXONOMY_FILE, K, Z
from ego4d_lta.cli import main

HOSTILE_TEXT = st.sampled_from(
    ["../../x", "/etc/passwd", "..", ".", "a/b", "a\\b", "a\x00b", "\x1b]0;pwned\x07", "\x1b[2J", "", " a", "a\n",
     "\u202eevil", "é", "x" * 300, "~/x", "C:\\x", "runs/../../x", "-rf", "$(touch /tmp/x)"]
) | st.text(max_size=12)  # fmt: skip
HOSTILE_NUMBER = st.sampled_from([-1, 0, 1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30, 1e308, -0.0, 0.5, 1e-300])
VALUE = st.one_of(HOSTILE_TEXT, HOSTILE_NUMBER, st.booleans(), st.none(), st.lists(st.integers(-3, 3), max_size=3))
FIELDS = ("clip_uid", "video_uid", "action_idx", "action_clip_start_sec", "action_clip_end_sec", "verb_label",
          "noun_label")  # fmt: skip


def _entry(uid: str, i: int) -> dict:
    return {"clip_uid": uid, "action_idx": i, "action_clip_start_sec": float(i), "action_clip_end_sec": i + 0.5,
            "verb_label": i % 3, "noun_label": i % 2}  # fmt: skip


@st.composite
def annotation_docs(draw: st.DrawFn) -> object:
    """A val file: mostly well formed (two clips long enough for windows), with a few hostile changes."""
    entries = [_entry("clipA", i) for i in range(30)] + [_entry("clipB", i) for i in range(29)]
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(entries) - 1))
        action = draw(st.sampled_from(["set", "drop", "replace"]))
        if not isinstance(entries[i], dict):
            continue
        if action == "set":
            entries[i][draw(st.sampled_from(FIELDS))] = draw(VALUE)
        elif action == "drop":
            entries[i].pop(draw(st.sampled_from(FIELDS)), None)
        else:
            entries[i] = draw(VALUE)
    shape = draw(st.sampled_from(["ok", "ok", "ok", "empty", "list", "clips-object"]))
    return {"ok": {"clips": entries}, "empty": {"clips": []}, "list": entries, "clips-object": {"clips": {}}}[shape]


def _submission(path: Path) -> Path:
    keys = ["clipA_7", "clipA_8", "clipB_7"]
    path.write_text(json.dumps({k: {"verb": [[0] * Z] * K, "noun": [[1] * Z] * K} for k in keys}))
    return path


def _outside(root: Path) -> tuple[set[str], tuple[bool, ...]]:
    """What is next to the temporary folder, and whether the places the hostile paths name exist."""
    targets = (root.parent / "x", root.parent.parent / "x", Path("/tmp/x"), Path("/etc/passwd").with_suffix(".png"))
    return set(os.listdir(root.parent)), tuple(p.exists() for p in targets)


def _run(args: list[str], capsys: pytest.CaptureFixture) -> None:
    try:
        code = main(args)
    except SystemExit as stop:  # argparse's own refusal: usage and one error line, exit 2
        code = stop.code
    err = capsys.readouterr().err
    assert code in (0, 2), (code, err)
    assert "\x1b" not in err and "\x00" not in err and "\x07" not in err, err
    if code == 2:
        assert len(err.strip().splitlines()) >= 1 and "Traceback" not in err


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(doc=annotation_docs())
def test_hostile_annotation_files(doc: object, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    root = tmp_path / "fuzz"
    (root / "data" / "annotations").mkdir(parents=True, exist_ok=True)
    taxonomy = {"verbs": ["a", "b", "c"], "nouns": ["x", "y"]}
    (root / "data" / "annotations" / TAXONOMY_FILE).write_text(json.dumps(taxonomy))
    (root / "data" / "annotations" / SPLIT_FILES["val"]).write_text(json.dumps(doc, allow_nan=True))
    sub = _submission(root / "s.json")
    monkeypatch.chdir(root)
    before = _outside(tmp_path)
    _run(["validate", str(sub), "--split", "val", "--data", str(root / "data")], capsys)
    _run(["validate", str(sub), "--split", "val", "--data", "data", "--plot", "ed.png"], capsys)
    _run(["extract", "--split", "val", "--data", "data", "--encoders", "tiny", "-q"], capsys)  # no weights: stops at 2
    assert _outside(tmp_path) == before


OVERRIDE_KEYS = st.sampled_from(
    ["name", "train.epochs", "train.seed", "train.batch_size", "optim.lr", "optim.weight_decay", "optim.warmup_steps",
     "optim.grad_clip", "generate.temperature", "generate.top_p", "model.layers", "model.ffn_dim", "model.dropout",
     "model.variant", "model.text_groups", "data.encoders", "train.precision", "nope.key", "train", ""]
)  # fmt: skip
OVERRIDE_VALUES = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e308", "1e-300", "18446744073709551616", "-1", "0", "3", "0.5",
                     "true", '"../../x"', '"/tmp/x"', '"a\\u001bb"', "[1, 2]", '["noun"]', "{a = 1}", '"', "'", "\x00",
                     "x" * 50]),
    st.text(max_size=8),
)  # fmt: skip


@FUZZ
@given(sets=st.lists(st.tuples(OVERRIDE_KEYS, OVERRIDE_VALUES), min_size=1, max_size=3))
def test_hostile_config_overrides(
    sets: list[tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    root = tmp_path / "fuzz"
    root.mkdir(exist_ok=True)
    monkeypatch.chdir(root)
    before = _outside(tmp_path)
    args = ["train", "--config", "tiny", "--data", str(root / "nodata"), "-q"]
    for key, value in sets:
        args += ["--set", f"{key}={value}"]
    _run(args, capsys)  # a config that passes still stops at 2: there is no feature cache
    assert _outside(tmp_path) == before
    assert not (root / "runs").exists() or all(p.parent == root / "runs" for p in (root / "runs").rglob("*"))


@FUZZ
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_hostile_config_files(content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    root = tmp_path / "fuzz"
    root.mkdir(exist_ok=True)
    (root / "mine.toml").write_bytes(content)
    monkeypatch.chdir(root)
    _run(["train", "--config", "mine.toml", "--data", str(root / "nodata"), "-q"], capsys)
    assert not (root / "runs").exists() or all(p.parent == root / "runs" for p in (root / "runs").rglob("*"))


def _split_files(root: Path) -> Path:
    """A tiny dataset in the official layout: val and train annotated (clipA 30, clipB 29 actions), test not."""
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / TAXONOMY_FILE).write_text(json.dumps({"verbs": ["a", "b", "c"], "nouns": ["x", "y"]}))
    entries = [_entry("clipA", i) for i in range(30)] + [_entry("clipB", i) for i in range(29)]
    for split in ("train", "val"):
        (ann / SPLIT_FILES[split]).write_text(json.dumps({"clips": entries}))
    bare = [{k: v for k, v in e.items() if not k.endswith("_label")} for e in entries]
    (ann / SPLIT_FILES["test"]).write_text(json.dumps({"clips": bare}))
    return root


@pytest.fixture(scope="module")
def labels_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A `labels` run trained for one epoch on the tiny dataset (seconds): what predict, ensemble and the API read."""
    root = tmp_path_factory.mktemp("fuzz-run")
    data = _split_files(root / "data")
    small = ["train.epochs=1", "train.batch_size=4", "optim.base_batch=4", "model.layers=1", "model.label_dim=16"]
    small += ["model.heads=2", "model.ffn_dim=32"]
    args = ["train", "--config", "labels", "--data", str(data), "--run", str(root / "run"), "--device", "cpu", "-q"]
    assert main([*args, *(a for s in small for a in ("--set", s))]) == 0
    return data, root / "run"


GENERATE_KEYS = st.sampled_from(
    ["generate.strategy", "generate.temperature", "generate.top_p", "generate.seed", "generate.observed_bonus",
     "generate.samples", "generate.sample_temperature", "generate.candidates", "generate.observed_weight",
     "model.layers", "generate.nope", "generate"]
)  # fmt: skip


@st.composite
def recognitions_docs(draw: st.DrawFn) -> object:
    """A recognitions file for val: mostly well formed, with a few hostile changes (top-k lists included)."""
    doc: dict = {
        f"{u}_{i}": {"verb": i % 3, "noun": i % 2} for u, n in (("clipA", 30), ("clipB", 29)) for i in range(n)
    }
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(doc)))
        action = draw(st.sampled_from(["set", "drop", "replace", "topk", "rename"]))
        if action != "rename" and not isinstance(doc[key], dict):
            continue
        if action == "set":
            doc[key][draw(st.sampled_from(["verb", "noun"]))] = draw(VALUE)
        elif action == "drop":
            doc[key].pop(draw(st.sampled_from(["verb", "noun"])), None)
        elif action == "replace":
            doc[key] = draw(VALUE)
        elif action == "topk":
            doc[key]["verb_topk"] = draw(st.one_of(VALUE, st.lists(st.lists(VALUE, max_size=3), max_size=3)))
        else:
            doc[draw(HOSTILE_TEXT)] = doc.pop(key)
    return draw(st.sampled_from([doc, doc, doc, {}, [doc], None]))


@FUZZ
@given(sets=st.lists(st.tuples(GENERATE_KEYS, OVERRIDE_VALUES), max_size=3), recognitions=recognitions_docs(),
       out=HOSTILE_TEXT, pool=st.sampled_from([None, "-1", "0", "5", "6", "1001", "x"]))  # fmt: skip
def test_hostile_predict(labels_run, sets, recognitions, out, pool, tmp_path: Path, capsys, monkeypatch) -> None:
    data, run = labels_run
    root = tmp_path / "fuzz"
    (root / "outs").mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(root)
    (root / "r.json").write_text(json.dumps(recognitions, allow_nan=True))
    before, recognised = _outside(tmp_path), (root / "r.json").read_bytes()
    args = ["predict", "--run", str(run), "--split", "val", "--data", str(data), "--device", "cpu", "-q"]
    # a hostile name below outs/ (an explicit --out elsewhere is the user's to choose)
    args += ["--recognitions", "r.json", "--out", f"outs/{out}", *(["--pool", pool] if pool else [])]
    for key, value in sets:
        args += ["--set", f"{key}={value}"]
    _run(args, capsys)
    assert _outside(tmp_path) == before and (root / "r.json").read_bytes() == recognised  # the input untouched


@FUZZ
@given(doc=annotation_docs(), name=HOSTILE_TEXT)
def test_hostile_ensemble_inputs(doc: object, name: str, tmp_path: Path, capsys, monkeypatch) -> None:
    """An ensemble of a valid submission and a hostile file (an annotation-like document) under a hostile name."""
    root = tmp_path / "fuzz"
    data = _split_files(root / "data") if not (root / "data").exists() else root / "data"
    monkeypatch.chdir(root)
    good = _submission(root / "s.json")
    (root / "bad.json").write_text(json.dumps(doc, allow_nan=True))
    before = _outside(tmp_path)
    _run(["ensemble", str(good), "bad.json", "-o", name or "e.json", "--split", "val", "--data", str(data)], capsys)
    _run(["ensemble", str(good), str(good), "-o", name or "e.json", "--data", str(data)], capsys)
    assert _outside(tmp_path) == before


@FUZZ
@given(sets=st.lists(st.tuples(OVERRIDE_KEYS | GENERATE_KEYS, OVERRIDE_VALUES), min_size=1, max_size=3))
def test_hostile_configs(sets: list[tuple[str, str]], tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _run(["configs", "tiny", *(a for key, value in sets for a in ("--set", f"{key}={value}"))], capsys)


@FUZZ
@given(split=HOSTILE_TEXT | st.sampled_from(["val", "test", "train"]), batch=VALUE, checkpoint=HOSTILE_TEXT)
def test_hostile_api_calls(labels_run, split, batch, checkpoint) -> None:
    """The Python API: a hostile split, batch size or checkpoint name is a `UserError` (or a forecast), nothing else."""
    import ego4d_lta
    from ego4d_lta.base.errors import UserError

    data, run = labels_run
    try:
        forecast = ego4d_lta.predict(ego4d_lta.load_run(run, data=data), split, batch_size=batch)
        assert forecast.verb.shape[1:] == (K, Z)
    except UserError:
        pass
    with contextlib.suppress(UserError):
        ego4d_lta.load_run(run, checkpoint=checkpoint or "best", data=data)
