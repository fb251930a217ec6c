"""The Python API without a trained run: a cheap import, scoring a submission (the run's calls: test_train.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ego4d_lta
from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.rules import K
from ego4d_lta.challenge.submission import build_submission, write_submission
from ego4d_lta.challenge.windows import make_windows


def test_import_stays_cheap_and_the_api_loads_on_first_use() -> None:
    code = (
        "import sys, ego4d_lta; before = 'torch' in sys.modules or 'ego4d_lta.api' in sys.modules; "
        "f = ego4d_lta.score_submission; print(before, f.__module__, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "ego4d_lta.api", "True"]
    assert {"score_submission", "load_run", "predict", "read_cache"} <= set(dir(ego4d_lta))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ego4d_lta.nope  # noqa: B018


def test_score_submission_reads_the_split_from_the_file(synth_data: Path, tmp_path: Path) -> None:
    table, _ = load_annotations(synth_data / "annotations", "val")
    windows = make_windows(table, include_extra=False)
    truth = np.repeat(table.verb.to_numpy()[windows.future][:, None], K, axis=1)
    nouns = np.repeat(table.noun.to_numpy()[windows.future][:, None], K, axis=1)
    path = write_submission(tmp_path / "gt.json", build_submission(windows.keys, truth, nouns))
    report = ego4d_lta.score_submission(path, synth_data / "annotations")
    assert report.valid and report.split == "val"
    assert report.scores.ed20 == {"verb": 0.0, "noun": 0.0, "action": 0.0}
    wrong = ego4d_lta.score_submission(path, synth_data / "annotations", split="test")
    assert not wrong.valid and wrong.scores is None and "expected keys are missing" in wrong.errors[0]
    with pytest.raises(UserError, match="no such file"):
        ego4d_lta.score_submission(tmp_path / "nope.json", synth_data / "annotations", split="val")


def test_api_mistakes_are_user_errors_and_write_guards_its_target(tmp_path: Path) -> None:
    """A run folder instead of a loaded run is loaded (here: none there, one line); a batch size outside 1..2**20
    is named; `Forecast.write` never replaces a file of another kind (an annotation file)."""
    with pytest.raises(UserError, match="checkpoint not found"):
        ego4d_lta.predict(tmp_path / "no-run", "val")
    for bad in (0, -1, 2**21, 1.5, True):
        with pytest.raises(UserError, match=r"batch_size must be an integer in 1\.\.1048576"):
            ego4d_lta.predict(tmp_path / "no-run", "val", batch_size=bad)
    forecast = ego4d_lta.api.Forecast("val", ["c_7"], np.zeros((1, K, 20), int), np.zeros((1, K, 20), int), None)
    annotations = tmp_path / "fho_lta_val.json"
    annotations.write_text('{"clips": []}')
    with pytest.raises(UserError, match=r"Forecast\.write .*refusing to replace it with a submission"):
        forecast.write(annotations)
    assert annotations.read_text() == '{"clips": []}'
    assert forecast.write(tmp_path / "out.json").is_file()
