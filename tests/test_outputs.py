"""No command replaces one of its inputs or a file of another kind, and none writes outside the root it was given.

Each case runs the command as a user types it and compares every file under the test's folder (and the shared demo
dataset) before and after: a refusal is one line, exit status 2, and nothing on disk changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from ego4d_lta.base.output_guard import check_inside, check_output, file_kind
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.rules import SPLIT_FILES, K, Z
from ego4d_lta.challenge.submission import build_submission, write_submission
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under `roots` (links not followed) -> a digest of its bytes."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.is_symlink() or path.is_dir():
                found[str(path)] = "link" if path.is_symlink() else "dir"
    return found


def _submissions(synth_data: Path, folder: Path) -> tuple[Path, Path]:
    table, _ = load_annotations(synth_data / "annotations", "val")
    windows = make_windows(table, include_extra=False)
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a.json", "b.json"):
        verb = rng.integers(0, 3, (len(windows), K, Z))
        noun = rng.integers(0, 3, (len(windows), K, Z))
        paths.append(write_submission(folder / name, build_submission(windows.keys, verb, noun)))
    return paths[0], paths[1]


CASES = {
    "validate --plot onto the submission": (
        ["validate", "{a}", "--split", "val", "--data", "{data}", "--plot", "{a}"],
        "is one of this command's inputs",
    ),
    "validate --plot onto an annotation file": (
        ["validate", "{a}", "--split", "val", "--data", "{data}", "--plot", "{data}/annotations/fho_lta_val.json"],
        "is one of this command's inputs",
    ),
    "validate --plot onto a JSON file": (
        ["validate", "{a}", "--split", "val", "--data", "{data}", "--plot", "{b}"],
        "already holds a submission file; refusing to replace it with a png",
    ),
    "ensemble -o onto an input": (
        ["ensemble", "{a}", "{b}", "--split", "val", "--data", "{data}", "-o", "{a}"],
        "is one of this command's inputs",
    ),
    "ensemble -o a directory": (
        ["ensemble", "{a}", "{b}", "--split", "val", "--data", "{data}", "-o", "{tmp}"],
        "is a directory, expected a submission file name",
    ),
    "ensemble -o onto the taxonomy": (
        [
            "ensemble",
            "{a}",
            "{b}",
            "--split",
            "val",
            "--annotations",
            "{data}/annotations",
            "-o",
            "{data}/annotations/fho_lta_taxonomy.json",
        ],
        "is one of this command's inputs",
    ),
    "ensemble -o onto a config file": (
        ["ensemble", "{a}", "{b}", "--split", "val", "--data", "{data}", "-o", "{tmp}/notes.json"],
        "already holds a file this command did not write",
    ),
    "predict --out onto the annotations": (
        ["predict", "--run", "{run}", "--split", "val", "--out", "{data}/annotations/fho_lta_val.json", "-q"],
        "is one of this command's inputs",
    ),
    "predict --out whose sidecar belongs to another submission": (
        ["predict", "--run", "{run}", "--split", "val", "--out", "{tmp}/other.json", "-q"],
        "is the sidecar of another submission",
    ),
    "predict --out whose sidecar name holds a plot": (
        ["predict", "--run", "{run}", "--split", "val", "--out", "{tmp}/plot.json", "-q"],
        "already holds a png file",
    ),
    "predict --out onto the checkpoint": (
        ["predict", "--run", "{run}", "--split", "val", "--checkpoint", "{tmp}/copy.pt", "--out", "{tmp}/copy.pt"],
        "is one of this command's inputs",
    ),
    "synth onto a real dataset root": (["synth", "{tmp}/real", "-q"], "already holds a dataset (annotations/"),
    "synth onto a file": (["synth", "{tmp}/notes.json", "-q"], "exists and is not a folder"),
    "train into a folder with best.pt and no last.pt": (
        ["train", "--config", "tiny", "--data", "{data}", "--run", "{tmp}/halfrun", "-q"],
        "holds best.pt but no last.pt",
    ),
    "train --run on a file": (
        ["train", "--config", "tiny", "--data", "{data}", "--run", "{a}", "-q"],
        "is a file, expected a run folder",
    ),
    "train --set name=../../x": (
        ["train", "--config", "tiny", "--data", "{data}", "--set", "name=../../x"],
        "must be a plain name",
    ),
    "report -o onto a file": (["report", "{run}", "-o", "{a}"], "is a file, expected a folder"),
    "report -o onto a folder whose report.md is not one": (
        ["report", "{run}", "-o", "{tmp}/mine"],
        "already holds a file this command did not write",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_output_never_replaces_an_input_or_another_kind_of_file(
    case: str, demo_report: dict, demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    data, run = demo_dir / "data", demo_dir / "runs" / "tiny"
    a, b = _submissions(data, tmp_path)
    (tmp_path / "notes.json").write_text(json.dumps({"mine": [1, 2, 3]}))
    (tmp_path / "other.meta.json").write_text(json.dumps({"submission": "else.json", "split": "val"}))
    (tmp_path / "plot.meta.json").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    (tmp_path / "copy.pt").write_bytes((run / "best.pt").read_bytes())
    (tmp_path / "real" / "annotations").mkdir(parents=True)
    (tmp_path / "real" / "annotations" / SPLIT_FILES["train"]).write_text('{"clips": []}')
    (tmp_path / "halfrun").mkdir()
    (tmp_path / "halfrun" / "best.pt").write_bytes(b"another run's weights")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.md").write_text("my own notes\n")
    monkeypatch.chdir(tmp_path)
    args, message = CASES[case]
    argv = [x.format(a=a, b=b, data=data, run=run, tmp=tmp_path) for x in args]
    before = snapshot(tmp_path, data / "annotations", run)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(tmp_path, data / "annotations", run) == before
    assert not (tmp_path.parent.parent / "x").exists()


def test_the_same_kind_may_be_replaced_a_rerun_is_normal(tmp_path: Path) -> None:
    sub = write_submission(tmp_path / "s.json", {"k_0": {"verb": [[0] * Z] * K, "noun": [[0] * Z] * K}})
    assert file_kind(sub) == "submission" and check_output(sub, "submission") == sub
    side = tmp_path / "s.meta.json"
    side.write_text(json.dumps({"submission": "s.json", "split": "test"}))
    assert check_output(side, "sidecar", sidecar_of="s.json") == side
    assert check_output(tmp_path / "new.png", "png", [sub]) == tmp_path / "new.png"  # a new file is always fine


@pytest.mark.parametrize("inside", ["runs/a", "runs/a/../b", "runs"])
def test_paths_inside_the_root_pass(tmp_path: Path, inside: str) -> None:
    assert check_inside(tmp_path / "runs", tmp_path / inside, "--run")


@pytest.mark.parametrize("outside", ["runs/../x", "runs/a/../../../x", "/etc", "runsx"])
def test_paths_outside_the_root_are_refused(tmp_path: Path, outside: str) -> None:
    from ego4d_lta.base.errors import UserError

    with pytest.raises(UserError, match="leaves"):
        check_inside(tmp_path / "runs", tmp_path / outside, "--run")
