"""Test-only: hold a subprocess at a known point, so a test can interrupt it there and not race the machine's speed.

A test puts this folder on the subprocess's PYTHONPATH and sets EGO4D_LTA_TEST_HOLD:
- `train`: on a Slurm job's first attempt, each rank at the end of epoch 1 (rank 0 once it has saved last.pt and
  logged the epoch) waits until SIGTERM or SIGUSR2 asks training to stop (the test sends it: `scontrol requeue`,
  `scancel --signal`);
- `extract`: after the first clip's progress line, the extraction waits until it is killed;
- `train-commit`: training stops at its EGO4D_LTA_TEST_HOLD_AT-th write of an epoch's commit (last.pt, best.pt,
  metrics.jsonl; 1-based), leaves a half-written temporary file as a kill mid-write would, and waits to be killed.
Nothing else changes: the wait only wraps the project's own methods, once their module is imported (from wherever it
is imported, the launcher's code snapshot included).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from types import ModuleType

HOLD = os.environ.get("EGO4D_LTA_TEST_HOLD", "")
LIMIT_S = 1200  # a test that never interrupts the hold fails on its own time limit, not this one


def _wait(until: object = lambda: False) -> None:
    print(f"[hold] {HOLD}: waiting to be interrupted", file=sys.stderr, flush=True)
    deadline = time.monotonic() + LIMIT_S
    while not until() and time.monotonic() < deadline:
        time.sleep(0.05)


def _hold_training(module: ModuleType) -> None:
    signals: list[int] = []
    handle, end_epoch = module.StopFlag._handle, module.Trainer._end_epoch

    def _handle(self: object, signum: int, frame: object) -> None:
        signals.append(signum)
        handle(self, signum, frame)

    def _end_epoch(self: object, epoch: int, bar: object) -> None:
        end_epoch(self, epoch, bar)
        if epoch == 0 and os.environ.get("SLURM_RESTART_COUNT", "0") == "0":
            _wait(lambda: signals)

    module.StopFlag._handle, module.Trainer._end_epoch = _handle, _end_epoch


def _hold_extraction(module: ModuleType) -> None:
    clip_finished = module.ShardWriter.clip_finished

    def _clip_finished(self: object, *args: object, **kwargs: object) -> None:
        clip_finished(self, *args, **kwargs)
        _wait()

    module.ShardWriter.clip_finished = _clip_finished


def _hold_commit(module: ModuleType) -> None:
    at, seen = int(os.environ["EGO4D_LTA_TEST_HOLD_AT"]), []
    commit_file = module.commit_file

    def _commit_file(path: object, write: object) -> None:
        if path.name != "config.json":
            seen.append(path.name)
            if len(seen) == at:
                path.with_name(f".{path.name}.{os.getpid()}.tmp").write_bytes(b"half a file")
                print(f"[hold] write {at}: {path.name}", file=sys.stderr, flush=True)
                _wait()
        commit_file(path, write)

    module.commit_file = _commit_file


PATCHES = {
    "train": ("ego4d_lta.stages.train", _hold_training),
    "extract": ("ego4d_lta.data.feature_cache", _hold_extraction),
    "train-commit": ("ego4d_lta.stages.train", _hold_commit),
}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds the module like the other finders do, then patches it right after it has run."""

    def __init__(self, name: str, patch: object) -> None:
        self.name, self.patch = name, patch

    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        exec_module, patch = spec.loader.exec_module, self.patch

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            if module.__name__ == fullname:  # a loader shared with other modules (zipimport) patches only this one
                patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


if HOLD in PATCHES:
    sys.meta_path.insert(0, _PatchOnImport(*PATCHES[HOLD]))
elif HOLD:
    sys.exit(f"tests/hold: EGO4D_LTA_TEST_HOLD={HOLD!r}, expected one of {', '.join(PATCHES)}")
