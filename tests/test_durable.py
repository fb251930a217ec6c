"""The one durable write path (`base/durable.py`): whole files or none, no temporary file left by a failure, one
line naming the file for a full disk or a bad path, and synth recognising its own interrupted output."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ego4d_lta.base.durable import STARTED, atomic_target, publish, staged_file, sweep_leftovers, temporary_name
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import write_bytes_atomic, write_json_atomic
from ego4d_lta.cli import main


class Boom(Exception):
    pass


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = write_bytes_atomic(tmp_path / "a.json", b"old")
    with pytest.raises(Boom), atomic_target(path) as tmp:
        tmp.write_bytes(b"half")
        raise Boom
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    write_json_atomic(path, {"new": 1})
    assert json.loads(path.read_bytes()) == {"new": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert (path.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_temporary_names_are_per_process_and_per_write(tmp_path: Path) -> None:
    a, b = temporary_name(tmp_path / "x.pt"), temporary_name(tmp_path / "x.pt", ".png")
    assert a != b and a.name.startswith(f".x.pt.{os.getpid()}.") and a.name.endswith(".tmp")
    assert b.name.endswith(".tmp.png")


def test_staged_files_are_renamed_together_or_removed(tmp_path: Path) -> None:
    finals = [tmp_path / "s.json", tmp_path / "s.meta.json"]
    staged = []
    for final in finals:
        with staged_file(final, ".json") as tmp:
            tmp.write_text(final.name)
        staged.append((tmp, final))
    assert not any(f.exists() for f in finals) and all(t.exists() for t, _ in staged)
    publish(staged)
    assert [f.read_text() for f in finals] == ["s.json", "s.meta.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.meta.json"]


def test_a_path_under_a_file_is_one_line_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"file/sub/a\.json: cannot write \(") as e:
        write_json_atomic(tmp_path / "file" / "sub" / "a.json", {})
    assert "\n" not in str(e.value)


def test_the_sweeper_removes_leftovers_older_than_the_process(tmp_path: Path) -> None:
    old, new, other = tmp_path / ".a.json.1.ab.tmp", tmp_path / ".a.json.2.cd.tmp.json", tmp_path / ".b.pt.3.ef.tmp"
    for p in (old, new, other):
        p.write_text("x")
    os.utime(old, (STARTED - 60, STARTED - 60))
    os.utime(other, (STARTED - 60, STARTED - 60))
    os.utime(new, (time.time(), time.time()))  # a live writer's (this process's age or younger): kept
    assert sweep_leftovers(tmp_path, ["a.json"]) == [old]
    assert new.exists() and other.exists()
    assert sorted(sweep_leftovers(tmp_path, older=None)) == sorted([new, other])


def _file_limit(kb: int):
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (kb * 1024, kb * 1024))

    return limit


def test_synth_on_a_full_disk_is_one_line_and_the_rerun_finishes_its_own_leftover(tmp_path: Path, capsys) -> None:
    """A file-size limit fails a write as a full disk does (EFBIG): 100 KB lets the marker and the taxonomy through
    and stops the train split. The half-written dataset is recognised by the next synth and finished."""
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "ego4d_lta", "synth", str(out), "--no-videos", "-q"]
    res = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_file_limit(100), timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "fho_lta_train.json: cannot write (File too large)" in err[0], err[0]
    assert json.loads((out / "synthetic.json").read_text())["status"] == "in progress"
    assert not list(out.rglob(".*.tmp*")), "a failed write leaves no temporary file"
    assert main(["synth", str(out), "--no-videos", "-q"]) == 0
    info = json.loads((out / "synthetic.json").read_text())
    assert info["status"] == "complete" and info["config"]["videos"] is False
    assert (out / "annotations" / "fho_lta_train.json").stat().st_size > 100 * 1024
