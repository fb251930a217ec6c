"""Fuzz: hostile annotation files, `--set` overrides and config files. Every command ends with exit 0 or 2 (a one-line
error, never a traceback: an uncaught exception fails the test), prints no raw control character, and touches
nothing outside its temporary folder."""

from __future__ import annotations

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
    code = main(args)
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
