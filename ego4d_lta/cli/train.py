"""`ego4d-lta train`: train a forecaster here (DDP under torchrun or srun), or submit it as a submitit job."""

from __future__ import annotations

import argparse
from pathlib import Path

from ego4d_lta.cli.common import (
    add_data,
    add_features,
    add_quiet,
    count,
    positive,
    with_requested_paths,
)
from ego4d_lta.config import Config

HELP = "train a forecaster (plain PyTorch, DDP under torchrun or srun)"
EPILOG = """examples:
  ego4d-lta train --config tiny --data data/synth --set train.epochs=5
  ego4d-lta train --config tiny --data data/synth --resume --set train.epochs=10   # extend the finished run"""


def minutes(text: str) -> int:
    """A Slurm time limit (minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S) -> whole minutes, at least 1."""
    try:
        days, dash, clock = text.partition("-") if "-" in text else ("0", "", text)
        parts = [int(x) for x in clock.split(":")]
        if dash:
            h, m, sec = [*parts, 0, 0][:3]
        else:
            h, m, sec = {1: (0, *parts, 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
        total = (int(days) * 24 + h) * 60 + m + (sec > 0)
    except (ValueError, KeyError):
        total = 0
    if total < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected minutes, H:M:S or D-H:M:S")
    return total


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. qos=high")
    return key, value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="slowfast_clip", help="a preset (see ego4d_lta/configs) or a .toml file")
    p.add_argument(
        "--recipe",
        default=None,
        help="training and sampling choices on top of the preset: report (the report's: iid sampling, 4 observed "
        "segments, summed loss, Dropout(0.5) on raw SlowFast, Adam fp32 without clipping, best by verb ED)",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. train.epochs=5")
    add_data(p)
    add_features(p, "feature cache root (default: $EGO4D_LTA_FEATURES or DATA/features)")
    p.add_argument("--run", type=Path, default=None, help="run folder (default: runs/<config name>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run from its last.pt (with --set train.epochs=N: extend a finished run)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the config, world size, window counts and parameter count; train nothing, write nothing",
    )
    p.add_argument("--device", default="auto", help="auto (the local GPU when there is one), cpu, cuda")
    p.add_argument(
        "--log",
        action="append",
        choices=["tensorboard", "wandb", "none"],
        default=None,
        help="live curves on rank 0, repeatable (default: tensorboard, in RUN/tensorboard/; wandb needs the extra)",
    )
    add_quiet(p)
    job = p.add_argument_group("submit as a job (submitit) instead of training in this process")
    job.add_argument("--launcher", choices=["slurm", "local"], default=None, help="slurm: sbatch; local: processes")
    job.add_argument("--nodes", type=positive, default=1, help="Slurm nodes")
    job.add_argument("--gpus-per-node", type=count, default=0, help="GPUs per node (0: CPU tasks)")
    job.add_argument("--tasks-per-node", type=positive, default=None, help="default: one per GPU, else 1")
    job.add_argument("--cpus-per-task", type=positive, default=8, help="CPU cores per task (data loading)")
    job.add_argument("--time", type=minutes, default=24 * 60, help="time limit: minutes or H:MM:SS (default 24 h)")
    job.add_argument("--partition", default=None, help="default: $SBATCH_PARTITION or the cluster's default")
    job.add_argument("--account", default=None, help="Slurm account")
    job.add_argument("--constraint", default=None, help="Slurm node features, e.g. a100")
    job.add_argument("--slurm", type=key_value, action="append", metavar="KEY=VALUE", help="more sbatch options")
    job.add_argument("--wait", action="store_true", help="wait for the job and print its result")


def run_config(args: argparse.Namespace) -> Config:
    """--config, then --set overrides, then --data / --features (or their environment variables) on top."""
    from ego4d_lta.config import load_config

    return with_requested_paths(load_config(args.config, list(args.set or []), args.recipe), args)


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.base.output_guard import check_inside
    from ego4d_lta.runtime.distributed import world_info_from_env
    from ego4d_lta.stages.train import train

    cfg = run_config(args)
    run_dir = args.run or check_inside("runs", Path("runs") / cfg.name, "name")
    if args.dry_run:
        return _dry_run(cfg, run_dir, args.resume, args)
    if args.launcher:
        return _submit(args, cfg, run_dir)
    log = args.log or ["tensorboard"]
    result = train(cfg, run_dir, resume=args.resume, device=args.device, progress=not args.quiet, log=log)
    if not world_info_from_env().is_main:  # one summary per job, not one per process
        return result.exit_status
    print(result.summary())
    return result.exit_status


def _dry_run(cfg: Config, run_dir: Path, resume: bool, args: argparse.Namespace) -> int:
    from ego4d_lta.cli.configs import render_toml
    from ego4d_lta.runtime.distributed import device_for, world_info_from_env
    from ego4d_lta.runtime.run_log import check_loggers
    from ego4d_lta.stages.train import plan

    check_loggers(args.log or ["tensorboard"])  # what the real run checks first: a missing package, no GPU
    if not args.launcher:  # a launched job's device is the node's, not this machine's
        device_for(world_info_from_env(), args.device)
    p = plan(cfg, run_dir, resume)
    start = f"resume at epoch {p.start_epoch}, step {p.start_step}" if p.start_step else "a new run"
    print(render_toml(cfg), end="")
    print(
        f"\n# dry run of {run_dir}: {start}; nothing written\n"
        f"# world size {p.world_size} (batch {cfg.train.batch_size // p.world_size} per process)\n"
        f"# windows: train {p.usable_windows} of {p.train_windows} usable, val {p.val_windows}\n"
        f"# parameters {p.parameters:,} ({p.trainable:,} trainable)\n"
        f"# {p.steps_per_epoch} steps per epoch, {p.total_steps} in all; peak lr {p.lr:.3e}"
    )
    return 0


def _submit(args: argparse.Namespace, cfg: Config, run_dir: Path) -> int:
    """The same training as a submitit job on Slurm (or local processes); prints where to follow it."""
    from ego4d_lta.workflow.launch import LaunchConfig, submit

    launch = LaunchConfig(
        launcher=args.launcher,
        nodes=args.nodes,
        tasks_per_node=args.tasks_per_node,
        gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task,
        time_min=args.time,
        partition=args.partition,
        account=args.account,
        constraint=args.constraint,
        extra=dict(args.slurm or []),
    )
    job = submit(cfg, run_dir.resolve(), args.resume, launch, device=args.device)
    print(
        f"submitted {args.launcher} job {job.job_id}: {launch.nodes} node(s) x {launch.tasks} task(s), run {run_dir}\n"
        f"logs: {job.paths.stdout} (task 0; %t = task), requeued on timeout or preemption"
    )
    if args.wait:
        print(f"{run_dir}: finished ({job.result()})")
    return 0
