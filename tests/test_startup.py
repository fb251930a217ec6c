"""Commands that compute nothing with torch start without importing it (benchmarks/bench_startup.py times them).

Each command runs in a fresh interpreter, which then reports what it imported: `--help` of the tool and of
every subcommand and `configs` import neither torch nor numpy or pandas (argument parsing alone is cheap);
`validate`, `upload --dry-run` and `report` of a finished run need numpy and pandas, never torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from ego4d_lta.challenge.annotations import Taxonomy, load_annotations
from ego4d_lta.challenge.rules import SPLIT_FILES, K, Z
from ego4d_lta.challenge.submission import build_submission, write_submission
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import COMMANDS

TORCH = ("torch", "open_clip", "pytorchvideo", "torchvision")
"""Never imported by these commands."""
ARRAYS = ("numpy", "pandas")
"""Not imported by the commands that only parse arguments or read a preset either."""

PROBE = """
import json, sys
from ego4d_lta.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:  # --help exits 0 from the parser
    code = e.code
print("probe:", json.dumps({"code": code, "imported": sorted(m for m in sys.modules if m.split(".")[0] in %r)}))
"""


def imported(args: list[str], watch: tuple[str, ...]) -> list[str]:
    """The modules of `watch` (with their submodules' top names) that `ego4d-lta ARGS` imported; it must exit 0."""
    done = subprocess.run([sys.executable, "-c", PROBE % (watch,), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith("probe: "), done.stdout
    result = json.loads(last.removeprefix("probe: "))
    assert result["code"] in (0, None), done.stdout + done.stderr
    return sorted({m.split(".")[0] for m in result["imported"]})


@pytest.fixture(scope="module")
def challenge_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Annotations with a val and a test split of two clips each, a valid submission for each, a finished run."""
    root = tmp_path_factory.mktemp("startup")
    ann = root / "annotations"
    ann.mkdir()
    taxonomy = Taxonomy(verbs=tuple(f"v{i}" for i in range(4)), nouns=tuple(f"n{i}" for i in range(6)))
    (ann / "fho_lta_taxonomy.json").write_bytes(orjson.dumps(taxonomy.to_json()))
    for split, uids in (("val", ("clipA", "clipB")), ("test", ("clipC", "clipD"))):
        clips = [
            {"clip_uid": uid, "action_idx": i, "action_clip_start_sec": i, "action_clip_end_sec": i + 1.0}
            for uid, length in zip(uids, (30, 29), strict=True)
            for i in range(length)
        ]
        if split == "val":
            clips = [{**c, "verb_label": c["action_idx"] % 4, "noun_label": c["action_idx"] % 6} for c in clips]
        (ann / SPLIT_FILES[split]).write_bytes(orjson.dumps({"clips": clips}))
    files = {"annotations": ann}
    rng = np.random.default_rng(0)
    for split in ("val", "test"):
        keys, _ = make_windows(load_annotations(ann, split)[0], include_extra=True).key_sets()
        sub = build_submission(keys, rng.integers(4, size=(len(keys), K, Z)), rng.integers(6, size=(len(keys), K, Z)))
        files[split] = write_submission(root / f"sub-{split}.json", sub)
    run = root / "runs" / "finished"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": {"variant": "labels"}, "train": {"epochs": 1}}))
    val = {"verb": 0.9, "noun": 0.9, "action": 0.95}
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "loss": 3.0, "val": val}) + "\n")
    files["run"], files["reports"] = run, root / "reports"
    return files


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_imports_no_torch_numpy_or_pandas(command: str) -> None:
    assert imported([*filter(None, [command]), "--help"], TORCH + ARRAYS) == []


@pytest.mark.parametrize("args", [["configs"], ["configs", "tiny", "--set", "train.epochs=3"]])
def test_configs_imports_no_torch_numpy_or_pandas(args: list[str]) -> None:
    assert imported(args, TORCH + ARRAYS) == []


def test_validate_upload_and_report_import_no_torch(challenge_files: dict[str, Path]) -> None:
    ann = str(challenge_files["annotations"])
    commands = {
        "validate": ["validate", str(challenge_files["val"]), "--annotations", ann],
        "validate test": ["validate", str(challenge_files["test"]), "--annotations", ann],
        "upload --dry-run": ["upload", str(challenge_files["test"]), "--annotations", ann, "--dry-run"],
        "report": ["report", str(challenge_files["run"]), "-o", str(challenge_files["reports"])],
    }
    loaded = {name: imported(args, TORCH) for name, args in commands.items()}
    assert loaded == {name: [] for name in commands}
    assert (challenge_files["reports"] / "report.md").is_file()  # report did run to the end
