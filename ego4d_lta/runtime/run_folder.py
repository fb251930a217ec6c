"""A run folder's files: one writer at a time (its lock), each file committed whole or not at all."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from ego4d_lta.base.durable import sweep_leftovers
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.folder_lock import check_free, folder_lock

COMMIT_FILES = ("last.pt", "best.pt", "metrics.jsonl", "config.json")
"""What training writes into a run folder; `.<name>.*.tmp` beside them are temporary files of a failed write."""
BUSY_HINT = "wait for it to finish, or use another --run"


def hold_run(run_dir: Path, is_main: bool) -> AbstractContextManager:
    """The run folder's lock for the block on the job's rank 0 (the other ranks write nothing there); a second
    writer, with or without --resume, is refused naming the holder's pid and host."""
    return folder_lock(run_dir, "run", BUSY_HINT) if is_main else nullcontext()


def check_run_free(run_dir: Path) -> None:
    """The dry run's check of the lock: refused as the real run would be, creating nothing."""
    check_free(run_dir, "run", BUSY_HINT)


def commit_file(path: Path, write: Callable[[Path], object]) -> None:
    """One write into the run folder (`write(path)` writes atomically); a failure such as a full disk is one line,
    and no temporary file stays behind."""
    try:
        write(path)
    except (OSError, RuntimeError) as e:  # torch reports a failed write as a RuntimeError
        remove_leftovers(path.parent)
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0][:160]
        raise UserError(f"{path}: cannot write ({reason})") from None


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Temporary files of writes that a kill or a full disk interrupted (`.last.pt.1234.tmp`, ...), removed."""
    return sweep_leftovers(run_dir, COMMIT_FILES, older=None)  # all of them: the caller holds the run's lock
