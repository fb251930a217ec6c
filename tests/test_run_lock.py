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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(cmd: list[str]) -> list[subprocess.Popen]:
    """Rank 0 and rank 1 of a 2-process gloo job, started as torchrun starts them (RANK, WORLD_SIZE, MASTER_*) but
    with no agent that would kill one when the other exits: a rank left waiting stays waiting."""
    port = str(_free_port())
    env = os.environ | {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
    ranks = [env | {"RANK": str(rank), "LOCAL_RANK": str(rank)} for rank in (0, 1)]
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e) for e in ranks]


def _finish(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    """Each rank's exit status and stderr; a rank still running after `timeout` s fails the test (and is killed)."""
    deadline, outs = time.monotonic() + timeout, []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outs.append((proc.returncode, err))
    except subprocess.TimeoutExpired:
        pytest.fail(f"a rank was still running after {timeout:.0f} s: left waiting in a collective", pytrace=False)
    finally:
        for proc in procs:
            if proc.poll() is None:
                _kill(proc)
    return outs


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()} if folder.exists() else {}


def test_every_rank_of_a_job_refused_the_run_exits_in_one_line(tmp_path: Path) -> None:
    """Issue 25: only rank 0 took the run's lock, before the job's processes met; refused, it exited, and rank 1
    waited for it in the process group's rendezvous (gloo's default: 30 minutes). Now rank 0's outcome is
    broadcast: both ranks exit 2 at once with the same line naming the holder, and neither writes into the run."""
    data = write_dataset(tmp_path / "data", {"train": {f"t{c}": c for c in range(6)}, "val": {"v0": 0}, "test": {}})
    run = tmp_path / "run"
    holder = _holder(f"from ego4d_lta.base.folder_lock import FolderLock\nlock = FolderLock.take({str(run)!r}, 'run')")
    before = _listing(run)
    try:
        outs = _finish(_two_ranks(_train(data, run, "--set", "train.seed=2")), timeout=240)
    finally:
        _kill(holder)
    for rank, (code, err) in enumerate(outs):
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (rank, code, err[-2000:])
        assert f"this run is being written by pid {holder.pid} on {socket.gethostname()}" in lines[0], (rank, err)
    assert _listing(run) == before


def test_a_job_on_a_free_run_trains_and_releases_it(tmp_path: Path) -> None:
    """The same two ranks on a free run folder: rank 0 holds it, both train, and the lock is gone after."""
    data = write_dataset(tmp_path / "data", {"train": {f"t{c}": c for c in range(6)}, "val": {"v0": 0}, "test": {}})
    run = tmp_path / "run"
    outs = _finish(_two_ranks(_train(data, run)), timeout=400)
    assert all(code == 0 for code, _ in outs), [err[-2000:] for _, err in outs]
    assert (run / "last.pt").is_file() and not (run / LOCK_NAME).exists()
