"""The one durable write path: every file the toolkit writes goes through a temporary file beside it.

`.<name>.<pid>.<random>.tmp[<suffix>]` is written, fsynced and renamed into place (`atomic_target`), or staged and
renamed later together with others (`staged_file` + `publish`, a submission and its sidecar); on any failure the
temporary file is removed. A kill leaves only such a temporary file, which `sweep_leftovers` removes later; the
final file is always either the old one or the whole new one. OS errors that say something about the user's disk
or paths (a full disk, a read-only folder, a file where a folder must be) become one `UserError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ego4d_lta.base.errors import ENVIRONMENT_ERRNOS, UserError

_UMASK = os.umask(0o022)  # read the process's umask (there is no getter), then put it back
os.umask(_UMASK)
STARTED = time.time()
"""About when this process started (base is imported first): temporary files older than this are not its own."""


def temporary_name(path: Path, suffix: str = "") -> Path:
    """`.<name>.<pid>.<random>.tmp<suffix>` beside `path`: no two processes (or two writes of one) share it."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp{suffix}")


def cannot_write(path: Path, error: OSError) -> UserError | OSError:
    """A user's-disk OS error as one line naming `path` (not the temporary file); any other error unchanged."""
    if error.errno not in ENVIRONMENT_ERRNOS:
        return error
    from ego4d_lta.base.jsonio import printable_path

    return UserError(f"{printable_path(path)}: cannot write ({error.strerror or error})")


@contextlib.contextmanager
def staged_file(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """A temporary file for `path` that the block writes (by name: torch.save, np.savez, savefig, ...); fsynced
    after it, not renamed (`publish` does that). Removed when the block fails. `suffix`: an extension a writer
    needs on the name (".npz", ".png")."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_write(path, e) from None
    tmp = temporary_name(path, suffix)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)  # as `open` makes it (mkstemp and some writers make 0600)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise cannot_write(path, e) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish(staged: Iterable[tuple[Path, Path]]) -> None:
    """Rename staged temporary files onto their final names, in order; any left (a failure) are removed."""
    staged = list(staged)
    try:
        for tmp, final in staged:
            try:
                Path(tmp).replace(final)
            except OSError as e:
                raise cannot_write(final, e) from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_target(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """`staged_file` renamed onto `path` when the block succeeds: the usual single-file write."""
    path = Path(path)
    with staged_file(path, suffix) as tmp:
        yield tmp
    publish([(tmp, path)])


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """`data` to `path` through `atomic_target`."""
    path = Path(path)
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def sweep_leftovers(
    folder: Path | str, names: Iterable[str] | None = None, older: float | None = STARTED
) -> list[Path]:
    """Temporary files `.<name>.*.tmp*` in `folder` (of `names`, or of any name) that a kill or a failed write left,
    removed. Only those older than `older` (default: this process's start, so another live writer's are kept);
    None: all of them (the caller holds the folder's lock)."""
    folder = Path(folder)
    patterns = [f".{name}.*.tmp*" for name in names] if names is not None else [".*.tmp*"]
    found = []
    for pattern in patterns:
        for path in folder.glob(pattern):
            with contextlib.suppress(OSError):
                if older is None or path.stat().st_mtime < older:
                    path.unlink()
                    found.append(path)
    return found
