"""The command line as a user types it: synth, validate on synthetic data, the demo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.submission import build_submission, write_submission
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ego4d_lta", *args], capture_output=True, text=True, env=env)


def test_synth_bad_option_is_one_line_exit_2(tmp_path: Path) -> None:
    out = _cli("synth", str(tmp_path / "d"), "--missing-videos", "99")
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "at most 5 broken test clips" in out.stderr and "Traceback" not in out.stderr


def test_validate_perfect_val_submission_scores_zero(synth_data: Path, tmp_path: Path) -> None:
    table, _ = load_annotations(synth_data / "annotations", "val")
    windows = make_windows(table)  # with the extra windows: valid, with a warning
    verb = np.repeat(table.verb.to_numpy()[windows.future][:, None], K, axis=1)
    noun = np.repeat(table.noun.to_numpy()[windows.future][:, None], K, axis=1)
    path = write_submission(tmp_path / "gt.json", build_submission(windows.keys, verb, noun))
    out = _cli("validate", str(path), "--annotations", str(synth_data / "annotations"), "--split", "val")
    assert out.returncode == 0, out.stderr
    assert "warning:" in out.stderr and "one extra window" in out.stderr
    lines = out.stdout.splitlines()
    assert f"{len(windows.challenge())} windows" in lines[0]
    assert [line.split() for line in lines[2:]] == [[h, "0.0000", "0.0000"] for h in ("verb", "noun", "action")]


def test_validate_test_split_uses_data_env_and_flags_missing_keys(synth_data: Path, tmp_path: Path) -> None:
    table, _ = load_annotations(synth_data / "annotations", "test")
    windows = make_windows(table, include_extra=False)
    zeros = np.zeros((len(windows), K, Z), np.int64)
    path = write_submission(tmp_path / "t.json", build_submission(windows.keys, zeros, zeros))
    env = {"EGO4D_LTA_DATA": str(synth_data), "PATH": ""}
    out = _cli("validate", str(path), "--split", "test", "--json", env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["valid"] and report["windows"] == len(windows) and "scores" not in report

    short = write_submission(tmp_path / "short.json", build_submission(windows.keys[1:], zeros[1:], zeros[1:]))
    out = _cli("validate", str(short), "--split", "test", "--json", env=env)
    assert out.returncode == 2
    assert json.loads(out.stdout)["errors"] == [f"1 of {len(windows)} expected keys are missing: {windows.keys[0]}"]
    assert f"error: {short}: 1 of {len(windows)} expected keys are missing" in out.stderr

    out = _cli("validate", str(short), "--split", "test", "--data", str(synth_data), env={"PATH": ""})
    assert out.returncode == 2 and f"1 of {len(windows)} expected keys are missing" in out.stderr  # --data: the same
    out = _cli("validate", str(path), "--data", str(synth_data), "--annotations", str(synth_data / "annotations"))
    assert out.returncode == 2 and "not allowed with argument" in out.stderr  # one or the other


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "nope.json", "--split", "test"], "nope.json: no such file"),
        (
            ["validate", "{sub}", "--annotations", "/nonexistent", "--split", "val"],
            "fho_lta_taxonomy.json: no such file",
        ),
    ],
)
def test_validate_input_errors_are_one_line(synth_data: Path, tmp_path: Path, args: list[str], message: str) -> None:
    sub = tmp_path / "s.json"
    sub.write_text("{}")
    args = [a.replace("{sub}", str(sub)) for a in args]
    out = _cli(*args, env={"EGO4D_LTA_DATA": str(synth_data), "PATH": ""})
    assert out.returncode == 2 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_messages_of_issue_23_lead_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 23.7: `configs nosuch` spoke of a --config not given; a stray `train.epochs=5` got a bare usage line;
    `--shard` help showed `(default: (0, 1))`."""
    assert main(["configs", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ego4d-lta configs: error: choose a preset (") and "--config" not in err, err
    with pytest.raises(SystemExit) as stop:
        main(["train", "--config", "tiny", "train.epochs=5"])
    assert stop.value.code == 2
    assert "error: use --set train.epochs=5 to set a config field" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["validate", "x.json", "train.epochs=5"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: train.epochs=5" in err and "--set" not in err
    for command in ("extract", "import-features", "resize"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(0, 1)" not in text and "default: 0/1, all" in text, command


def test_a_split_smaller_than_one_batch_names_a_batch_that_fits(
    synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/submitting.md's `train --config labels` on the demo's data: the preset's batch of 256 is more than its
    train windows, and the line says which setting fits."""
    assert main(["train", "--config", "labels", "--data", str(synth_data), "--run", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    fits = re.search(r"train split: (\d+) usable windows, .*: pass --set train.batch_size=N with N <= (\d+)$", err)
    assert fits and fits.group(1) == fits.group(2) and int(fits.group(1)) < 256, err
