"""Every command block of README.md and docs/*.md runs as written on synthetic data, or this file says why it cannot.

Each ```bash block runs in a workspace of its own (its cwd and its HOME) in one `bash -euo pipefail`, statement by
statement (a statement: a line with its `\\` continuations, or a `for ... done` loop), exactly as written:

- `NOT_RUN` names, by pattern, each statement that cannot run here and why: a download, real weights, Slurm, a GPU,
  the network, root, or minutes of CPU;
- a statement the README's synthetic block runs with only its small-data options added (`--data data-synth`, `--set
  train.*` / `model.*`) is run there (`test_readme.py`), not again here;
- every other statement runs. What a block assumes (the user's own files, or what its statements that cannot run
  would have made) is laid out from the demo's outputs, as `GIVEN` lists per block; `~` is the workspace's HOME,
  whose `ego4d/` is a synthetic Ego4D download.

A statement is run unless a table says otherwise, and a table entry that matches nothing fails, so a new command in
the docs runs here unless someone writes down why it cannot. The README's ```python block runs too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from test_readme import commands

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SYNTHETIC_MARK = "<!-- readme-test: synthetic -->"

# The first pattern that matches a statement (from its start, comments left out) says why it is not run here.
NOT_RUN: dict[str, str] = {
    r"bash scripts/setup\.sh": "installs .venv/ from the package index (network); CI runs it before this suite, the "
    "demo it then starts is the `demo_report` fixture's, and docs/slurm.md's `.venv/bin/ego4d-lta demo` runs here",
    r"bash scripts/test\.sh": "the whole suite, this test included (CI runs exactly this)",
    r"ego4d --output_directory": "the Ego4D CLI's download: network and a signed licence (stood in by the synthetic "
    "download in ~/ego4d)",
    r"(for .*; do )?ego4d-lta extract ": "needs the real SlowFast R101 and CLIP ViT-B/16 weight files (not in the "
    "repo); tests/test_extract.py extracts with tiny weight files, and a block that goes on gets the demo's cache",
    r"ego4d-lta train .*--launcher slurm": "submits a Slurm job through submitit (tests/test_slurm.py, as root)",
    r"ego4d-lta train --config slowfast_clip": "needs a full-size `extract` cache (real weights) and 30 epochs of the "
    "full-size model; a block that goes on gets the demo's trained `tiny` run as its run",
    r"ego4d-lta upload \S+ --private": "submits to EvalAI: network and an account (tests/test_upload.py runs the real "
    "client against a local fake of EvalAI's API)",
    r"sbatch ": "submits to Slurm; tests/test_slurm.py runs slurm/*.sh on a local cluster (as root, `-m slurm`)",
    r"torchrun --nproc-per-node 8 ": "8 GPUs",
    r"(SLURM_LOCAL_GPUS=\d+ )?sudo ": "root: installs Slurm and starts its daemons (tests/test_slurm.py's cluster)",
    r"\.venv/bin/python scripts/wheelhouse\.py": "pip resolves and downloads from PyPI (network); "
    "tests/test_wheelhouse.py pins the rules the script adds",
    r"python -m pip install --no-index": "installs the wheelhouse of the line before, which needs the network",
    r"ego4d-lta synth data-synth --size small": "renders 89 clips: 171 s on a loaded 2-core "
    "machine, more than this test's share of CI; the same generator at --size tiny makes the demo's data",
}

# What a block assumes, by a phrase only that block holds; `lay_out` makes each from the demo's outputs.
GIVEN: dict[tuple[str, str], tuple[str, ...]] = {
    ("README.md", "lta_models"): ("data/features", "runs/slowfast_clip"),  # what its extract and train lines make
    ("README.md", "import ego4d_lta"): ("data", "runs/slowfast_clip", "submissions/slowfast_clip-val.json"),
    ("docs/data.md", "--src data/clips_full"): ("data/clips_full",),
    ("docs/data.md", "import-features --split train"): ("data/annotations",),
    ("docs/ensembles.md", "--pool 50"): ("data", "runs/a", "runs/b", "A-val.json", "B-val.json", "C-val.json"),
    # what its `sbatch slurm/predict.sh` line writes
    ("docs/slurm.md", "--array=0-15"): ("data/annotations", "submissions/slowfast_clip-test.json"),
    # a finished demo (the demo fixture's, which `ego4d-lta demo` reuses) and what its `sbatch` lines write
    ("docs/slurm.md", "local_cluster.sh up"): ("demo", "submissions/tiny-test.json"),
    ("docs/submitting.md", "--split val  --run runs/slowfast_clip"): ("data", "runs/slowfast_clip"),
    ("docs/submitting.md", "test_recognitions.json"): ("data", "runs/slowfast", "test_recognitions.json"),
    ("docs/submitting.md", "--plot ed.png"): (
        "data/annotations",
        "submissions/myrun-test.json",
        "submissions/myrun-val.json",
    ),
    ("docs/submitting.md", "EVALAI_AUTH_TOKEN"): ("data/annotations", "submissions/myrun-test.json"),
    ("docs/training.md", "report runs/slowfast"): ("runs/slowfast", "runs/slowfast_clip", "runs/slowfast_clip_attn"),
}

MIN_RUN = 32
"""Statements run here today: a pattern in `NOT_RUN` that takes runnable ones away has to lower this on purpose."""

SMALL_DATA = re.compile(r" --data data-synth| --set (?:train|model)\.\w+=\S+")
"""What the README's synthetic block adds to a documented command to run it on its small data in a minute."""


