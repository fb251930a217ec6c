"""One writer per folder: an exclusive `flock` on `<folder>/.lock`, which names its holder (pid and host).

A run folder (`train`) and a feature-cache shard (`extract`, `import-features`) each have one writer at a time; a
second is refused in one line naming the first. The kernel drops the lock when its holder exits, however it exits,
so a lock file left by a killed process is free again: no stale-lock clean-up and no guessing from pids.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import weakref
from collections.abc import Iterator
from pathlib import Path

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import printable, printable_path

LOCK_NAME = ".lock"

_HELD: weakref.WeakValueDictionary[Path, FolderLock] = weakref.WeakValueDictionary()
"""The locks this process holds, by folder: taking one again in the same process hands it over (a writer that
failed and was not yet dropped) instead of refusing the process itself. A lock dropped without `release` is
unlocked when it is collected."""


class FolderLock:
    """The exclusive lock on one folder, held until `release` (or the process's exit)."""

    def __init__(self, folder: Path, fd: int, created: bool) -> None:
        self.folder, self.fd, self.created = folder, fd, created

    @classmethod
    def take(cls, folder: Path | str, what: str, hint: str = "") -> FolderLock:
        """Lock `folder` (made if missing) for this process; a `UserError` naming the holder when another process
        has it. `what` says what the folder is ("run", "feature shard"), `hint` what to do instead."""
        folder = Path(folder).absolute()
        mine = _HELD.pop(folder, None)
        if mine is not None and mine.fd >= 0:
            fd, mine.fd = mine.fd, -1
            return cls._register(cls(folder, fd, mine.created))
        created = _make_folder(folder, what)
        while True:  # the file may be unlinked by its holder's release between our open and our flock: retry
            fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(_refusal(folder, what, hint)) from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, folder / LOCK_NAME):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        return cls._register(cls(folder, fd, created))

    @classmethod
    def _register(cls, lock: FolderLock) -> FolderLock:
        _HELD[lock.folder] = lock
        return lock

    def __del__(self) -> None:
        if self.fd >= 0:  # dropped without `release` (a failed writer): the kernel's lock goes with the descriptor
            os.close(self.fd)

    def release(self) -> None:
        """Unlink the lock file (still holding it, so no one else can be holding the name) and unlock; a folder this
        lock made that holds nothing else is removed again."""
        if self.fd < 0:
            return
        if _HELD.get(self.folder) is self:
            _HELD.pop(self.folder, None)
        with contextlib.suppress(OSError):
            (self.folder / LOCK_NAME).unlink()
        os.close(self.fd)
        self.fd = -1
        if self.created:
            with contextlib.suppress(OSError):  # not empty (the writer wrote something) or gone: leave it
                self.folder.rmdir()


@contextlib.contextmanager
def folder_lock(folder: Path | str, what: str, hint: str = "", take: bool = True) -> Iterator[FolderLock | None]:
    """`FolderLock.take` for the block, released at its end; `take=False` only checks that no one holds it
    (a dry run, or a process of a job whose rank 0 holds it), writing nothing."""
    if not take:
        check_free(folder, what, hint)
        yield None
        return
    lock = FolderLock.take(folder, what, hint)
    try:
        yield lock
    finally:
        lock.release()


def check_free(folder: Path | str, what: str, hint: str = "") -> None:
    """A `UserError` naming the holder when another process holds `folder`'s lock; creates nothing."""
    folder = Path(folder).absolute()
    if folder in _HELD:
        return
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # no lock file (or no folder): no writer
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(_refusal(folder, what, hint)) from None
    finally:
        os.close(fd)


def holder(folder: Path) -> str:
    """Who holds `folder`'s lock, as its lock file says: `pid 1234 on host-a` (or why that is unknown)."""
    try:
        pid, host = (folder / LOCK_NAME).read_text(encoding="utf-8", errors="replace").split()[:2]
    except (OSError, ValueError):
        return "a process that has not yet written its pid"
    return f"pid {printable(pid, 20)} on {printable(host, 100)}"


def _refusal(folder: Path, what: str, hint: str) -> str:
    return f"{printable_path(folder)}: this {what} is being written by {holder(folder)}" + (f"; {hint}" if hint else "")


def _make_folder(folder: Path, what: str) -> bool:
    """Make `folder` (and its parents); whether it was made now. A file in its place is a `UserError`."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{printable_path(folder)}: is a file, expected a {what} folder")
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return False
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)
