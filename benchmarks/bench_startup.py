"""How long `ego4d-lta` takes to start, against a bare `python -c pass`.

Runs each command in a fresh interpreter, several times, in turn (so that load on the machine spreads over all
of them), and prints the median and fastest wall time of each:
  bare      python -c pass (the floor: any Python command pays it)
  --help    ego4d-lta --help (builds every subcommand's parser)
  configs   ego4d-lta configs (the preset list)
  validate  ego4d-lta validate FILE on a small synthetic val submission (3 windows, scored)
The last line is `ratio=<--help median / bare median>` (goal: within 5x).

    python benchmarks/bench_startup.py [--repeat 11]

The package timed is the one this script imports (`python -m ego4d_lta` with this interpreter, that package's
folder first on PYTHONPATH, from a temporary folder): the installed one, or a checkout through PYTHONPATH. Where
PYTHONDONTWRITEBYTECODE is set and the package has no .pyc files, every run compiles its modules again; the
script says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

import ego4d_lta
from ego4d_lta.challenge.annotations import Taxonomy
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.submission import build_submission, write_submission


def make_submission(root: Path) -> tuple[Path, Path]:
    """A val split of two clips (3 challenge windows) and a valid submission for it: (file, annotations)."""
    ann = root / "annotations"
    ann.mkdir()
    taxonomy = Taxonomy(verbs=tuple(f"v{i}" for i in range(4)), nouns=tuple(f"n{i}" for i in range(6)))
    (ann / "fho_lta_taxonomy.json").write_bytes(orjson.dumps(taxonomy.to_json()))
    clips = [
        {
            "clip_uid": uid,
            "action_idx": i,
            "action_clip_start_sec": i,
            "action_clip_end_sec": i + 1,
            "verb_label": i % 4,
            "noun_label": i % 6,
        }
        for uid, length in (("clipA", 30), ("clipB", 29))
        for i in range(length)
    ]
    (ann / "fho_lta_val.json").write_bytes(orjson.dumps({"clips": clips}))
    keys = ["clipA_7", "clipA_8", "clipB_7"]
    rng = np.random.default_rng(0)
    verb, noun = rng.integers(4, size=(len(keys), K, Z)), rng.integers(6, size=(len(keys), K, Z))
    return write_submission(root / "sub-val.json", build_submission(keys, verb, noun)), ann


def wall(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds from start to exit of one run; a failed run stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stderr.strip()}")
    return seconds


def bench(commands: dict[str, list[str]], repeat: int, cwd: Path) -> dict[str, list[float]]:
    """Wall times of each command, `repeat` rounds of all of them in turn, the imported package's first on the path."""
    package = str(Path(ego4d_lta.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")]))}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # one untimed run each: the file cache is warm for all alike
        wall(cmd, cwd, env)
    for _ in range(repeat):
        for name, cmd in commands.items():
            times[name].append(wall(cmd, cwd, env))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11, help="timed runs per command")
    args = parser.parse_args()
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set: modules without a .pyc are compiled again on every run")
    print(f"timing {Path(ego4d_lta.__file__).parent} with {sys.executable}")
    cli = [sys.executable, "-m", "ego4d_lta"]
    with tempfile.TemporaryDirectory() as tmp:
        file, ann = make_submission(Path(tmp))
        commands = {
            "bare": [sys.executable, "-c", "pass"],
            "--help": [*cli, "--help"],
            "configs": [*cli, "configs"],
            "validate": [*cli, "validate", str(file), "--annotations", str(ann), "--split", "val"],
        }
        times = bench(commands, args.repeat, Path(tmp))
    bare = statistics.median(times["bare"])
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"{name:<9} median {median * 1e3:7.1f} ms  fastest {min(runs) * 1e3:7.1f} ms  x{median / bare:5.1f} bare")
    print(f"ratio={statistics.median(times['--help']) / bare:.2f}")


if __name__ == "__main__":
    main()
