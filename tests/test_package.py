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


def _pins(lines: list[str]) -> dict[str, str]:
    """name -> exact version of `name==version` lines (comments, options and the package itself left out)."""
    reqs = [Requirement(line) for line in (x.split("#")[0].strip() for x in lines) if line and line[0].isalnum()]
    return {r.name.lower().replace("_", "-"): str(r.specifier) for r in reqs}


def test_environment_yml_has_the_tested_pins_of_constraints_txt() -> None:
    """Issue 23.8: environment.yml copied pyproject's open ranges; it installs constraints.txt's exact pins, the
    package with its dev tools, and says how to add the EvalAI client (scripts/evalai-requirements.txt)."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert any(d.replace(" ", "") in ("python=3.11", "python=3.11.*") for d in conda), conda
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == _pins((ROOT / "constraints.txt").read_text().splitlines())
    assert all(v.startswith("==") for v in _pins(pip_section).values())
    assert "-e .[dev]" in pip_section, "pip section must install the package with its dev tools"
    text = (ROOT / "environment.yml").read_text()
    assert "scripts/evalai-requirements.txt" in text and "evalai==1.3.18" in text


def test_gitignore_covers_what_the_documented_commands_make() -> None:
    """Issue 23.8: the README's commands make data-synth/ and reports/ in the checkout."""
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for folder in ("/data-synth/", "/reports/", "/runs/", "/demo/", "/data/"):
        assert folder in ignored, folder


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


def test_setup_sh_says_each_step_as_it_starts_and_its_time_as_it_ends() -> None:
    """Issue 23.4: scripts/setup.sh printed nothing for about 4 minutes; each long step now announces itself."""
    import re

    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert 'echo "[setup] $1: done in $took s"' in text
    steps = re.findall(r"^\s*step (\S+)$", text, re.M)
    assert {"torch", "packages", "byte-compile", "evalai"} <= set(steps)
    for block in re.split(r"^\s*step \S+$", text, flags=re.M)[:-2]:  # each step's commands, up to the final check
        assert 'begin "' in block, block[-300:]


def test_the_demo_says_its_broken_clips_are_planted(synth_data: Path) -> None:
    """Issue 23.4: the demo's planted missing and corrupt clips were bare `warning:` lines."""
    from ego4d_lta.workflow.demo import planted_note

    assert "1 missing and 1 corrupt clips are planted on purpose" in planted_note(synth_data, "test")
    assert planted_note(synth_data, "val") == "" and planted_note(ROOT, "test") == ""
