"""The README's commands stay runnable: its synthetic-data block runs as written, and every other `ego4d-lta`
line in it parses with the real argument parser (no flag that does not exist, no missing required one)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ego4d_lta.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def commands(block: str) -> list[str]:
    """`ego4d-lta ...` commands of a bash block: continuations joined, comments dropped, `$s` as a split; an sbatch
    script's arguments (`slurm/extract.sh ARGS`) count as that command's (`extract ARGS`)."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        line = re.sub(r"^(for .*; do |do )", "", line).replace("; done", "").replace("$s", "train")
        match = re.search(r"(?:^|\s|/)ego4d-lta (\S.*)$", line) or re.search(
            r"slurm/(extract|train|predict)\.sh ?(.*)$", line
        )
        if match and not line.startswith("#"):
            out.append(" ".join(match.groups()))
    return out


def script_headers() -> list[str]:
    """The usage lines at the top of `slurm/*.sh` (`#   sbatch ... slurm/extract.sh ARGS`), as commands."""
    found = []
    for script in sorted((ROOT / "slurm").glob("*.sh")):
        header = re.sub(r"\\\n#\s*", " ", script.read_text())
        for line in re.findall(r"^#\s+(sbatch .*slurm/(?:extract|train|predict)\.sh.*)$", header, re.M):
            found += commands(re.sub(r"\[.*?\]", "", line) + "\n")
    return found


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) of every documented command: README, docs/ and the slurm scripts' headers."""
    found = [(doc.name, c) for doc in DOCS for block in bash_blocks(doc.read_text()) for c in commands(block)]
    return found + [("slurm/*.sh", c) for c in script_headers()]


def test_every_full_extract_names_both_weights() -> None:
    """Issue 23.2: docs/slurm.md and slurm/extract.sh left out --clip-weights; every array task then failed."""
    extracts = [(where, c) for where, c in documented_commands() if c.startswith("extract ")]
    assert any(where == "slurm/*.sh" for where, _ in extracts) and any(w == "slurm.md" for w, _ in extracts)
    for where, command in extracts:
        args = build_parser().parse_args(shlex.split(command))
        if args.encoders == "full":
            assert args.slowfast_weights, f"{where}: `{command}` has no --slowfast-weights"
            assert args.clip_weights or args.clip_pretrained, f"{where}: `{command}` has no --clip-weights"


def test_every_documented_command_parses() -> None:
    parser = build_parser()
    found = documented_commands()
    for where, command in found:
        try:
            parser.parse_args(shlex.split(command.replace("...", "x")))
        except SystemExit as e:
            pytest.fail(f"{where}: `ego4d-lta {command}` does not parse (exit {e.code})")
    assert len(found) > 20


def test_the_check_finds_a_wrong_flag() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(shlex.split(commands("ego4d-lta predict --split val --no-such-flag\n")[0]))


@pytest.mark.slow
def test_readme_synthetic_block_runs_as_written(tmp_path: Path) -> None:
    block = re.search(r"<!-- readme-test: synthetic -->\n```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md lost its tested synthetic-data block"
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("EGO4D_LTA_DATA", None)
    env.pop("EGO4D_LTA_FEATURES", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.group(1)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("labels-val.json", "slowfast-test.json", "labels-recognised-test.json"):
        assert (tmp_path / "submissions" / name).is_file()
    assert "valid val submission" in done.stdout and done.stdout.count("valid test submission") == 2
    assert "val (" in done.stdout and "(majority class: verb" in done.stdout  # recognise's accuracy line
