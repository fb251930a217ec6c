"""predict writes the submission, its pool and its sidecar as one unit: a failure or a kill part-way never leaves a
new submission beside an old sidecar, and a failed pool leaves the old submission in place."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ego4d_lta.cli import main
from ego4d_lta.stages import predict as predict_module


class Killed(BaseException):
    """Stands for SIGKILL at that point: nothing after it runs, no `except Exception` catches it."""


def _predict(run: Path, out: Path) -> int:
    return main(["predict", "--split", "val", "--run", str(run), "--out", str(out), "--pool", "6", "-q"])


def _state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _consistent(folder: Path, out: Path) -> None:
    """Whatever is there: a sidecar only beside the submission (and pool) it describes; no temporary files."""
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], "temporary files left"
    sidecar = out.with_name(out.stem + ".meta.json")
    if sidecar.exists():
        meta = json.loads(sidecar.read_text())
        assert meta["submission_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert meta["pool_sha256"] == hashlib.sha256(out.with_name(meta["pool"]).read_bytes()).hexdigest()


@pytest.fixture()
def first(demo_report: dict, demo_dir: Path, tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """A finished prediction (with another sampling seed, so a second one differs from it)."""
    run, out = demo_dir / "runs" / "tiny", tmp_path / "val.json"
    assert main(["predict", "--split", "val", "--run", str(run), "--out", str(out), "--pool", "6", "-q",
                 "--set", "generate.seed=7"]) == 0  # fmt: skip
    (tmp_path / ".val.4242.tmp.json").write_text("{")  # a kill's leftover from an even earlier prediction
    return run, out, _state(tmp_path)


def test_leftovers_are_cleaned_and_a_rerun_replaces_all_three(first, tmp_path: Path) -> None:
    run, out, before = first
    assert _predict(run, out) == 0
    after = _state(tmp_path)
    assert set(after) == {"val.json", "val.meta.json", "val.pool6.json"}
    assert all(after[n] != before[n] for n in after)
    _consistent(tmp_path, out)


def test_a_failed_pool_leaves_the_old_submission(first, tmp_path: Path, monkeypatch) -> None:
    run, out, before = first
    real = predict_module.stage_checked

    def failing(path, *args, **kwargs):
        if ".pool" in str(path):
            raise OSError(28, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(predict_module, "stage_checked", failing)
    assert _predict(run, out) == 2
    after = _state(tmp_path)
    assert {n: after[n] for n in after} == {n: before[n] for n in before if not n.startswith(".")}


@pytest.mark.parametrize("renames_done", [0, 1, 2])
def test_a_kill_between_the_renames_never_pairs_files_of_two_predictions(
    first, tmp_path: Path, monkeypatch, renames_done: int
) -> None:
    run, out, _ = first
    real, done = Path.replace, []

    def replace(self: Path, target):
        if len(done) == renames_done:
            raise Killed
        done.append(target)
        return real(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    with pytest.raises(Killed):
        _predict(run, out)
    monkeypatch.undo()
    for p in tmp_path.glob(".*.tmp.json"):  # what the kill left: the next predict removes it (tested above)
        p.unlink()
    assert not (tmp_path / "val.meta.json").exists()  # the old sidecar went before any new file came
    _consistent(tmp_path, out)