@dataclass(frozen=True)
class Block:
    doc: str  # relative to the repository
    line: int  # of its opening fence
    lang: str  # bash or python
    text: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def doc_blocks() -> list[Block]:
    """The fenced blocks of README.md (but its synthetic block, test_readme.py's) and docs/*.md."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for fence in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
            if not text[: fence.start()].rstrip().endswith(SYNTHETIC_MARK):
                line = text.count("\n", 0, fence.start()) + 1
                found.append(Block(str(doc.relative_to(ROOT)), line, fence.group(1), fence.group(2)))
    return found


def unmarked_commands(blocks: list[Block]) -> list[str]:
    """Blocks that hold a command but are not marked ```bash (or ```python): neither run nor parsed."""
    command = re.compile(r"^\s*(ego4d-lta|ego4d|sbatch|torchrun|bash|python|export|for) ", re.M)
    return [b.id for b in blocks if b.lang not in ("bash", "python") and command.search(b.text)]


def statements(block: Block) -> list[str]:
    """A block's statements as written: a line with its `\\` continuations, or a `for ...; do` up to its `done`;
    comment lines left out. A python block is one statement."""
    if block.lang == "python":
        return [block.text]
    found: list[str] = []
    loop: list[str] = []
    for line in re.sub(r"\\\n", "\0", block.text).splitlines():
        line = line.replace("\0", "\\\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if loop or (re.match(r"for .*; do\b", line) and not re.search(r"\bdone\b", line)):
            loop.append(line)
            if re.match(r"\s*done\b", line):
                found.append("\n".join(loop))
                loop = []
        else:
            found.append(line)
    assert not loop, f"a `for` without its `done`: {loop}"
    return found


def key(statement: str) -> str:
    """A statement on one line, without comments or repeated spaces: what the tables match."""
    lines = [line.split(" #")[0] for line in statement.replace("\\\n", " ").splitlines()]
    return " ".join(" ".join(lines).split())


def synthetic_twins() -> set[str]:
    """The README synthetic block's commands without their small-data options."""
    text = (ROOT / "README.md").read_text()
    block = re.search(re.escape(SYNTHETIC_MARK) + r"\n```bash\n(.*?)```", text, re.S)
    assert block, "README.md lost its tested synthetic-data block"
    return {key(SMALL_DATA.sub("", s)) for s in statements(Block("README.md", 0, "bash", block.group(1)))}


def plan(statement: str, twins: set[str]) -> tuple[str, str]:
    """("run", ""), ("not run", why) or ("twin", where it runs) for one statement."""
    k = key(statement)
    for pattern, why in NOT_RUN.items():
        if re.match(pattern, k):
            return "not run", why
    if k in twins:
        return "twin", "README.md's synthetic block runs it with --data data-synth and a small model"
    return "run", ""


def given(block: Block) -> tuple[str, ...]:
    return next((names for (doc, phrase), names in GIVEN.items() if doc == block.doc and phrase in block.text), ())


BLOCKS = [b for b in doc_blocks() if b.lang in ("bash", "python")]
TWINS = synthetic_twins()
RUNNABLE = [b for b in BLOCKS if any(plan(s, TWINS)[0] == "run" for s in statements(b))]


