"""The package installs as documented: console script, `python -m`, environment.yml in step."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

import ego4d_lta

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_matches_pyproject_dependencies() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert any(d.replace(" ", "") in ("python=3.11", "python=3.11.*") for d in conda), conda
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_reqs = {str(Requirement(r)) for r in pip_section if not r.startswith(("-", "."))}
    project = _pyproject()["project"]
    assert env_reqs == {str(Requirement(r)) for r in project["dependencies"]}
    assert any(r.startswith("-e .") or r.startswith(".") for r in pip_section), "pip section must install the package"


def test_constraints_pin_every_dependency_exactly() -> None:
    """CI installs with constraints.txt: every runtime and dev dependency has a tested == pin."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            assert str(req.specifier).startswith("=="), line
            pins[req.name.lower().replace("_", "-")] = req
    project = _pyproject()["project"]
    for spec in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} has no pin in constraints.txt"
        pinned = next(iter(pins[name].specifier)).version
        assert req.specifier.contains(pinned), f"constraints.txt pins {name}=={pinned} outside {req.specifier}"


def test_python_m_and_console_script_agree() -> None:
    out = subprocess.run([sys.executable, "-m", "ego4d_lta", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"ego4d-lta {ego4d_lta.__version__}"
    script = Path(sys.executable).with_name("ego4d-lta")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for verb in ("demo", "synth", "validate"):
        assert verb in out.stdout


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line.strip() for line in ci.splitlines() if line.strip().startswith("bash scripts/"))
    assert command in readme
