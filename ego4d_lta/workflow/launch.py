"""`ego4d-lta train --launcher slurm|local`: submit training as a submitit job that requeues itself.

The job calls `stages.train.train` directly with the resolved config (no CLI round trip).

The job runs a snapshot of this package copied at submission (editing the checkout does not change a queued
job), from a fresh submitit folder per submission (job ids repeat on a new cluster, and submitit would return
an old result for a reused id). Each task exports submitit's rank variables, so `world_info_from_env` reads
them like torchrun's. SIGUSR2 before the time limit (or a preemption signal) makes training save `last.pt`;
rank 0 then hands the signal to submitit, which pickles the job and requeues it; the new attempt resumes.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ego4d_lta.base.errors import UserError
from ego4d_lta.config import Config


@dataclass
class LaunchConfig:
    """Where and how big the job is; cluster specifics (partition, account, ...) only when given."""

    launcher: str = "slurm"
    """`slurm` (sbatch through submitit) or `local` (processes on this machine, same code path)."""
    nodes: int = 1
    tasks_per_node: int | None = None
    """Default: one per GPU (`gpus_per_node`), else 1."""
    gpus_per_node: int = 0
    cpus_per_task: int = 8
    time_min: int = 24 * 60
    partition: str | None = None
    account: str | None = None
    constraint: str | None = None
    signal_delay_s: int = 120
    """SIGUSR2 this long before the time limit: time to save last.pt."""
    extra: dict[str, str] = field(default_factory=dict)
    """More sbatch options, e.g. {"qos": "high"} (`--slurm KEY=VALUE`)."""

    @property
    def tasks(self) -> int:
        return self.tasks_per_node or max(1, self.gpus_per_node)


class TrainJob:
    """The callable submitit pickles: training of a resolved config into a run folder, resumable after a requeue."""

    def __init__(self, cfg: Config, run_dir: Path, device: str = "auto") -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.device = device

    def __call__(self) -> str:
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        import ego4d_lta
        from ego4d_lta.stages.train import train

        restart = os.environ.get("SLURM_RESTART_COUNT", "0")
        print(f"[launch] code {Path(ego4d_lta.__file__).parent} restart {restart}", flush=True)
        # the submission checked the run folder; every attempt resumes whatever is there
        result = train(self.cfg, self.run_dir, resume=True, device=self.device, progress=False)
        if int(os.environ.get("RANK", "0")) == 0:
            print(result.summary(), flush=True)
        if result.stopped == "SIGUSR2" and int(os.environ.get("RANK", "0")) == 0:
            signal.raise_signal(signal.SIGUSR2)  # submitit's handler (restored by training): checkpoint + requeue
        if result.exit_status:  # stopped by a signal with last.pt saved: no result, the requeued attempt gives it
            os._exit(result.exit_status)
        return str(self.run_dir)

    def checkpoint(self) -> object:
        """What submitit pickles for the next attempt: the same job (it resumes from last.pt)."""
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.cfg, self.run_dir, self.device))


def snapshot_code(dst: Path) -> Path:
    """Copy this package to `dst/ego4d_lta` (sources and data files, no caches); returns `dst`."""
    src = Path(__file__).resolve().parents[1]
    shutil.copytree(src, dst / "ego4d_lta", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


def submit(train_cfg: Config, run_dir: Path, resume: bool, cfg: LaunchConfig, device: str = "auto") -> object:
    """Submit the training job; returns the submitit Job (its id, `.result()`, paths of the logs).

    The config travels resolved, its data paths made absolute (the job starts in its code snapshot's folder).
    """
    import submitit

    if cfg.launcher == "local" and cfg.nodes != 1:
        raise UserError(f"--launcher local runs on this machine: --nodes {cfg.nodes} needs --launcher slurm")
    if (run_dir / "last.pt").is_file() and not resume:
        raise UserError(f"{run_dir} already holds a run (last.pt); pass --resume to continue it, or another --run")
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    folder = run_dir / "submitit" / stamp
    snapshot = snapshot_code(folder / "code")
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cfg.launcher)
    params: dict[str, object] = {
        "nodes": cfg.nodes,
        "tasks_per_node": cfg.tasks,
        "timeout_min": cfg.time_min,
        "name": f"ego4d-lta-{run_dir.name}",
    }
    if cfg.launcher == "slurm":
        params |= {
            "slurm_signal_delay_s": cfg.signal_delay_s,
            "cpus_per_task": cfg.cpus_per_task,
            # `python -m` puts the working directory first on sys.path: run from the snapshot, not the checkout
            "slurm_setup": [f"cd {snapshot}", f"export PYTHONPATH={snapshot}${{PYTHONPATH:+:$PYTHONPATH}}"],
        }
        if cfg.gpus_per_node:
            params["gpus_per_node"] = cfg.gpus_per_node
        for key in ("partition", "account", "constraint"):
            if getattr(cfg, key):
                params[f"slurm_{key}"] = getattr(cfg, key)
        if cfg.extra:
            params["slurm_additional_parameters"] = dict(cfg.extra)
    executor.update_parameters(**params)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_cfg = copy.deepcopy(train_cfg)
    train_cfg.data.data_dir = str(Path(train_cfg.data.data_dir).resolve())
    if train_cfg.data.features_dir:
        train_cfg.data.features_dir = str(Path(train_cfg.data.features_dir).resolve())
    for name in ("slowfast_weights", "clip_weights"):
        if getattr(train_cfg.data, name):
            setattr(train_cfg.data, name, str(Path(getattr(train_cfg.data, name)).resolve()))
    job = TrainJob(train_cfg, run_dir.resolve(), device)
    with _started_from(snapshot):  # local processes inherit the submitting process's directory and environment
        return executor.submit(job)


@contextlib.contextmanager
def _started_from(snapshot: Path) -> Iterator[None]:
    """cwd = the snapshot and the snapshot first on PYTHONPATH, for the duration of a submission only."""
    here, path = Path.cwd(), os.environ.get("PYTHONPATH")
    os.chdir(snapshot)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(snapshot), path]))
    try:
        yield
    finally:
        os.chdir(here)
        if path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = path
