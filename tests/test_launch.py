"""The submitit launcher: Slurm-style options, the code snapshot, and a real job through `--launcher local`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ego4d_lta.base.errors import UserError
from ego4d_lta.cli import main
from ego4d_lta.cli.train import minutes as _minutes
from ego4d_lta.config import load_config
from ego4d_lta.workflow.launch import LaunchConfig, snapshot_code, submit


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("90", 90), ("30:00", 30), ("30:01", 31), ("2:00:00", 120), ("1-0", 1440), ("1-2:30", 1590), ("0-0:0:30", 1)],
)
def test_time_limits_read_like_sbatch(text: str, minutes: int) -> None:
    assert _minutes(text) == minutes


@pytest.mark.parametrize("text", ["0", "abc", "1:2:3:4", "-5", ""])
def test_bad_time_limits_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected minutes"):
        _minutes(text)


def test_snapshot_is_a_copy_without_caches(tmp_path: Path) -> None:
    import ego4d_lta

    src = Path(ego4d_lta.__file__).parent
    snap = snapshot_code(tmp_path) / "ego4d_lta"
    launch = Path("workflow") / "launch.py"
    assert (snap / launch).read_text() == (src / launch).read_text()
    assert (snap / "configs" / "tiny.toml").is_file() and not list(snap.rglob("__pycache__"))
    (snap / launch).write_text("# edited\n")  # a copy: the original is untouched
    assert (src / launch).read_text() != "# edited\n"


def test_an_existing_run_is_not_resubmitted_without_resume(tmp_path: Path) -> None:
    (tmp_path / "last.pt").write_bytes(b"")
    with pytest.raises(UserError, match="already holds a run"):
        submit(load_config("tiny"), tmp_path, resume=False, cfg=LaunchConfig(launcher="local"))


def test_local_launcher_has_one_node(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--launcher local runs on this machine: --nodes 2"):
        submit(load_config("tiny"), tmp_path, resume=False, cfg=LaunchConfig(launcher="local", nodes=2))


@pytest.mark.parametrize(("flag", "value"), [("--gpus-per-node", "-1"), ("--gpus-per-node", "x"), ("--nodes", "0")])
def test_bad_job_sizes_are_one_line_errors(flag: str, value: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", "tiny", "--launcher", "slurm", flag, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {flag}: {value!r}" in err and "Traceback" not in err, err
