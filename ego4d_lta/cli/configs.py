"""`ego4d-lta configs`: the presets with their purpose, or one resolved config as TOML with each field's meaning."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
from functools import cache
from pathlib import Path

from ego4d_lta.config import CONFIG_DIR, Config, presets

HELP = "list the config presets, or print one resolved (with --set) as commented TOML"
EPILOG = "example: ego4d-lta configs tiny --set train.epochs=5 > my.toml && ego4d-lta train --config my.toml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default=None, help="a preset or a .toml file (default: list the presets)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. train.epochs=5")


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.config import load_config

    if args.name is None:
        print(list_presets())
        return 0
    print(render_toml(load_config(args.name, list(args.set or []))), end="")
    return 0


def purpose(path: Path) -> str:
    """A preset's first comment line (what it is for)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def list_presets() -> str:
    width = max(len(name) for name in presets())
    rows = [f"{name:<{width}}  {purpose(CONFIG_DIR / f'{name}.toml')}" for name in presets()]
    more = "ego4d-lta configs NAME [--set KEY=VALUE]: the resolved config with each field's meaning"
    return "\n".join([*rows, "", more])


@cache
def field_docs() -> dict[str, str]:
    """`section.field` -> the docstring under it in config.py (the attribute docstrings are not kept at runtime)."""
    import ego4d_lta.config as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    docs = {}
    defaults = Config()
    for f in dataclasses.fields(defaults):
        value = getattr(defaults, f.name)
        section = classes.get(type(value).__name__) if dataclasses.is_dataclass(value) else None
        if section is None:
            continue
        body = section.body
        for node, after in zip(body, [*body[1:], None], strict=True):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[f"{f.name}.{node.target.id}"] = " ".join(after.value.value.split())
    return docs


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # strings and lists of strings: JSON's escapes are TOML's


def render_toml(cfg: Config) -> str:
    """The whole resolved config as TOML that `--config` reads back, each field under a comment saying what it is."""
    docs = field_docs()
    lines = [f"# {cfg.name}: resolved config (ego4d-lta configs); every field, defaults included", ""]
    lines.append(f"name = {_toml_value(cfg.name)}")
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        if not dataclasses.is_dataclass(section):
            continue
        lines += ["", f"[{f.name}]"]
        for sub in dataclasses.fields(section):
            doc = docs.get(f"{f.name}.{sub.name}")
            if doc:
                lines.append(f"# {doc}")
            lines.append(f"{sub.name} = {_toml_value(getattr(section, sub.name))}")
    return "\n".join(lines) + "\n"
