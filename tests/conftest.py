"""Shared fixtures: the real reference data in ../shared/data and one synthetic dataset per session."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from filelock import FileLock
from hypothesis import settings

from ego4d_lta.stages.synth import generate
from ego4d_lta.workflow.demo import DEMO_SYNTH

if TYPE_CHECKING:
    import torch

# CI runs the same examples every time (a failure there is reproducible); locally they vary.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Under pytest-xdist the cores are shared out between the workers (and the CLI subprocesses they start):
# one torch thread pool per core, not one per worker per core.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))

SHARED_DATA = Path(os.environ.get("EGO4D_LTA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real Ego4D reference files (never copied into this repo). Missing is a failure, not a skip."""
    if not (SHARED_DATA / "fho_lta_taxonomy_v1.json").exists():
        pytest.fail(f"reference data not found at {SHARED_DATA}; set EGO4D_LTA_SHARED_DATA", pytrace=False)
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo folder whose data/ already holds the demo's dataset (so the demo test reuses it).

    `EGO4D_LTA_TEST_DEMO=DIR` reuses a finished demo folder across test runs (the demo reuses what it finds).
    """
    reuse = os.environ.get("EGO4D_LTA_TEST_DEMO")
    if reuse:
        return Path(reuse)
    out = _shared_tmp(tmp_path_factory) / "demo"
    with FileLock(out.with_suffix(".lock")):  # xdist workers: the first one generates, the others wait
        marker = out / "data" / "synthetic.json"  # "complete" once every file is written
        if not marker.exists() or json.loads(marker.read_text()).get("status") != "complete":
            generate(out / "data", DEMO_SYNTH)
    return out


@pytest.fixture(scope="session")
def demo_report(demo_dir: Path) -> dict:
    """The demo run once per session (synthetic data -> features -> trained `tiny` run -> submissions).

    Training and prediction tests reuse its feature caches (`demo_dir/data/features`) and its run
    (`demo_dir/runs/tiny`) instead of extracting again.
    """
    from ego4d_lta.workflow.demo import run_demo

    with FileLock(demo_dir / "demo_run.lock"):  # one run per test session; a later caller reuses all of it
        return run_demo(demo_dir, progress=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the demo's run first: under `--dist loadfile` their worker starts the demo at once. The Slurm
    tests last: they train on the demo's features, so they would only wait for it."""
    order = {"test_train.py": 0, "test_slurm.py": 2}
    items.sort(key=lambda item: order.get(item.path.name, 1))  # stable: the order within files is kept


def _shared_tmp(factory: pytest.TempPathFactory) -> Path:
    """This test run's temporary root, the same for every xdist worker (each has its own basetemp below it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def synth_data(demo_dir: Path) -> Path:
    """The tiny synthetic dataset, seed 0, with one missing and one corrupt test video."""
    return demo_dir / "data"


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-init tiny SlowFast and CLIP weights, saved as files: extraction loads them like real ones."""
    import torch

    from ego4d_lta.models.clip import TINY_CLIP, random_clip
    from ego4d_lta.models.clip import save_weights as save_clip
    from ego4d_lta.models.slowfast import SLOWFAST_PRESETS, SlowFastEncoder, save_weights

    out = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights(SlowFastEncoder(SLOWFAST_PRESETS["tiny"], 32, 64), out / "slowfast_tiny.pt")
    save_clip(random_clip(TINY_CLIP, seed=1), out / "clip_tiny.pt")
    return {"slowfast": out / "slowfast_tiny.pt", "clip": out / "clip_tiny.pt"}


def subset_dataset(src: Path, dst: Path, split: str, clips: dict[str, int | None]) -> Path:
    """A dataset root holding only some clips of one split, each cut to its first N segments (None: all)."""
    import json

    from ego4d_lta.challenge.rules import SPLIT_FILES, TAXONOMY_FILE

    (dst / "annotations").mkdir(parents=True)
    doc = json.loads((src / "annotations" / SPLIT_FILES[split]).read_text())
    kept, count = [], dict.fromkeys(clips, 0)
    for entry in doc["clips"]:
        uid = entry["clip_uid"]
        if uid in clips and (clips[uid] is None or count[uid] < clips[uid]):
            kept.append(entry)
            count[uid] += 1
    (dst / "annotations" / SPLIT_FILES[split]).write_text(json.dumps({**doc, "clips": kept}))
    (dst / "annotations" / TAXONOMY_FILE).write_text((src / "annotations" / TAXONOMY_FILE).read_text())
    (dst / "clips").symlink_to((src / "clips").resolve())
    return dst


def weights(run: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    """The model weights saved in a run's checkpoint."""
    import torch

    return torch.load(run / name, map_location="cpu", weights_only=False)["model"]


def learnt(a: torch.Tensor, b: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The parts of a weight that learning determines: without attention's key bias.

    Softmax over keys ignores q.b_k (the same for every key), so b_k's gradient is 0 up to float rounding,
    and Adam scales that rounding noise (which differs with the reduction order of 1 vs N processes) up to
    steps of ~lr * noise / eps: measured 6e-5 apart after one epoch, while every other weight agreed to 1e-6.
    """
    import torch

    if name.endswith("in_proj_bias"):  # [q; k; v]
        keep = torch.ones_like(a, dtype=torch.bool)
        keep[len(a) // 3 : 2 * len(a) // 3] = False
        return a[keep], b[keep]
    return a, b


def hold_env(what: str) -> dict[str, str]:
    """Environment for a subprocess that waits at a known point until the test interrupts it (`train`: after epoch
    1 of a Slurm job's first attempt; `extract`: after the first clip), so no test races the machine's speed."""
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent / "hold"), os.environ.get("PYTHONPATH")]))
    return {"EGO4D_LTA_TEST_HOLD": what, "PYTHONPATH": path}
