"""The package's shape: which groups may import which, so the folders keep showing the data flow.

base -> config -> challenge -> data | models -> runtime -> stages -> workflow -> api -> cli, each importing only
the groups before it (and its own); data and models never import each other; no stage imports another stage;
nothing imports the CLI. `api` is one module, the Python API; the package root re-exports it lazily (by name, on
first use: `import ego4d_lta` imports nothing of it). Of other libraries the package imports only public names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import ego4d_lta

PACKAGE = Path(ego4d_lta.__file__).parent
ORDER = ["base", "config", "challenge", "data", "models", "runtime", "stages", "workflow", "api", "cli"]
RANK = {group: i for i, group in enumerate(ORDER)}
RANK["models"] = RANK["data"]  # side by side: neither may import the other
FORBIDDEN_SAME_RANK = {("data", "models"), ("models", "data")}


def group_of(module: str) -> str:
    """`ego4d_lta.stages.train` -> stages; `ego4d_lta.config` -> config; the package root counts as base."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "base" if len(parts) == 1 else "main"
    return parts[1] if parts[1] in RANK else parts[1].split(".")[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `ego4d_lta` import in the file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ego4d_lta"):
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "ego4d_lta" else [node.module]
            found += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("ego4d_lta")]
    return found


def violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path)
        mine = group_of(me)
        for line, target in project_imports(path):
            theirs = group_of(target)
            if target == "ego4d_lta.__version__":
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
            if mine == "main":
                continue
            if theirs == "cli" and mine != "cli":
                out.append(f"{where}: nothing imports the CLI")
            elif theirs not in RANK:
                out.append(f"{where}: {theirs} is in no group")
            elif RANK[theirs] > RANK[mine]:
                out.append(f"{where}: {mine} may not import the later group {theirs}")
            elif (mine, theirs) in FORBIDDEN_SAME_RANK:
                out.append(f"{where}: data and models never import each other")
            elif mine == "stages" == theirs and target.split(".")[:3] != me.split(".")[:3]:
                out.append(f"{where}: a stage never imports another stage")
    return out


def test_every_module_belongs_to_a_group() -> None:
    groups = {group_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert groups <= {*RANK, "main"}, groups - set(RANK)


def test_imports_follow_the_layers() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("from ego4d_lta.stages.train import train\n", "data may not import the later group stages"),
        ("from ego4d_lta.models.clip import ClipEncoder\n", "data and models never import each other"),
        ("import ego4d_lta.cli\n", "nothing imports the CLI"),
    ],
)
def test_the_check_finds_a_wrong_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, message: str
) -> None:
    """The rule can fail: a data module importing a stage, a model or the CLI is reported."""
    fake = tmp_path / "ego4d_lta"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "bad.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert any(message in v for v in violations()), violations()


def test_no_stage_imports_a_sibling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "ego4d_lta"
    (fake / "stages").mkdir(parents=True)
    (fake / "stages" / "predict.py").write_text("from ego4d_lta.stages.train import most_frequent_action\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert violations() == [
        "ego4d_lta/stages/predict.py:1 imports ego4d_lta.stages.train: a stage never imports another stage"
    ]


def private_imports(package: Path) -> list[str]:
    """Every import of another library's private name (`from submitit.slurm.slurm import _parse_node_list`, `import
    a._b`): those change without notice between releases."""
    out = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if not name.startswith(("ego4d_lta", "__future__")) and re.search(r"(^|\.)_(?!_)", name):
                    out.append(f"{path.relative_to(package.parent)}:{node.lineno} imports {name}")
    return out


def test_other_libraries_are_used_through_public_names(tmp_path: Path) -> None:
    assert private_imports(PACKAGE) == []
    fake = tmp_path / "ego4d_lta"
    fake.mkdir()
    (fake / "bad.py").write_text("from submitit.slurm.slurm import _parse_node_list\nimport os.path, torch._dynamo\n")
    assert private_imports(fake) == [
        "ego4d_lta/bad.py:1 imports submitit.slurm.slurm._parse_node_list",
        "ego4d_lta/bad.py:2 imports torch._dynamo",
    ]


def test_modules_stay_small() -> None:
    """No module over ~400 lines: a bigger one holds more than one concern."""
    lines = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    big = {name: n for name, n in lines.items() if n > 420}
    assert big == {}
