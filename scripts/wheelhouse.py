"""Wheels of ego4d-lta's dependencies for a machine that reaches no package index but has a Python with torch (a
cluster's compute nodes, a GPU box behind a firewall): resolved and downloaded here, for that machine's Python
version and platform, at the tested versions of constraints.txt where it pins them, leaving out what the target
already has (and everything below it: a target's own torch keeps its own CUDA libraries). Packages published only
as source (pytorchvideo, fvcore, iopath) are built here into pure-Python wheels; ego4d-lta's own wheel is added.

    python scripts/wheelhouse.py --python 3.12 --have target-packages.txt --out wheelhouse
    # on the target (no network):
    python -m pip install --no-index --no-deps --target ~/lta-site wheelhouse/*.whl
    export PYTHONPATH=~/lta-site PATH=~/lta-site/bin:$PATH   # `ego4d-lta` and the package

`--have` takes what `python -m pip freeze` (or `pip list`) prints there, or bare names separated by lines or commas.
Prints each wheel and the total size; exit 2 on a bad argument or a package with no wheel for the target.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(39, 16, -1)] + ["manylinux2014_x86_64", "manylinux1_x86_64"]
"""Every manylinux tag a recent x86-64 Linux accepts: pip matches the tags one by one."""
NOISE = "is ignored: it is neither a file nor a directory"


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    url: str


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", required=True, help="the target's Python version, e.g. 3.12")
    ap.add_argument("--platform", action="append", help="a wheel platform tag (repeatable; default: x86-64 manylinux)")
    ap.add_argument("--have", type=Path, help="the target's packages: left out, with what only they need")
    ap.add_argument("--dev", action="store_true", help="also the test dependencies (pytest, hypothesis, ...)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the wheels (made; must be empty if it exists)")
    args = ap.parse_args()
    if not re.fullmatch(r"3\.\d+", args.python):
        return fail(f"--python {args.python!r}: give a major.minor version such as 3.12")
    if args.out.exists() and any(args.out.iterdir()):
        return fail(f"{args.out}: not empty; the wheelhouse goes into a new or empty folder")
    try:
        have = read_have(args.have) if args.have else set()
    except ValueError as e:
        return fail(str(e))
    platforms = args.platform or PLATFORMS
    wanted = top_level(args.dev)
    missing = [r for r in wanted if canonicalize_name(r.name) not in have]
    if not missing:
        print("the target already has every dependency: nothing to download")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "built"
        built.mkdir()
        report = resolve(missing, args.python, platforms, built, Path(tmp))
        if isinstance(report, str):
            return fail(report)
        needed = closure(report, {canonicalize_name(r.name) for r in missing}, have, args.python)
        for wheel in sorted(needed.values(), key=lambda w: w.name):
            local = [p for p in built.glob("*.whl") if canonicalize_name(p.name.split("-")[0]) == wheel.name]
            if local:
                local[0].rename(args.out / local[0].name)
            else:
                error = download(wheel, args.python, platforms, args.out)
                if error:
                    return fail(error)
    project = pip("wheel", "--no-deps", "--quiet", "-w", str(args.out), str(ROOT))
    if project.returncode != 0:
        return fail("ego4d-lta's own wheel did not build:\n" + quiet(project.stderr))
    total = 0
    for path in sorted(args.out.glob("*.whl")):
        total += path.stat().st_size
        print(f"{path.stat().st_size / 2**20:8.2f} MiB  {path.name}")
    print(f"{len(needed) + 1} wheels (ego4d-lta's own included), {total / 2**20:.1f} MiB in {args.out}")
    return 0


def top_level(dev: bool) -> list[Requirement]:
    """The project's dependencies (pyproject.toml), with the dev extra on request."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + (project["optional-dependencies"]["dev"] if dev else [])
    return [Requirement(s) for s in specs]


