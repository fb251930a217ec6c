"""A run folder's files: one writer at a time (its lock), each file committed whole or not at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch.distributed as dist

from ego4d_lta.base.durable import sweep_leftovers
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.folder_lock import FolderLock, check_free, folder_lock
from ego4d_lta.base.jsonio import printable_path
from ego4d_lta.runtime.distributed import broadcast_object

COMMIT_FILES = ("last.pt", "best.pt", "metrics.jsonl", "config.json")
"""What training writes into a run folder; `.<name>.*.tmp` beside them are temporary files of a failed write."""
BUSY_HINT = "wait for it to finish, or use another --run"


@contextmanager
def hold_run(run_dir: Path, is_main: bool) -> Iterator[None]:
    """The run folder's lock for the block, taken by the job's rank 0 (the other ranks write nothing there); a
    second writer, with or without --resume, is refused naming the holder's pid and host.

    In a job whose process group is up, rank 0's outcome is broadcast before any rank goes on: when it is refused,
    every rank raises the same one-line error (none is left waiting in a collective for a rank 0 that has gone), and
    no rank works for a folder its rank 0 does not hold."""
    if not dist.is_initialized():
        with folder_lock(run_dir, "run", BUSY_HINT) if is_main else nullcontext():
            yield
        return
    lock, refusal = None, None
    if is_main:
        try:
            lock = FolderLock.take(run_dir, "run", BUSY_HINT)
        except UserError as e:
            refusal = str(e)
        except BaseException as e:
            broadcast_object(f"{printable_path(run_dir)}: rank 0 could not lock the run folder ({type(e).__name__})")
            raise
    refusal = broadcast_object(refusal)
    if refusal is not None:
        raise UserError(refusal)
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


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
