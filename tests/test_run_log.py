"""The live views of a training run that need no run: the epoch line, the log-file progress bar, the loggers."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.progress import LineWriter, progress_bar
from ego4d_lta.runtime.run_log import check_loggers, epoch_line

ENTRY = {
    "epoch": 3,
    "step": 120,
    "loss": 7.12341,
    "lr": 2.1e-4,
    "windows_per_s": 1930.0,
    "seconds": 41.2,
    "val": {"verb": 0.71, "noun": 0.82, "action": 0.93},
}


def test_epoch_line_has_time_lr_rate_and_the_best_marker() -> None:
    line = epoch_line(ENTRY, 20, best=True)
    assert line == (
        "epoch 3/20 41s lr 2.10e-04 1.9k win/s: loss 7.1234; val ED@20 verb 0.7100 noun 0.8200 action 0.9300 *best"
    )
    slow = epoch_line({**ENTRY, "val": None, "windows_per_s": 12.4}, 20, best=False)
    assert not slow.endswith("*best")
    assert "12 win/s: loss 7.1234; val ED@20 no val windows" in slow


def test_a_progress_bar_in_a_log_file_writes_whole_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a terminal (a Slurm .out file): no carriage returns, one line per interval, with rate and ETA."""
    monkeypatch.setenv("EGO4D_LTA_PROGRESS_INTERVAL", "0")
    out = io.StringIO()
    with progress_bar(4, "resize", "clip", file=out) as bar:
        for _ in range(4):
            time.sleep(0.01)
            bar.update(1)
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) >= 4 and all(line.startswith("resize:") for line in lines)
    assert "4/4" in lines[-1] and "clip/s" in lines[-1] and "<00:00" in lines[-1]  # rate and ETA


def test_a_progress_bar_waits_for_its_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGO4D_LTA_PROGRESS_INTERVAL", "3600")
    out = io.StringIO()
    with progress_bar(1000, "synth", "clip", file=out) as bar:
        for _ in range(1000):
            bar.update(1)
    assert len(out.getvalue().splitlines()) == 2  # the start and the end, nothing in between


def test_line_writer_drops_empty_redraws() -> None:
    out = io.StringIO()
    w = LineWriter(out)
    w.write("\r")
    w.write("\rx 1/2")
    w.write("\n")
    assert out.getvalue() == "x 1/2\n"


def test_loggers_are_checked_before_any_work() -> None:
    assert check_loggers(["tensorboard", "none", "tensorboard"]) == ("tensorboard",)
    assert check_loggers(["none"]) == ()
    # wandb is an optional extra, not in the test environment: one line saying how to get it
    with pytest.raises(UserError, match=r"--log wandb: the wandb package is not installed \(pip install 'ego4d-lta"):
        check_loggers(["wandb"])


def test_tensorboard_gets_the_config_and_the_hyper_parameters(tmp_path: Path) -> None:
    """Issue 23.9: TensorBoard had 15 scalar tags but neither the run's config nor its hyper-parameters."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ego4d_lta.config import load_config
    from ego4d_lta.runtime.run_log import RunLog, hparams

    config = load_config("tiny").to_dict()
    flat = hparams(config)
    assert flat["model.layers"] == config["model"]["layers"] and isinstance(flat["model.text_groups"], str)
    log = RunLog(tmp_path, config, ["tensorboard"], enabled=True)
    entry = {"epoch": 1, "step": 5, "loss": 2.0, "windows_per_s": 10.0, "seconds": 1.0}
    entry |= {"val": {"verb": 0.7, "noun": 0.8, "action": 0.9}, "val_ed_at_z": {"verb": [0.5, 0.7]}}
    log.epoch(entry)
    log.final([entry], {"epoch": 1})
    log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"layers": 2' in config_text
    plugins = events.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in plugins and "_hparams_/session_start_info" in plugins
    assert "hparam/best_ed20_action" in events.Tags()["scalars"]
