"""User-supplied names reach the terminal and report.md only through `printable`: a file or run named with escape
sequences (`cp s.json $'\\e]0;PWNED\\a\\e[31mred.json'`) prints escaped, never raw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.submission import build_submission, write_submission
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main
from ego4d_lta.stages.synth import SynthConfig, generate

HOSTILE = "\x1b]0;PWNED\x07\x1b[31mred\u202e"
RAW = ("\x1b", "\x07", "\u202e")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("names") / "data"
    generate(out, SynthConfig(videos=False), workers=1)
    return out


def _submission(dataset: Path, path: Path, seed: int) -> Path:
    keys, _ = make_windows(load_annotations(dataset / "annotations", "val")[0], include_extra=True).key_sets()
    rng = np.random.default_rng(seed)
    return write_submission(path, build_submission(keys, rng.integers(3, size=(len(keys), K, Z)),
                                                   rng.integers(3, size=(len(keys), K, Z))))  # fmt: skip


def _clean(capsys: pytest.CaptureFixture) -> str:
    out = capsys.readouterr()
    text = out.out + out.err
    assert not any(c in text for c in RAW), repr(text)
    return text


def test_validate_and_ensemble_print_hostile_file_names_escaped(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a = _submission(dataset, tmp_path / f"{HOSTILE}a.json", 0)
    b = _submission(dataset, tmp_path / f"{HOSTILE}b.json", 1)
    assert main(["validate", str(a), "--split", "val", "--data", str(dataset)]) == 0
    assert "\\x1b]0;PWNED\\x07\\x1b[31mred" in _clean(capsys)
    broken = tmp_path / f"{HOSTILE}broken.json"
    broken.write_text(json.dumps({"x": 1}))
    assert main(["validate", str(broken), "--split", "val", "--data", str(dataset)]) == 2
    _clean(capsys)
    out = tmp_path / f"{HOSTILE}out.json"
    assert main(["ensemble", str(a), str(b), "--split", "val", "--data", str(dataset), "-o", str(out)]) == 0
    assert out.is_file() and "PWNED" in _clean(capsys)
    assert main(["ensemble", str(a), str(broken), "--split", "val", "--data", str(dataset), "-o", str(out)]) == 2
    _clean(capsys)


def test_report_escapes_hostile_run_names_in_its_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / f"{HOSTILE}|run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": {"variant": "labels\x1b[2J"}, "train": {"epochs": 1}}))
    val = {"verb": 0.9, "noun": 0.9, "action": 0.95}
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 3.0, "val": val}) + "\n")
    assert main(["report", str(run), "-o", str(tmp_path / "reports")]) == 0
    _clean(capsys)
    md = (tmp_path / "reports" / "report.md").read_text()
    assert not any(c in md for c in RAW) and "\\x1b[31mred" in md and "\\|run" in md


def test_predict_wrote_line_and_errors_escape_the_output_name(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sets = ["train.batch_size=32", "model.layers=1", "train.eval_batch_size=32", "train.epochs=1"]
    train = ["train", "--config", "labels", "--device", "cpu", "-q", *(x for s in sets for x in ("--set", s))]
    run = tmp_path / "run"
    assert main([*train, "--data", str(dataset), "--run", str(run)]) == 0
    capsys.readouterr()
    out = tmp_path / f"{HOSTILE}-val.json"
    assert main(["predict", "--run", str(run), "--split", "val", "--out", str(out), "-q"]) == 0
    assert out.is_file() and "wrote " in _clean(capsys)
    assert main(["predict", "--run", str(tmp_path / HOSTILE), "--split", "val", "-q"]) == 2
    assert "PWNED" in _clean(capsys)
