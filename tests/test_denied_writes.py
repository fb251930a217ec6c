"""Writes the OS refuses: a folder the user may not write into (EACCES) and a read-only file system (EROFS). Every
command that writes answers with one line naming the path it could not write, exit 2, never a traceback, and leaves
its inputs as they were.

Tests usually run as root, whom a folder's mode does not stop (CAP_DAC_OVERRIDE). The EACCES cases therefore run
each command in a real subprocess that keeps uid 0 but has CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped from
its capability bounding set (`setpriv`, util-linux, on every Debian/Ubuntu image): the kernel then checks a root-owned
0555 folder as for any owner and refuses with EACCES, while everything else root owns (the interpreter, the
temporary folders) stays readable. Run as another user, the 0555 folder refuses by itself. A read-only mount needs
privileges CI may not have, so the EROFS cases make a folder read-only at the OS boundary, in process: every call
that would create, open for writing or rename a file under it (`open`, `os.open`, `os.mkdir`, `os.replace`) fails as
the kernel fails it on a read-only mount. Nothing is skipped: a machine where the EACCES sandbox cannot be made fails.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_labels import write_dataset

from ego4d_lta.cli import main

LABELS = ["--config", "labels", "--device", "cpu", "-q", "--log", "none", "--set", "train.epochs=1",
          "--set", "train.batch_size=16"]  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A labels dataset, a one-epoch run on it and its val submission: what the writing commands read."""
    root = tmp_path_factory.mktemp("denied")
    data = write_dataset(root / "data", {"train": {f"t{c}": c for c in range(6)}, "val": {"v0": 0}, "test": {}})
    assert main(["train", *LABELS, "--data", str(data), "--run", str(root / "run")]) == 0
    args = ["predict", "--run", str(root / "run"), "--split", "val", "--data", str(data), "-q"]
    assert main([*args, "--out", str(root / "s.json")]) == 0
    return {"data": data, "run": root / "run", "submission": root / "s.json"}


def commands(inputs: dict[str, Path], denied: Path) -> dict[str, tuple[list[str], Path]]:
    """Each writing command aimed into `denied`, and the path its error must name."""
    data, run, sub = (str(inputs[k]) for k in ("data", "run", "submission"))
    return {
        "synth": (["synth", str(denied / "ds"), "--no-videos", "-q"], denied / "ds"),
        "report": (["report", run, "-o", str(denied / "reports")], denied / "reports"),
        "predict --out": (
            ["predict", "--run", run, "--split", "val", "--data", data, "-q", "--out", str(denied / "val.json")],
            denied / "val.json",
        ),
        "ensemble -o": (
            ["ensemble", sub, sub, "-o", str(denied / "e.json"), "--split", "val", "--data", data],
            denied / "e.json",
        ),
        "validate --plot": (
            ["validate", sub, "--split", "val", "--data", data, "--plot", str(denied / "ed.png")],
            denied / "ed.png",
        ),
        "train --run": (["train", *LABELS, "--data", data, "--run", str(denied / "run")], denied / "run"),
    }


CASES = ["synth", "report", "predict --out", "ensemble -o", "validate --plot", "train --run"]


def _digest(paths: list[Path]) -> dict[str, str]:
    """sha256 of every file under `paths`: the inputs, compared before and after."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _sandbox() -> list[str]:
    """The command prefix under which a 0555 folder refuses writes: none for a user other than root; for root,
    `setpriv` dropping the capabilities that bypass file modes. A machine where that cannot be made fails here."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root needs setpriv (util-linux) to test EACCES: install util-linux", pytrace=False)
    prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"setpriv cannot drop CAP_DAC_OVERRIDE here: {probe.stderr.strip()}", pytrace=False)
    return prefix


@pytest.mark.parametrize("case", CASES)
def test_a_folder_the_user_may_not_write_is_one_line(case: str, inputs: dict[str, Path], tmp_path: Path) -> None:
    denied = tmp_path / "denied"
    denied.mkdir()
    denied.chmod(0o555)
    args, named = commands(inputs, denied)[case]
    before = _digest(list(inputs.values()))
    try:
        out = subprocess.run(
            [*_sandbox(), sys.executable, "-m", "ego4d_lta", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
    finally:
        denied.chmod(0o755)
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(err) == 1 and "Traceback" not in out.stderr, (out.returncode, out.stderr)
    assert err[0].startswith(f"ego4d-lta {args[0]}: error: {named}") and "Permission denied" in err[0], err[0]
    assert list(denied.iterdir()) == [] and _digest(list(inputs.values())) == before


def _read_only(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Make `root` behave as a read-only mount for this process: creating, writing, renaming or making a folder
    under it raises OSError(EROFS) naming the path, as the kernel does; reads are untouched."""
    top = os.path.abspath(root)

    def under(path: object) -> bool:
        if isinstance(path, int):
            return False
        name = os.path.abspath(os.fsdecode(path))
        return name == top or name.startswith(top + os.sep)

    def refuse(path: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open, real_os_open, real_mkdir, real_replace = builtins.open, os.open, os.mkdir, os.replace

    def open_(file, mode="r", *args, **kwargs):
        if under(file) and set(mode) & set("wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if under(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        if under(src) or under(dst):
            refuse(dst)
        return real_replace(src, dst, *args, **kwargs)

    for module, name, fake in ((builtins, "open", open_), (io, "open", open_), (os, "open", os_open),
                               (os, "mkdir", mkdir), (os, "replace", replace), (os, "rename", replace)):  # fmt: skip
        monkeypatch.setattr(module, name, fake)


@pytest.mark.parametrize("case", CASES)
def test_a_read_only_file_system_is_one_line(
    case: str, inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    mount = tmp_path / "mount"
    mount.mkdir()
    args, named = commands(inputs, mount)[case]
    before = _digest(list(inputs.values()))
    capsys.readouterr()
    with monkeypatch.context() as patched:
        _read_only(patched, mount)
        code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, (code, err)
    assert err[0].startswith(f"ego4d-lta {args[0]}: error: {named}") and "Read-only file system" in err[0], err[0]
    assert list(mount.iterdir()) == [] and _digest(list(inputs.values())) == before
