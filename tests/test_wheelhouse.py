"""scripts/wheelhouse.py: what it leaves out for a node that already has packages, and what it reads as a package list.

The resolution and the downloads are pip's (a network step, run by hand: docs/slurm.md has its figures); these
tests pin the two rules of its own on top of them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("wheelhouse", ROOT / "scripts" / "wheelhouse.py")
wheelhouse = sys.modules["wheelhouse"] = importlib.util.module_from_spec(spec)  # dataclasses look it up there
spec.loader.exec_module(wheelhouse)


def item(name: str, version: str, *requires: str) -> dict:
    return {
        "metadata": {"name": name, "version": version, "requires_dist": list(requires)},
        "download_info": {"url": f"https://files.example/{name}-{version}-py3-none-any.whl"},
    }


REPORT = {
    "install": [
        item("open_clip_torch", "3.3.0", "torch>=2.0", "ftfy", "timm>=1.0", "pytest; extra == 'test'"),
        item("ftfy", "6.3.1", "wcwidth"),
        item("wcwidth", "0.9.4"),
        item("torch", "2.14.1", "nvidia-cudnn-cu12; platform_system == 'Linux'", "sympy"),
        item("nvidia-cudnn-cu12", "9.1.0"),
        item("sympy", "1.14"),
        item("timm", "1.0.31", "huggingface-hub"),
        item("huggingface-hub", "1.33.0"),
        item("pytest", "9.2.0"),
        item("tomli", "2.0.1"),
        item("Pytorch.Video", "0.1.5", "tomli; python_version < '3.11'", "iopath"),
        item("iopath", "0.1.10"),
    ]
}


def test_what_the_node_has_is_left_out_with_everything_only_it_needs() -> None:
    needed = wheelhouse.closure(REPORT, {"open-clip-torch", "pytorch-video"}, {"torch", "timm"}, "3.12")
    # torch is there: neither it nor its CUDA libraries nor sympy travel; timm likewise takes huggingface-hub along.
    # The test extra is not asked for; tomli's marker is false on 3.12.
    assert set(needed) == {"open-clip-torch", "ftfy", "wcwidth", "pytorch-video", "iopath"}
    assert needed["ftfy"].version == "6.3.1" and needed["ftfy"].url.endswith("ftfy-6.3.1-py3-none-any.whl")


def test_markers_are_evaluated_for_the_target_python_not_this_one() -> None:
    assert "tomli" in wheelhouse.closure(REPORT, {"pytorch-video"}, set(), "3.10")
    assert "tomli" not in wheelhouse.closure(REPORT, {"pytorch-video"}, set(), "3.12")
    everything = wheelhouse.closure(REPORT, {"open-clip-torch"}, set(), "3.12")
    assert {"torch", "nvidia-cudnn-cu12", "sympy", "huggingface-hub"} <= set(everything)  # nothing there: all of it


def test_package_lists_in_every_form_pip_prints(tmp_path: Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text(
        "# comment\nTorch==2.11.0\nnumpy @ file:///tmp/numpy.whl\n-e git+https://x/y.git#egg=mine\ntyping_extensions>=4\n"
    )
    assert wheelhouse.read_have(freeze) == {"torch", "numpy", "typing-extensions"}
    listing = tmp_path / "list.txt"
    listing.write_text("Package    Version\n---------- -------\nopen_clip_torch 3.3.0\nPyYAML     6.0.4\n")
    assert wheelhouse.read_have(listing) == {"open-clip-torch", "pyyaml"}
    names = tmp_path / "names.txt"
    names.write_text("absl-py, accelerate, zipp.\n")
    assert wheelhouse.read_have(names) == {"absl-py", "accelerate", "zipp"}


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("torch==2.11\n$(rm -rf ~)\n")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.whl").write_text("")
    for args, words in (
        (["--python", "3", "--out", str(tmp_path / "o")], "--python '3'"),
        (["--python", "3.12", "--out", str(full)], "not empty"),
        (["--python", "3.12", "--have", str(bad), "--out", str(tmp_path / "o")], "not a package name"),
        (["--python", "3.12", "--have", str(tmp_path / "none.txt"), "--out", str(tmp_path / "o")], "none.txt"),
    ):
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "wheelhouse.py"), *args], capture_output=True, text=True
        )
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / "o").exists()


def test_every_dependency_is_a_root() -> None:
    """The roots are pyproject's dependencies (with the dev extra on request), so nothing the project imports is
    missed when the node has little."""
    names = {r.name for r in wheelhouse.top_level(dev=False)}
    assert {"torch", "open_clip_torch", "pytorchvideo", "av", "rapidfuzz"} <= names
    assert "pytest" not in names and "pytest" in {r.name for r in wheelhouse.top_level(dev=True)}
