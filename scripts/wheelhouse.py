"""Wheels of ego4d-lta's dependencies for a machine that reaches no package index but has a Python with torch (a
cluster's compute nodes, a GPU box behind a firewall), made here, where PyPI is reachable.

pip resolves the dependencies for the node's Python, CPU and glibc at the versions of constraints.txt, with the
node's own versions (from `--have`) pinned in their place; what the node has is left out, with everything only it
needs (the node's torch keeps its own CUDA libraries). Packages published only as source (pytorchvideo, fvcore,
iopath) are built here into pure-Python wheels, and ego4d-lta's own wheel is added.

    .venv/bin/python scripts/wheelhouse.py --python 3.12 --have node-packages.txt --out wheelhouse
    # on the node (no network):
    python -m pip install --no-index --no-deps --target ~/ego4d-lta-site wheelhouse/*.whl
    export PYTHONPATH=~/ego4d-lta-site PATH=~/ego4d-lta-site/bin:$PATH   # `ego4d-lta` and the package

`--have` takes what `python -m pip freeze` (or `pip list`) prints on the node, or bare names (lines or commas).
pip evaluates dependency markers with the Python that runs it, so the resolution runs under a Python of the node's
version: this one, `--resolver-python`, or `pythonX.Y` on PATH. Exit 2, with one line, on a bad argument, a
conflict with the node's versions, or a package with no wheel for the node.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
NOISE = "is ignored: it is neither a file nor a directory"


class UsageError(Exception):
    """A bad argument or an environment the wheelhouse cannot be made for: one line, exit 2."""


@dataclass(frozen=True)
class Resolved:
    """One package of pip's resolution (its --report), with what it needs."""

    name: str
    version: str
    requires: tuple[str, ...]
    is_wheel: bool


