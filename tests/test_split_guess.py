"""`--split` is never a silent `test`: the file says which split it is (its sidecar, else its keys)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.split_guess import guess_split, infer_split, key_set_split, sidecar_path, sidecar_split
from ego4d_lta.challenge.submission import build_submission, write_submission
from ego4d_lta.challenge.windows import make_windows


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ego4d_lta", *args], capture_output=True, text=True)


def _submission(synth_data: Path, split: str, out: Path, seed: int = 0) -> Path:
    table, _ = load_annotations(synth_data / "annotations", split)
    windows = make_windows(table, include_extra=False)
    rng = np.random.default_rng(seed)
    verb = rng.integers(0, 3, (len(windows), K, Z))
    return write_submission(out, build_submission(windows.keys, verb, verb))


def test_sidecar_path_of_a_submission_and_its_pool() -> None:
    assert sidecar_path("s/x-test.json") == Path("s/x-test.meta.json")
    assert sidecar_path("s/x-test.pool50.json") == Path("s/x-test.meta.json")


def test_key_set_tells_val_from_test(synth_data: Path, tmp_path: Path) -> None:
    annotations = synth_data / "annotations"
    val = _submission(synth_data, "val", tmp_path / "a.json")
    test = _submission(synth_data, "test", tmp_path / "b.json")
    assert key_set_split(val, annotations) == "val"
    assert key_set_split(test, annotations) == "test"
    (tmp_path / "c.json").write_text(json.dumps({"nobody_0": {}}))
    assert key_set_split(tmp_path / "c.json", annotations) is None


def test_the_sidecar_comes_first_and_a_bad_one_is_ignored(synth_data: Path, tmp_path: Path) -> None:
    annotations = synth_data / "annotations"
    val = _submission(synth_data, "val", tmp_path / "a.json")
    sidecar_path(val).write_text(json.dumps({"split": "test"}))  # the sidecar is read, not the keys
    assert sidecar_split(val) == "test" and guess_split(val, annotations).source == "a.meta.json"
    sidecar_path(val).write_text(json.dumps({"split": "train"}))
    assert sidecar_split(val) is None and guess_split(val, annotations).split == "val"
    sidecar_path(val).write_text("[")
    assert guess_split(val, annotations).source == "its key set"


def test_files_of_two_splits_or_of_none_are_refused(synth_data: Path, tmp_path: Path) -> None:
    annotations = synth_data / "annotations"
    val = _submission(synth_data, "val", tmp_path / "a.json")
    test = _submission(synth_data, "test", tmp_path / "b.json")
    with pytest.raises(UserError, match=r"different splits \(.*a.json is val, .*b.json is test\)"):
        infer_split([val, test], annotations)
    (tmp_path / "c.json").write_text(json.dumps({"nobody_0": {}}))
    with pytest.raises(UserError, match=r"c\.json: cannot tell its split .*pass --split val or --split test"):
        infer_split([tmp_path / "c.json"], annotations)


def test_validate_infers_val_and_names_it(synth_data: Path, tmp_path: Path) -> None:
    """The issue's case: a val file validated without --split is scored as val, not 'invalid test submission'."""
    val = _submission(synth_data, "val", tmp_path / "tiny-val.json")
    out = _cli("validate", str(val), "--data", str(synth_data))
    assert out.returncode == 0, out.stderr
    assert f"{val}: split val (from its key set; pass --split to choose)" in out.stderr
    assert "valid val submission" in out.stdout and "ED@20" in out.stdout


def test_validate_explicit_wrong_split_says_did_you_mean(synth_data: Path, tmp_path: Path) -> None:
    val = _submission(synth_data, "val", tmp_path / "tiny-val.json")
    out = _cli("validate", str(val), "--data", str(synth_data), "--split", "test")
    assert out.returncode == 2
    assert "invalid test submission" in out.stderr and "(did you mean --split val? its key set says" in out.stderr


def test_ensemble_infers_the_split_and_upload_names_a_val_file(synth_data: Path, tmp_path: Path) -> None:
    a = _submission(synth_data, "val", tmp_path / "a.json", seed=1)
    b = _submission(synth_data, "val", tmp_path / "b.json", seed=2)
    sidecar_path(a).write_text(json.dumps({"split": "val"}))
    out = _cli("ensemble", str(a), str(b), "-o", str(tmp_path / "e.json"), "--data", str(synth_data))
    assert out.returncode == 0, out.stderr
    assert "2 files: split val (from a.meta.json" in out.stderr and "valid val submission" in out.stdout

    out = _cli("ensemble", str(a), str(b), "-o", str(tmp_path / "f.json"), "--data", str(synth_data), "--split", "test")
    assert out.returncode == 2 and "did you mean --split val?" in out.stderr and not (tmp_path / "f.json").exists()

    out = _cli("upload", str(b), "--data", str(synth_data), "--dry-run")
    assert out.returncode == 2
    assert "not uploaded" in out.stderr
    assert (
        "upload takes test submissions only" in out.stderr and "is a val submission (its key set says so)" in out.stderr
    )