def read_have(path: Path) -> set[str]:
    """Names from a pip freeze / pip list output or a plain list (lines or commas); versions are ignored."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"--have {path}: {e.strerror}") from None
    names = set()
    for item in re.split(r"[\n,]", text):
        item = item.strip().rstrip(".")
        if not item or item.startswith(("#", "-", "Package")):  # comments, `-e` lines, pip list's header
            continue
        name = re.split(r"[\s=<>@;\[]", item, maxsplit=1)[0]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError(f"--have {path}: {item!r} is not a package name or a pip freeze line")
        names.add(canonicalize_name(name))
    return names


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def target_flags(python: str, platforms: list[str]) -> list[str]:
    flags = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    for p in platforms:
        flags += ["--platform", p]
    return flags


def resolve(reqs: list[Requirement], python: str, platforms: list[str], built: Path, tmp: Path) -> dict | str:
    """pip's resolution for the target (a dry run: metadata only), the pins of constraints.txt applied; the report,
    or why not. A target resolution takes wheels only, so the packages published only as source are found by a
    resolution for this machine first and built here into wheels, which must be pure Python."""
    constraints = ["-c", str(ROOT / "constraints.txt")]
    reqs_text = [str(r) for r in reqs]
    here = dry_run(tmp, [*constraints, *reqs_text])
    if isinstance(here, str):
        return here
    for item in here["install"]:
        if item["download_info"]["url"].endswith(".whl"):
            continue
        meta = item["metadata"]
        made = pip("wheel", "--no-deps", "--quiet", "-w", str(built), f"{meta['name']}=={meta['version']}")
        if made.returncode != 0:
            return f"{meta['name']}=={meta['version']}: published only as source, and it did not build here:\n" + quiet(
                made.stderr
            )
    compiled = [p.name for p in built.glob("*.whl") if not p.name.endswith("-none-any.whl")]
    if compiled:
        return f"{', '.join(compiled)}: built here from source, but compiled for this machine, not the target"
    return dry_run(tmp, ["--find-links", str(built), *constraints, *target_flags(python, platforms), *reqs_text])


def dry_run(tmp: Path, args: list[str]) -> dict | str:
    report = tmp / "report.json"
    done = pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
               "--target", str(tmp / "target"), *args)  # fmt: skip
    if done.returncode != 0:
        return "pip could not resolve:\n" + quiet(done.stderr)
    return json.loads(report.read_text())


def pinned(name: str) -> str:
    """name==version from constraints.txt, or the bare name."""
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        req = line.split("#")[0].strip()
        if req and canonicalize_name(re.split(r"[=<>!~ ]", req, maxsplit=1)[0]) == canonicalize_name(name):
            return req
    return name


def closure(report: dict, roots: set[str], have: set[str], python: str) -> dict[str, Wheel]:
    """The resolved packages reachable from `roots` without passing through one the target has."""
    items = {canonicalize_name(i["metadata"]["name"]): i for i in report["install"]}
    env = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "extra": "",
    }
    needed: dict[str, Wheel] = {}
    todo = [r for r in roots if r in items]
    while todo:
        name = todo.pop()
        if name in needed or name in have:
            continue
        meta = items[name]["metadata"]
        needed[name] = Wheel(name, meta["version"], items[name]["download_info"]["url"])
        for spec in meta.get("requires_dist", []):
            req = Requirement(spec)
            dep = canonicalize_name(req.name)
            if dep in items and (req.marker is None or req.marker.evaluate(env)):
                todo.append(dep)
    return needed


def download(wheel: Wheel, python: str, platforms: list[str], out: Path) -> str | None:
    done = pip("download", "--no-deps", "--quiet", "-d", str(out), *target_flags(python, platforms),
               f"{wheel.name}=={wheel.version}")  # fmt: skip
    return None if done.returncode == 0 else f"{wheel.name}=={wheel.version}: download failed:\n" + quiet(done.stderr)


def quiet(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if NOISE not in line)[-2000:]


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
