"""One writer per run folder and per feature-cache shard: a second process is refused in one line naming the
holder's pid and host, and a lock left by a killed process is free again. Every case here is two real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import hold_env
from test_labels import write_dataset

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.folder_lock import LOCK_NAME, FolderLock, check_free

TESTS = Path(__file__).parent


def _holder(code: str, ready: str = "held") -> subprocess.Popen:
    """A Python subprocess running `code`, then printing `ready` and waiting to be killed."""
    head = f"import sys, time\nsys.path.insert(0, {str(TESTS)!r})\n"
    script = f"{head}{textwrap.dedent(code)}\nprint({ready!r}, flush=True)\ntime.sleep(600)\n"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == ready, proc.stderr.read() if proc.poll() is not None else line
    return proc


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()


def test_a_second_process_is_refused_naming_the_holder_until_it_dies(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    proc = _holder(f"from ego4d_lta.base.folder_lock import FolderLock\nlock = FolderLock.take({str(folder)!r}, 'run')")
    try:
        for attempt in (lambda: FolderLock.take(folder, "run", "use another --run"), lambda: check_free(folder, "run")):
            with pytest.raises(UserError, match=f"being written by pid {proc.pid} on {socket.gethostname()}"):
                attempt()
    finally:
        _kill(proc)
    assert (folder / LOCK_NAME).exists()  # a SIGKILL leaves the file; the kernel dropped its lock
    lock = FolderLock.take(folder, "run")
    assert (folder / LOCK_NAME).read_text().split() == [str(os.getpid()), socket.gethostname()]
    lock.release()
    assert not (folder / LOCK_NAME).exists()
    FolderLock.take(tmp_path / "new", "run").release()
    assert not (tmp_path / "new").exists(), "a folder the lock made and nothing else wrote is removed again"


def _train(data: Path, run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ego4d_lta", "train", "--config", "labels", "--data", str(data), "--run", str(run),
            "--device", "cpu", "-q", "--log", "none", "--set", "train.epochs=1", "--set", "train.batch_size=16",
            *extra]  # fmt: skip


def test_two_trains_on_one_run_the_second_is_refused(tmp_path: Path) -> None:
    """The first `train` holds at its first write of last.pt; a second `train` on the same run, with or without
    --resume or --dry-run, is one line naming the first's pid and host, exit 2, and leaves the run as it was."""
    data = write_dataset(tmp_path / "data", {"train": {f"t{c}": c for c in range(6)}, "val": {"v0": 0}, "test": {}})
    run = tmp_path / "run"
    env = os.environ | hold_env("train-commit") | {"EGO4D_LTA_TEST_HOLD_AT": "1"}
    first = subprocess.Popen(_train(data, run, "--set", "train.seed=1"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    for line in first.stderr:  # the hold line comes before the wait
        if line.startswith("[hold] write 1: "):
            break
        assert time.monotonic() < deadline, "training never reached its first write"
    try:
        before = sorted(p.name for p in run.iterdir())
        for extra in ((), ("--resume",), ("--dry-run",)):
            out = subprocess.run(_train(data, run, "--set", "train.seed=2", *extra), capture_output=True, text=True)
            assert out.returncode == 2, (extra, out.stderr[-2000:])
            err = out.stderr.strip().splitlines()
            assert len(err) == 1 and "Traceback" not in out.stderr, out.stderr
            assert f"pid {first.pid} on {socket.gethostname()}" in err[0], err[0]
            assert sorted(p.name for p in run.iterdir()) == before
    finally:
        _kill(first)
    out = subprocess.run(_train(data, run, "--resume"), capture_output=True, text=True)  # the dead holder's lock
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run / "last.pt").exists() and not (run / LOCK_NAME).exists()


def test_a_shard_being_written_is_refused_to_a_second_writer(tmp_path: Path) -> None:
    from test_cache_integrity import DIMS, MANIFEST, _index, build

    from ego4d_lta.data.feature_cache import ShardWriter

    split_dir = tmp_path / "val"
    code = "from pathlib import Path\nfrom test_cache_integrity import build\n"
    proc = _holder(f"{code}writer = build(Path({str(split_dir)!r}), finish=False, skip=('clip-c',))")
    try:
        with pytest.raises(UserError, match=f"feature shard is being written by pid {proc.pid} on "):
            ShardWriter.open(split_dir, MANIFEST, (0, 1), _index(), DIMS)
    finally:
        _kill(proc)
    writer = ShardWriter.open(split_dir, MANIFEST, (0, 1), _index(), DIMS)  # resumes the killed writer's shard
    assert writer.pending_clips() == ["clip-c"]
    writer.finish()
    assert not (writer.path / LOCK_NAME).exists()
    build(split_dir)  # and a later writer in this process takes it again