def test_every_statement_runs_or_says_why_not() -> None:
    plans = [(b, s, plan(s, TWINS)) for b in BLOCKS for s in statements(b)]
    ran = [s for _, s, (what, _) in plans if what == "run"]
    assert len(ran) >= MIN_RUN, f"only {len(ran)} documented statements run (MIN_RUN = {MIN_RUN})"
    keys = [key(s) for _, s, _ in plans]
    for pattern in NOT_RUN:
        assert any(re.match(pattern, k) for k in keys), f"NOT_RUN pattern {pattern!r} matches no documented statement"
    for doc, phrase in GIVEN:
        holders = [b.id for b in BLOCKS if b.doc == doc and phrase in b.text]
        assert len(holders) == 1, f"GIVEN key ({doc!r}, {phrase!r}) names {len(holders)} blocks: {holders}"
    for block in (b for b in BLOCKS if b.lang == "bash"):  # the runner sees every command test_readme.py parses
        found = [c for s in statements(block) for c in commands(s + "\n")]
        assert found == commands(block.text), f"{block.id}: the statements lost a command"
    assert unmarked_commands(doc_blocks()) == [], "mark these blocks ```bash, so that they run or are parsed"


def test_the_plan_runs_what_no_table_names() -> None:
    assert plan("ego4d-lta frobnicate --all", TWINS) == ("run", "")
    assert plan("sbatch --wait slurm/predict.sh --split test", TWINS)[0] == "not run"
    assert plan("ego4d-lta predict --split test --run runs/slowfast", TWINS)[0] == "twin"
    assert plan("ego4d-lta predict --split test --run runs/slowfast --set train.epochs=3", TWINS)[0] == "run"
    assert unmarked_commands([Block("x.md", 1, "", "data/\n  clips/\n"), Block("y.md", 1, "sh", "ego4d-lta x\n")]) == [
        "y.md:1"
    ]
    loop = Block("x.md", 1, "bash", "# a\nfor s in a b; do\n  ego4d-lta x --split $s \\\n    -q\ndone\nls # b\n")
    assert [key(s) for s in statements(loop)] == ["for s in a b; do ego4d-lta x --split $s -q done", "ls"]


