"""scripts/wheelhouse.py: what it leaves out for a node that already has packages, what it pins to the node's
versions, and what it reads as a package list.

The resolution and the downloads are pip's, over the network (run by hand; docs/slurm.md has the figures); these
tests pin the rules the script adds on top of them, on stub resolutions."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("wheelhouse", ROOT / "scripts" / "wheelhouse.py")
wheelhouse = sys.modules["wheelhouse"] = importlib.util.module_from_spec(spec)  # dataclasses look it up there
spec.loader.exec_module(wheelhouse)

THIS = f"{sys.version_info.major}.{sys.version_info.minor}"


def pkg(name: str, version: str, *requires: str) -> object:
    return wheelhouse.Resolved(name, version, requires, is_wheel=True)


RESOLVED = [
    pkg("open-clip-torch", "3.3.0", "torch>=2.0", "ftfy", "timm>=1.0", "pytest; extra == 'test'"),
    pkg("ftfy", "6.3.1", "wcwidth"),
    pkg("wcwidth", "0.9.4"),
    pkg("torch", "2.14.1", "nvidia-cudnn-cu12; platform_system == 'Linux'", "sympy"),
    pkg("nvidia-cudnn-cu12", "9.1.0"),
    pkg("sympy", "1.14"),
    pkg("timm", "1.0.31", "huggingface-hub"),
    pkg("huggingface-hub", "1.33.0"),
    pkg("pytest", "9.2.0"),
    pkg("tomli", "2.0.1"),
    pkg("pytorchvideo", "0.1.5", "tomli; python_version < '3.11'", "iopath", "fvcore[all]"),
    pkg("iopath", "0.1.10"),
    pkg("fvcore", "0.1.5", "yacs", "tabulate; extra == 'all'", "termcolor; extra == 'none'"),
    pkg("yacs", "0.1.8"),
    pkg("tabulate", "0.10.0"),
    pkg("termcolor", "3.3.0"),
]


def env(python: str) -> dict[str, str]:
    return wheelhouse.Target(python, "x86_64", (2, 28), sys.executable).marker_env()


def names(found: list) -> set[str]:
    return {p.name for p in found}


def test_what_the_node_has_is_left_out_with_everything_only_it_needs() -> None:
    roots = [Requirement("open_clip_torch>=2.24"), Requirement("pytorchvideo")]
    needed = wheelhouse.closure(RESOLVED, roots, {"torch", "timm"}, env("3.12"))
    # torch is there: neither it nor its CUDA libraries nor sympy travel; timm likewise keeps huggingface-hub.
    # open_clip's test extra is not asked for; tomli's marker is false on 3.12; fvcore[all] brings tabulate only.
    assert names(needed) == {"open-clip-torch", "ftfy", "wcwidth", "pytorchvideo", "iopath", "fvcore", "yacs"} | {
        "tabulate"
    }
    everything = wheelhouse.closure(RESOLVED, roots[:1], set(), env("3.12"))
    assert {"torch", "nvidia-cudnn-cu12", "sympy", "huggingface-hub"} <= names(everything)  # the node has nothing


def test_markers_are_judged_for_the_node_and_a_needed_package_pip_left_out_is_an_error() -> None:
    roots = [Requirement("pytorchvideo")]
    assert "tomli" in names(wheelhouse.closure(RESOLVED, roots, set(), env("3.10")))
    assert "tomli" not in names(wheelhouse.closure(RESOLVED, roots, set(), env("3.12")))
    # pip judged `tomli; python_version < '3.11'` with a newer Python than the node's and did not resolve it
    without_tomli = [p for p in RESOLVED if p.name != "tomli"]
    with pytest.raises(wheelhouse.UsageError, match="tomli is needed on the node but pip did not resolve it"):
        wheelhouse.closure(without_tomli, roots, set(), env("3.10"))


def test_the_nodes_versions_replace_the_tested_pins(tmp_path: Path) -> None:
    have = {"torch": "2.11.0", "numpy": "2.5.2", "timm": None}
    text = wheelhouse.write_constraints(tmp_path / "c.txt", have).read_text().splitlines()
    pins: dict[str, list[str]] = {}
    for line in text:
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            pins.setdefault(canonicalize_name(req.name), []).append(str(req.specifier))
    assert pins["torch"] == ["==2.11.0"] and pins["numpy"] == ["==2.5.2"]  # the node's, once
    # constraints.txt's own pins of these are gone: torchvision's follows the node's torch, timm's is the node's
    assert "torchvision" not in pins and "timm" not in pins
    assert {"open-clip-torch", "av", "rapidfuzz"} <= set(pins) and pins["av"] == ["==18.1.0"]


def test_package_lists_in_every_form_pip_prints(tmp_path: Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text(
        "# comment\nTorch==2.11.0+cu130\nnumpy @ file:///tmp/numpy.whl\n-e git+https://x/y.git#egg=mine\n"
        "typing_extensions>=4,<5\npkg[a,b]==1.0\n"
    )
    assert wheelhouse.read_have(freeze) == {"torch": "2.11.0", "numpy": None, "typing-extensions": None, "pkg": "1.0"}
    listing = tmp_path / "list.txt"
    listing.write_text(
        "Package    Version\n---------- -------\nopen_clip_torch 3.3.0\nPyYAML     6.0.4\nmine 0.1 /src/mine\n"
    )
    assert wheelhouse.read_have(listing) == {"open-clip-torch": "3.3.0", "pyyaml": "6.0.4", "mine": "0.1"}
    bare = tmp_path / "names.txt"
    bare.write_text("absl-py, accelerate, zipp.\n")
    assert wheelhouse.read_have(bare) == {"absl-py": None, "accelerate": None, "zipp": None}


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("torch==2.11\n$(rm -rf ~)\n")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.whl").write_text("")
    out = str(tmp_path / "o")
    for args, words in (
        (["--python", "3", "--out", out], "--python '3'"),
        (["--python", THIS, "--glibc", "2.5", "--out", out], "--glibc '2.5'"),
        (["--python", "3.99", "--out", out], "no Python 3.99 with pip"),
        (["--python", THIS, "--out", str(full)], "not an empty folder"),
        (["--python", THIS, "--out", str(full / "x.whl")], "not an empty folder"),
        (["--python", THIS, "--have", str(bad), "--out", out], "not a package name"),
        (["--python", THIS, "--have", str(tmp_path / "none.txt"), "--out", out], "none.txt"),
    ):
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "wheelhouse.py"), *args], capture_output=True, text=True
        )
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / "o").exists() and (full / "x.whl").exists()  # nothing made, nothing of theirs gone


@pytest.mark.parametrize("existed", [False, True])
def test_a_run_that_fails_half_way_leaves_no_wheels_and_the_users_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existed: bool
) -> None:
    out = tmp_path / "house"
    if existed:
        out.mkdir()

    def fails_after_one_wheel(target, wanted, have, folder: Path) -> int:
        (folder / "av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl").write_bytes(b"half")
        raise wheelhouse.UsageError("pip download: No matching distribution found for rapidfuzz==3.14.6")

    monkeypatch.setattr(wheelhouse, "build", fails_after_one_wheel)
    monkeypatch.setattr(sys, "argv", ["wheelhouse.py", "--python", THIS, "--out", str(out)])
    assert wheelhouse.main() == 2
    assert out.exists() == existed and (not existed or not any(out.iterdir()))


def test_a_bare_torch_is_refused_and_an_unpublished_node_version_gets_a_hint(tmp_path: Path) -> None:
    with pytest.raises(wheelhouse.UsageError, match="torch without its version"):
        wheelhouse.write_constraints(tmp_path / "c.txt", {"torch": None})
    wheelhouse.write_constraints(tmp_path / "c.txt", {"torch": None, "torchvision": None})  # the node has both
    have = {"torch": "2.6.0a0", "numpy": "2.5.2", "torchvision": None}
    message = "pip install: No matching distribution found for torch==2.6.0a0"
    assert "torch==2.6.0a0 is the node's" in wheelhouse.unpublished_hint(message, have)
    vendor = "pip install: Cannot install torch<3 and >=2.4 because these package versions have conflicting ..."
    assert "list torch in --have without it" in wheelhouse.unpublished_hint(vendor, have)
    assert wheelhouse.unpublished_hint("pip install: Cannot install av>=17 because ...", have) == ""  # not the node's
    assert wheelhouse.unpublished_hint("No matching distribution found for torchvision==0.1", have) == ""


def test_the_roots_are_the_projects_dependencies() -> None:
    roots = {r.name for r in wheelhouse.top_level(dev=False)}
    assert {"torch", "open_clip_torch", "pytorchvideo", "av", "rapidfuzz"} <= roots and "pytest" not in roots
    assert "pytest" in {r.name for r in wheelhouse.top_level(dev=True)}