@dataclass(frozen=True)
class Target:
    python: str
    arch: str
    glibc: tuple[int, int]
    resolver: str
    """A Python of the target's version that runs pip."""

    def marker_env(self) -> dict[str, str]:
        return {
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": self.arch,
            "os_name": "posix",
        }

    def pip_flags(self) -> list[str]:
        """Wheels for this Python, CPU and glibc: every manylinux tag a node with this glibc accepts."""
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{n}_{self.arch}" for n in range(minor, 16, -1)] + [f"manylinux2014_{self.arch}"]
        flags = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp"]
        return flags + [arg for tag in tags for arg in ("--platform", tag)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", required=True, help="the node's Python version, e.g. 3.12")
    ap.add_argument("--have", type=Path, help="the node's packages (pip freeze): left out, and their versions kept")
    ap.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"], help="the node's CPU")
    ap.add_argument(
        "--glibc", default="2.28", help="the node's glibc (python -c 'import platform; print(platform.libc_ver())')"
    )
    ap.add_argument("--resolver-python", help="a Python of the node's version to run pip's resolution with")
    ap.add_argument("--dev", action="store_true", help="also the test dependencies (pytest, hypothesis, ...)")
    ap.add_argument("--out", type=Path, required=True, help="a new or empty folder for the wheels")
    args = ap.parse_args()
    made = filled = False
    try:
        target = make_target(args)
        if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
            raise UsageError(f"--out {args.out}: not an empty folder; the wheelhouse goes into a new or empty one")
        have = read_have(args.have) if args.have else {}
        made = not args.out.exists()
        args.out.mkdir(parents=True, exist_ok=True)
        filled = True
        count = build(target, top_level(args.dev), have, args.out)
    except UsageError as e:
        if filled:  # no half-filled wheelhouse: a rerun starts clean (only what this run put there goes)
            for path in args.out.iterdir():
                path.unlink()
            if made:
                args.out.rmdir()
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = 0
    for path in sorted(args.out.glob("*.whl")):
        total += path.stat().st_size
        print(f"{path.stat().st_size / 2**20:8.2f} MiB  {path.name}")
    print(f"{count} wheels (ego4d-lta's own included), {total / 2**20:.1f} MiB in {args.out}")
    return 0


def make_target(args: argparse.Namespace) -> Target:
    if not re.fullmatch(r"3\.\d+", args.python):
        raise UsageError(f"--python {args.python!r}: give a major.minor version such as 3.12")
    glibc = re.fullmatch(r"(\d+)\.(\d+)", args.glibc)
    if not glibc or int(glibc[1]) != 2 or int(glibc[2]) < 17:
        raise UsageError(f"--glibc {args.glibc!r}: give the node's glibc version, 2.17 or newer, such as 2.28")
    return Target(args.python, args.arch, (2, int(glibc[2])), resolver_python(args.python, args.resolver_python))


def resolver_python(version: str, given: str | None) -> str:
    if given is None and f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    candidate = given or shutil.which(f"python{version}")
    if candidate:
        try:
            code = "import sys, pip; print('%d.%d' % sys.version_info[:2])"
            done = subprocess.run([candidate, "-c", code], capture_output=True, text=True)
        except OSError:  # not there, not a program
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    raise UsageError(
        f"no Python {version} with pip to resolve with (pip evaluates markers with the Python that runs it): "
        f"pass --resolver-python PATH, or put python{version} on PATH"
    )


def top_level(dev: bool) -> list[Requirement]:
    """The project's dependencies (pyproject.toml), with the dev extra on request."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + (project["optional-dependencies"]["dev"] if dev else [])
    return [Requirement(s) for s in specs]


def read_have(path: Path) -> dict[str, str | None]:
    """Name -> version (None where not given) from a pip freeze / pip list output or a plain list of names."""
    try:
        text = path.read_text()
    except OSError as e:
        raise UsageError(f"--have {path}: {e.strerror}") from None
    have: dict[str, str | None] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-", "Package")):  # comments, `-e` lines, pip list's header
            continue
        listed = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s+(\d\S*)(\s+\S.*)?", line)  # pip list: name 1.2 [path]
        items = [line] if listed or parses(line) else [i.strip().rstrip(".") for i in line.split(",")]  # names, names
        for item in filter(None, items):
            if listed:
                have[canonicalize_name(listed[1])] = listed[2].split("+")[0]
                continue
            try:
                req = Requirement(item)
            except InvalidRequirement:
                raise UsageError(f"--have {path}: {item!r} is not a package name or a pip freeze line") from None
            pins = [s.version for s in req.specifier if s.operator in ("==", "===")]
            have[canonicalize_name(req.name)] = pins[0].split("+")[0] if pins else None  # 2.11.0+cu130 -> 2.11.0
    return have


def unpublished_hint(message: str, have: dict[str, str | None]) -> str:
    """Where pip cannot use a version the node has: it may be one PyPI lacks (a vendor's or a source build), or
    one the project does not accept."""
    pip_gave_up = ("No matching distribution", "Could not find a version", "Cannot install")
    if not any(words in message for words in pip_gave_up):
        return ""
    named = [n for n, v in have.items() if v and re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", message, re.I)]
    if not named:
        return ""
    name = named[0]
    return (f" ({name}=={have[name]} is the node's: if PyPI lacks that version, list {name} in --have without it; "
            "else it is not one the project accepts)")  # fmt: skip


def parses(line: str) -> bool:
    try:
        Requirement(line)
    except InvalidRequirement:
        return False
    return True


def build(target: Target, wanted: list[Requirement], have: dict[str, str | None], out: Path) -> int:
    """Fills `out`; the number of wheels."""
    missing = [r for r in wanted if canonicalize_name(r.name) not in have]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        built, count = work / "built", 0
        built.mkdir()
        if missing:
            # Everything is resolved, so that the node's versions are checked against what the project asks for.
            constraints = write_constraints(work / "constraints.txt", have)
            try:
                report = resolve(target, wanted, constraints, built, work)
            except UsageError as e:
                raise UsageError(f"{e}{unpublished_hint(str(e), have)}") from None
            for pkg in closure(report, missing, set(have), target.marker_env()):
                local = [p for p in built.glob("*.whl") if canonicalize_name(p.name.split("-")[0]) == pkg.name]
                if local:
                    shutil.move(local[0], out / local[0].name)
                else:
                    spec = f"{pkg.name}=={pkg.version}"
                    pip(target, "download", "--no-deps", "-d", str(out), *target.pip_flags(), spec)
                count += 1
        source = work / "project"  # a clean copy: an in-tree build could carry stale modules from build/
        shutil.copytree(ROOT / "ego4d_lta", source / "ego4d_lta", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, source / name)
        pip(target, "wheel", "--no-deps", "-w", str(out), str(source), resolver=sys.executable)
    return count + 1


BUILT_FOR_ONE_TORCH = "torchvision"
"""Each of its releases is built for one torch release: where the node has its own torch, pip picks the match."""


def write_constraints(path: Path, have: dict[str, str | None]) -> Path:
    """constraints.txt, with the node's own version in place of the pin of each package it has."""
    if "torch" in have and have["torch"] is None and BUILT_FOR_ONE_TORCH not in have:
        raise UsageError("--have lists torch without its version and no torchvision: give torch's (torch==X.Y.Z), "
                         "since each torchvision release is built for one torch release")  # fmt: skip
    drop = set(have) | ({BUILT_FOR_ONE_TORCH} if "torch" in have else set())
    lines = []
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        spec = line.split("#")[0].strip()
        if spec and canonicalize_name(re.split(r"[=<>!~ ;\[]", spec, maxsplit=1)[0]) in drop:
            continue
        lines.append(line)
    lines += [f"{name}=={version}" for name, version in sorted(have.items()) if version]
    path.write_text("\n".join(lines) + "\n")
    return path


def resolve(target: Target, reqs: list[Requirement], constraints: Path, built: Path, work: Path) -> list[Resolved]:
    """pip's resolution for the node (a dry run: metadata only). A resolution for a foreign platform takes wheels
    only, so the packages published only as source are found by one for this machine first (under the same
    Python: the node's versions may not exist for another) and built here."""
    reqs_text = [str(r) for r in reqs]
    for pkg in dry_run(target, work, ["-c", str(constraints), *reqs_text], target.resolver):
        if not pkg.is_wheel:
            pip(target, "wheel", "--no-deps", "-w", str(built), f"{pkg.name}=={pkg.version}")
    compiled = [p.name for p in built.glob("*.whl") if not p.name.endswith("-none-any.whl")]
    if compiled:
        raise UsageError(f"{', '.join(compiled)}: built here from source, but compiled for this machine, not the node")
    flags = ["--find-links", str(built), "-c", str(constraints), *target.pip_flags()]
    return dry_run(target, work, [*flags, *reqs_text], target.resolver)


def dry_run(target: Target, work: Path, args: list[str], resolver: str) -> list[Resolved]:
    report = work / "report.json"
    pip(target, "install", "--dry-run", "--ignore-installed", "--report", str(report), "--target", str(work / "t"),
        *args, resolver=resolver)  # fmt: skip
    return [
        Resolved(
            canonicalize_name(item["metadata"]["name"]),
            item["metadata"]["version"],
            tuple(item["metadata"].get("requires_dist", [])),
            item["download_info"]["url"].endswith(".whl"),
        )
        for item in json.loads(report.read_text())["install"]
    ]


def closure(resolved: list[Resolved], roots: list[Requirement], have: set[str], env: dict[str, str]) -> list[Resolved]:
    """The resolved packages the roots need on the node, with their extras followed, stopping at what it has. A
    needed package missing from the resolution (pip judged its marker with another Python) is an error."""
    by_name = {p.name: p for p in resolved}
    needed: dict[str, Resolved] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    while todo:
        name, extras = todo.pop()
        if name in have or all((name, e) in seen for e in extras | {""}):
            continue
        if name not in by_name:
            raise UsageError(f"{name} is needed on the node but pip did not resolve it (resolved with another Python?)")
        seen.update((name, e) for e in extras | {""})
        pkg = needed[name] = by_name[name]
        for spec in pkg.requires:
            req = Requirement(spec)
            if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in extras | {""}):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return sorted(needed.values(), key=lambda p: p.name)


def pip(target: Target, *args: str, resolver: str | None = None) -> None:
    done = subprocess.run([resolver or target.resolver, "-m", "pip", *args, "--quiet"], capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if NOISE not in line and line.strip()]
        why = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "no message")
        raise UsageError(f"pip {args[0]}: {why.removeprefix('ERROR: ')}")


if __name__ == "__main__":
    sys.exit(main())
