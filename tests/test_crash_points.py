"""A kill at any write of an epoch's commit loses nothing: `--resume` gives the uninterrupted run, metrics complete.

The training subprocess stops at its k-th commit write (tests/hold/sitecustomize.py, `train-commit`), with a
half-written temporary file beside it as a kill mid-write leaves, and is killed there; k runs over every write of a
two-epoch run (last.pt, best.pt when val improved, metrics.jsonl, per epoch) until the run finishes without holding.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import hold_env, weights

from ego4d_lta.config import load_config
from ego4d_lta.stages.train import train

SETS = ["train.epochs=2"]
TIMINGS = ("seconds", "windows_per_s")


def _metrics(run: Path) -> list[dict]:
    """metrics.jsonl without timings, floats to 6 significant digits: a process with another number of threads
    sums the batch losses in float32 in another order (seen in CI: 5.2768879 vs 5.2768878)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [_rounded({k: v for k, v in json.loads(line).items() if k not in TIMINGS}) for line in lines]


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _train_until_hold(data: Path, run: Path, at: int) -> str | None:
    """The k-th write's name where the subprocess was killed, or None when it finished without reaching it."""
    cmd = [sys.executable, "-m", "ego4d_lta", "train", "--config", "tiny", "--data", str(data), "--run", str(run), "-q"]
    for item in SETS:
        cmd += ["--set", item]
    env = os.environ | hold_env("train-commit") | {"EGO4D_LTA_TEST_HOLD_AT": str(at)}
    proc = subprocess.Popen([*cmd, "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 300
    for line in proc.stderr:  # the hold line comes before the wait: no race with the machine's speed
        if line.startswith(f"[hold] write {at}: "):
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            return line.split(": ", 1)[1].strip()
        assert time.monotonic() < deadline, "training never reached the write"
    assert proc.wait() == 0, proc.stdout.read()
    return None


@pytest.fixture
def subprocess_threads():
    """This process computes with as many torch threads as the killed subprocesses (OMP_NUM_THREADS, which
    conftest sets for them under xdist): float sums then add up in the same order, and weights compare exactly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", threads)))
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_a_kill_at_every_commit_write_resumes_to_the_uninterrupted_run(
    demo_report: dict, synth_data: Path, tmp_path: Path, subprocess_threads: None
) -> None:
    cfg = load_config("tiny", SETS)
    cfg.data.data_dir = str(synth_data)
    train(cfg, tmp_path / "whole", progress=False)
    reference = _metrics(tmp_path / "whole")
    actions = [h["val"]["action"] for h in reference]
    writes = []  # the commit's order, by hand: last.pt, best.pt when val improved, metrics.jsonl; per epoch
    for i, action in enumerate(actions):
        writes += ["last.pt", *(["best.pt"] if all(action < a for a in actions[:i]) else []), "metrics.jsonl"]
    last_epoch = len(writes) - writes[::-1].index("last.pt")  # 1-based index of the last epoch's first write
    points = [1, *range(last_epoch, len(writes) + 1)]  # the run's first write, then every write of an epoch
    for at in points:
        run = tmp_path / f"killed-{at}"
        name = _train_until_hold(synth_data, run, at)
        assert name == writes[at - 1], f"write {at} was {name}, expected {writes[at - 1]}"
        assert list(run.glob(f".{name}.*.tmp")), "the hold leaves a half-written temporary file"
        resumed = train(cfg, run, resume=True, progress=False)
        assert resumed.epochs_done == 2
        assert _metrics(run) == reference, f"killed before write {at} ({name})"
        for ckpt in ("last.pt", "best.pt"):
            a, b = weights(tmp_path / "whole", ckpt), weights(run, ckpt)
            assert all(torch.equal(a[k], b[k]) for k in a), f"{ckpt} after a kill before write {at} ({name})"
        best = torch.load(run / "best.pt", weights_only=False)["state"]
        assert best["epoch"] == best["best"]["epoch"] == min(reference, key=lambda h: h["val"]["action"])["epoch"]
        assert not list(run.glob(".*.tmp")), "temporary files left behind"
    assert _train_until_hold(synth_data, tmp_path / "finished", len(writes) + 1) is None  # no further write


def test_a_full_disk_during_a_save_is_one_line_and_leaves_no_temporary_file(
    demo_report: dict, synth_data: Path, tmp_path: Path
) -> None:
    """RLIMIT_FSIZE makes a write past the limit fail as on a full disk (EFBIG): 1 MB lets config.json through and
    stops last.pt (4 MB for the tiny model) half-way."""
    limit_kb = 1024
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kb * 1024, limit_kb * 1024))

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ego4d_lta", "train", "--config", "tiny", "--data", str(synth_data), "--run", str(run),
           "--set", "train.epochs=1", "-q"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    err = out.stderr.strip().splitlines()
    assert err[-1].startswith(f"ego4d-lta train: error: {run / 'last.pt'}: cannot write ("), err[-1]
    assert "Traceback" not in out.stderr
    assert not list(run.glob(".*.tmp")) and not (run / "last.pt").exists()
