"""Every numeric option bounded, with the bound in `--help` and in the error; files checked before they are read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ego4d_lta.challenge.rules import Z
from ego4d_lta.cli import main
from ego4d_lta.stages.synth import SynthConfig, generate

REFUSED = [
    (["extract", "--split", "val", "--workers", "-1"], "--workers: '-1': expected an integer in 0..256"),
    (["extract", "--split", "val", "--workers", "100000"], "expected an integer in 0..256"),
    (["extract", "--split", "val", "--batch-size", "0"], "--batch-size: '0': expected an integer in 1..4096"),
    (["extract", "--split", "val", "--limit", "-5"], "--limit: '-5': expected an integer in 1..1000000000"),
    (["extract", "--split", "val", "--views", "0"], "--views: '0': expected an integer in 1..64"),
    (["resize", "--src", "a", "--dst", "b", "--short-side", "0"], "--short-side: '0': expected an integer in 32..4320"),
    (["resize", "--src", "a", "--dst", "b", "--short-side", "-320"], "expected an integer in 32..4320"),
    (["resize", "--src", "a", "--dst", "b", "--keyframe-seconds", "nan"], "'nan': expected a number in 0.1..60"),
    (["resize", "--src", "a", "--dst", "b", "--keyframe-seconds", "inf"], "'inf': expected a number in 0.1..60"),
    (["resize", "--src", "a", "--dst", "b", "--crf", "99"], "--crf: '99': expected an integer in 0..51"),
    (["resize", "--src", "a", "--dst", "b", "--preset", "bogus"], "--preset: invalid choice: 'bogus'"),
    (["predict", "--split", "val", "--pool", "10000000"], "--pool: '10000000': expected an integer in 6..1000"),
    (["predict", "--split", "val", "--batch-size", "0"], "--batch-size: '0': expected an integer in 1..1048576"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), REFUSED)
def test_numeric_options_outside_their_range_are_refused(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert os.listdir(tmp_path) == []  # nothing written


@pytest.mark.parametrize(
    ("command", "shown"),
    [("extract", ["0..256", "1..4096"]), ("resize", ["32..4320", "0.1..60", "0..51"]), ("predict", ["6..1000"])],
)
def test_help_states_the_bounds(command: str, shown: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(bound in text for bound in shown), text


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bounds") / "data"
    generate(out, SynthConfig(videos=False), workers=1)
    return out


@pytest.mark.parametrize("command", ["validate", "ensemble"])
def test_device_files_and_pipes_are_refused_before_reading(
    command: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # reading it would wait forever
    for source in ("/dev/zero", str(fifo)):
        files = [source, source, "-o", str(tmp_path / "out.json")] if command == "ensemble" else [source]
        args = [command, *files, "--split", "val", "--data", str(dataset)]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{source}: not a regular file" in err, err
    assert not (tmp_path / "out.json").exists()


def test_ensemble_refuses_pools_above_its_cap(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A pool of 3,000 per window ran for over ten minutes: refused at once, the cap named."""
    val = json.loads((dataset / "annotations" / "fho_lta_val.json").read_text())["clips"]
    key = f"{val[0]['clip_uid']}_{val[0]['action_idx']}"
    pool = tmp_path / "big.pool3000.json"
    pool.write_text(json.dumps({key: {"verb": [[0] * Z] * 3000, "noun": [[0] * Z] * 3000}}))
    assert main(["ensemble", str(pool), "--split", "val", "--data", str(dataset), "-o", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "a pool of 3000 samples per window; ensemble takes at most 1000 per input" in err, err
    assert not (tmp_path / "o.json").exists()