@pytest.fixture(scope="module")
def ego4d_download(demo_report: dict, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`~/ego4d` as the Ego4D CLI leaves it (v2/annotations, v2/clips, v2/<released feature set>), synthetic: the
    demo's annotations and one of its clips, and the released-feature download of the same dataset."""
    from ego4d_lta.stages.synth import generate
    from ego4d_lta.workflow.demo import DEMO_SYNTH

    out = tmp_path_factory.mktemp("ego4d")
    twin = out / "no-videos"
    generate(twin, replace(DEMO_SYNTH, videos=False, features_like_ego4d=True), progress=False)
    v2, annotations = out / "v2", demo_dir / "data" / "annotations"
    for f in annotations.iterdir():  # the same dataset, so its released rows are the demo videos'
        assert f.read_bytes() == (twin / "annotations" / f.name).read_bytes(), f"{f.name} differs from the demo's"
    shutil.copytree(annotations, v2 / "annotations")
    (v2 / "clips").mkdir()
    shutil.copy(demo_dir / "data" / "clips" / f"{train_clips(demo_dir)[0]}.mp4", v2 / "clips")
    for feature_set in (twin / "ego4d_features" / "v2").iterdir():
        shutil.move(feature_set, v2 / feature_set.name)
    shutil.rmtree(twin)
    return out


def train_clips(demo: Path) -> list[str]:
    rows = json.loads((demo / "data" / "annotations" / "fho_lta_train.json").read_text())["clips"]
    return list(dict.fromkeys(row["clip_uid"] for row in rows))


@pytest.fixture(scope="module")
def stand_in_run(demo_report: dict, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run as `ego4d-lta train` leaves it in a checkout, reading `data/` relative to where the commands run: the
    `tiny` config for one epoch on the demo's features (the demo's own run names the demo's folder instead)."""
    where = tmp_path_factory.mktemp("stand-in-run")
    for name in ("annotations", "features"):
        shutil.copytree(demo_dir / "data" / name, where / "data" / name)
    cmd = [sys.executable, "-m", "ego4d_lta", "train", "--config", "tiny", "--run", "runs/tiny", "--data", "data"]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([*cmd, "--set", "train.epochs=1", "-q"], cwd=where, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return where / "runs" / "tiny"


@dataclass(frozen=True)
class Sources:
    demo: Path  # a finished demo folder
    run: Path  # stand_in_run
    download: Path  # ego4d_download


def lay_out(name: str, ws: Path, src: Sources) -> None:
    """Make `name` in the workspace: a run is the stand-in run, a val or test file the demo's submission, data/ the
    demo's annotations and feature cache, data/clips_full one of its clips, demo/ the finished demo."""
    dst = ws / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    if name == "demo":
        shutil.copytree(src.demo, dst, ignore=shutil.ignore_patterns("*.lock"))
    elif name == "data":
        lay_out("data/annotations", ws, src)
        lay_out("data/features", ws, src)
    elif name in ("data/annotations", "data/features"):
        shutil.copytree(src.demo / name, dst)
    elif name == "data/clips_full":
        dst.mkdir()
        shutil.copy(src.demo / "data" / "clips" / f"{train_clips(src.demo)[0]}.mp4", dst)
    elif name.startswith("runs/"):
        shutil.copytree(src.run, dst)
    elif name == "test_recognitions.json":
        write_recognitions(src.demo / "data" / "annotations", dst)
    elif split := re.fullmatch(r".*-(val|test)\.json", name):
        shutil.copy(src.demo / "submissions" / f"tiny-{split.group(1)}.json", dst)
    else:
        raise KeyError(f"lay_out does not know how to make {name}")


def write_recognitions(annotations: Path, out: Path) -> None:
    """What an action recogniser writes for test: every observed segment as the train split's most frequent pair."""
    rows = json.loads((annotations / "fho_lta_train.json").read_text())["clips"]
    verb, noun = Counter((r["verb_label"], r["noun_label"]) for r in rows).most_common(1)[0][0]
    test = json.loads((annotations / "fho_lta_test_unannotated.json").read_text())["clips"]
    out.write_text(json.dumps({f"{r['clip_uid']}_{r['action_idx']}": {"verb": verb, "noun": noun} for r in test}))


def tool_bin(folder: Path) -> Path:
    """`ego4d-lta` and `python` that run this checkout's code with the test's interpreter, whatever PYTHONPATH says."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ego4d-lta"
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from ego4d_lta.cli import main; sys.exit(main())"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(code)} "$@"\n')  # any path
    script.chmod(0o755)
    (folder / "python").symlink_to(sys.executable)
    return folder


def workspace(block: Block, tmp_path: Path, src: Sources) -> tuple[Path, dict[str, str]]:
    """The block's cwd (a checkout's `.venv/bin` holding the tools, what it assumes laid out) and environment."""
    ws, home = tmp_path / "ws", tmp_path / "home"
    tools = tool_bin(ws / ".venv" / "bin")
    home.mkdir()
    (home / "ego4d").symlink_to(src.download)
    for name in given(block):
        lay_out(name, ws, src)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EGO4D_LTA_DATA", "EGO4D_LTA_FEATURES", "EVALAI"))}
    env.setdefault("MPLCONFIGDIR", str(Path.home() / ".config" / "matplotlib"))  # not a font cache per HOME
    env |= {"HOME": str(home), "PATH": os.pathsep.join([str(tools), str(Path(sys.executable).parent), env["PATH"]])}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return ws, env


def run_block(block: Block, ws: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, list[str], set[int]]:
    """Run the block's runnable statements in one shell, each followed by a mark; returns what ran to its end."""
    todo = [s for s in statements(block) if plan(s, TWINS)[0] == "run"]
    marks = ws.parent / "ran"
    if block.lang == "python":
        done = subprocess.run([sys.executable, "-"], input=block.text, cwd=ws, env=env, capture_output=True, text=True)
        if done.returncode == 0:
            marks.write_text("0\n")
    else:
        script = "".join(f"{s}\necho {i} >> {shlex.quote(str(marks))}\n" for i, s in enumerate(todo))
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=ws, env=env, capture_output=True, text=True, timeout=600
        )
    ended = {int(i) for i in marks.read_text().split()} if marks.exists() else set()
    return done, todo, ended


def promised_outputs(statement: str) -> list[str]:
    """The files a statement's `# -> a/b.json, c.json` comment says it writes (a bare name: in the first's folder)."""
    claim = re.search(r"# -> (.*)$", statement, re.M)
    if not claim:
        return []
    names = [n.strip() for n in claim.group(1).split(",")]
    folder = os.path.dirname(names[0])
    return [n if "/" in n else os.path.join(folder, n) for n in names]


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_documented_block_runs_as_written(
    block: Block, demo_report: dict, demo_dir: Path, stand_in_run: Path, ego4d_download: Path, tmp_path: Path
) -> None:
    ws, env = workspace(block, tmp_path, Sources(demo_dir, stand_in_run, ego4d_download))
    started = time.perf_counter()
    done, todo, ended = run_block(block, ws, env)
    failed = next((s for i, s in enumerate(todo) if i not in ended), None)
    output = f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert failed is None and done.returncode == 0, f"{block.id}: `{key(failed or '')}` failed:\n{output}"
    for statement in todo:
        for path in promised_outputs(statement):
            assert (ws / path).is_file(), f"{block.id}: `{key(statement)}` says it writes {path}; it did not"
    print(f"{block.id}: {len(todo)} statements in {time.perf_counter() - started:.1f} s")
