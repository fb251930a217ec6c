"""`ego4d-lta`: one argparse tree; each verb is a thin call into a module.

Exit status: 0 success, 2 a user mistake (one line on stderr, no traceback), 1 a bug.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ego4d_lta import __version__
from ego4d_lta.errors import UserError

EXIT_INVALID = 2


def default_data_dir() -> Path:
    """`$EGO4D_LTA_DATA`, else `data/`: a dataset root in the official layout."""
    return Path(os.environ.get("EGO4D_LTA_DATA", "data"))


def annotations_dir(args: argparse.Namespace) -> Path:
    """`--annotations DIR`, else `--data ROOT`/annotations, else the default dataset root's."""
    return args.annotations or (args.data or default_data_dir()) / "annotations"


def _cmd_synth(args: argparse.Namespace) -> int:
    from ego4d_lta.data.synthetic import SynthConfig, generate

    cfg = SynthConfig(
        seed=args.seed, size=args.size, missing_videos=args.missing_videos, corrupt_videos=args.corrupt_videos
    )
    started = time.perf_counter()
    try:
        summary = generate(args.out, cfg, progress=_progress(args.quiet))
    except ValueError as e:
        raise UserError(f"synth: {e}") from None
    if not args.quiet:
        print(file=sys.stderr)
    counts = ", ".join(
        f"{split} {len(uids)} clips / {summary.segments[split]} segments" for split, uids in summary.clips.items()
    )
    print(f"wrote {args.out}: {counts}; {summary.bytes / 1e6:.1f} MB of video in {time.perf_counter() - started:.1f} s")
    if summary.missing or summary.corrupt:
        print(f"test clips with a missing video: {len(summary.missing)}, with a corrupt video: {len(summary.corrupt)}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    import orjson

    from ego4d_lta.validate import format_report, plot_ed_at_z, validate_file

    annotations = annotations_dir(args)
    try:
        report = validate_file(args.file, annotations, args.split)
    except UserError as e:
        if args.json:
            failed = {"valid": False, "split": args.split, "windows": 0, "errors": [str(e)], "warnings": []}
            sys.stdout.write(orjson.dumps(failed, option=orjson.OPT_INDENT_2).decode() + "\n")
        raise
    if args.plot and report.scores is not None:
        try:
            plot_ed_at_z(report.scores, args.plot, title=f"{Path(args.file).name} ({args.split})")
        except OSError as e:
            raise UserError(f"{args.plot}: cannot write the plot ({e.strerror or e})") from None
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    for warning in report.warnings:
        print(f"warning: {args.file}: {warning}", file=sys.stderr)
    if not report.valid:
        for error in report.errors:
            print(f"error: {args.file}: {error}", file=sys.stderr)
        print(f"{args.file}: invalid {args.split} submission ({len(report.errors)} errors)", file=sys.stderr)
        if re.search(r"\.pool\d+\.json$", str(args.file)):
            print("note: a pool of samples (predict --pool) is for `ego4d-lta ensemble`, not upload", file=sys.stderr)
        return EXIT_INVALID
    if not args.json:
        print(format_report(report))
        if args.plot and report.scores is None:
            print(f"note: --plot needs a labelled split; {args.split} has no labels", file=sys.stderr)
        elif args.plot:
            print(f"plot: {args.plot}")
    return 0


def _cmd_ensemble(args: argparse.Namespace) -> int:
    from ego4d_lta.ensemble import ensemble
    from ego4d_lta.validate import format_report, validate_file

    annotations = annotations_dir(args)
    result = ensemble(args.files, args.out, annotations, args.split, args.weights)
    own = f" (each submission's own 5: {', '.join(f'{x:.3f}' for x in result.inputs_expected)})"
    print(
        f"{result.out}: K=5 chosen from {result.pool} sequences per window of {len(result.inputs)} inputs, "
        f"{result.windows} windows; expected distance to the pool {result.expected:.3f}"
        + (own if result.submissions else "")
    )
    if args.split == "val":  # labelled: show what it bought
        for path in [*result.submissions, result.out]:
            print(format_report(validate_file(path, annotations, "val")))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ego4d_lta.report import report

    text, files = report(args.runs, args.out)
    print(text)
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


def _cmd_upload(args: argparse.Namespace) -> int:
    from ego4d_lta.upload import UploadConfig, upload

    annotations = annotations_dir(args)
    visibility = "public" if args.public else "private" if args.private else None
    print(upload(UploadConfig(args.file, annotations, args.phase, visibility, args.dry_run)))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ego4d_lta.demo import run_demo

    run_demo(Path(args.out), seed=args.seed)
    return 0


def default_features_dir(data: Path | None = None) -> Path:
    """`$EGO4D_LTA_FEATURES`, else DATA/features: where feature caches live."""
    env = os.environ.get("EGO4D_LTA_FEATURES")
    return Path(env) if env else (data or default_data_dir()) / "features"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer")
    return value


def _count(text: str) -> int:
    """A count that may be 0 (GPUs per node)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 or a positive integer")
    return int(text)


def _shard(text: str) -> tuple[int, int]:
    """`i/n` (0-based): e.g. `$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{text!r}: needs 0 <= i < n")
    return i, n


def _cmd_extract(args: argparse.Namespace) -> int:
    from ego4d_lta.extract import ENCODER_PRESETS, ExtractConfig, extract

    encoders = ENCODER_PRESETS[args.encoders]
    if args.clip_model:
        from dataclasses import replace

        encoders = replace(encoders, clip_model=args.clip_model)
    data = args.data or default_data_dir()
    cfg = ExtractConfig(
        data_dir=data,
        features_dir=args.features or default_features_dir(data),
        split=args.split,
        encoders=encoders,
        slowfast_weights=args.slowfast_weights,
        clip_weights=args.clip_weights,
        clip_pretrained=args.clip_pretrained,
        shard=args.shard,
        views=args.views,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        limit=args.limit,
        scenarios=args.scenarios,
        seed=args.seed,
        progress=not args.quiet,
    )
    s = extract(cfg)
    print(
        f"{s.split_dir}: {s.rows} segment windows from {s.clips} clips ready "
        f"({s.done_now} extracted now in {s.seconds:.1f} s, {s.segments_per_second:.2f} segments/s)"
    )
    for clip_uid, error in s.failed.items():
        print(f"warning: clip {clip_uid} has no features: {error}", file=sys.stderr)
    return 0


def _run_config(args: argparse.Namespace):
    """--config, then --set overrides, then --data / --features (or their environment variables) on top."""
    from ego4d_lta.config import load_config

    cfg = load_config(args.config, list(args.set or []), getattr(args, "recipe", None))
    if args.data is not None or os.environ.get("EGO4D_LTA_DATA"):
        cfg.data.data_dir = str(args.data or default_data_dir())
    if args.features is not None or os.environ.get("EGO4D_LTA_FEATURES"):
        cfg.data.features_dir = str(args.features or default_features_dir(Path(cfg.data.data_dir)))
    return cfg


def _cmd_train(args: argparse.Namespace) -> int:
    from ego4d_lta.distributed import world_info_from_env
    from ego4d_lta.train import train

    cfg = _run_config(args)
    run_dir = args.run or Path("runs") / cfg.name
    if args.launcher:
        return _submit_train(args, cfg, run_dir)
    result = train(cfg, run_dir, resume=args.resume, device=args.device, progress=not args.quiet)
    # stopped by a signal: 128 + its number, like a shell (slurm/train.sh requeues on 140 = SIGUSR2)
    code = 0 if result.stopped in (None, "stop_after") else 128 + int(getattr(signal, result.stopped))
    if not world_info_from_env().is_main:  # one summary per job, not one per process
        return code
    if result.stopped:
        print(f"{run_dir}: stopped ({result.stopped}) at step {result.steps}; last.pt saved, continue with --resume")
        return code
    by = cfg.train.select_by
    best = result.history and min((h for h in result.history if h["val"]), key=lambda h: h["val"][by], default=None)
    if best:
        v = best["val"]
        print(
            f"{run_dir}: {result.epochs_done} epochs; best val ED@20 verb {v['verb']:.4f} noun {v['noun']:.4f} "
            f"action {v['action']:.4f} (epoch {best['epoch']}, best.pt)"
        )
    else:
        print(f"{run_dir}: {result.epochs_done} epochs (last.pt)")
    return 0


def _minutes(text: str) -> int:
    """A Slurm time limit (minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S) -> whole minutes, at least 1."""
    try:
        days, dash, clock = text.partition("-") if "-" in text else ("0", "", text)
        parts = [int(x) for x in clock.split(":")]
        if dash:
            h, m, sec = [*parts, 0, 0][:3]
        else:
            h, m, sec = {1: (0, *parts, 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
        minutes = (int(days) * 24 + h) * 60 + m + (sec > 0)
    except (ValueError, KeyError):
        minutes = 0
    if minutes < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected minutes, H:M:S or D-H:M:S")
    return minutes


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. qos=high")
    return key, value


def _submit_train(args: argparse.Namespace, cfg, run_dir: Path) -> int:
    """The same training as a submitit job on Slurm (or local processes); prints where to follow it."""
    from ego4d_lta.launch import LaunchConfig, submit

    config = Path(args.config)
    argv = ["train", "--config", str(config.resolve()) if config.suffix == ".toml" else args.config]
    argv += ["--recipe", args.recipe] if args.recipe else []
    for item in args.set or []:
        argv += ["--set", item]
    argv += ["--data", str(Path(cfg.data.data_dir).resolve()), "--device", args.device, "-q"]
    if cfg.data.features_dir:
        argv += ["--features", str(Path(cfg.data.features_dir).resolve())]
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
    job = submit(argv, run_dir.resolve(), args.resume, launch)
    print(
        f"submitted {args.launcher} job {job.job_id}: {launch.nodes} node(s) x {launch.tasks} task(s), run {run_dir}\n"
        f"logs: {job.paths.stdout} (task 0; %t = task), requeued on timeout or preemption"
    )
    if not args.wait:
        return 0
    print(f"{run_dir}: finished ({job.result()})")
    return 0


def _default_run() -> Path:
    runs = sorted(p for p in Path("runs").glob("*") if (p / "last.pt").is_file() or (p / "best.pt").is_file())
    if len(runs) == 1:
        return runs[0]
    found = ", ".join(str(r) for r in runs) if runs else "none in runs/"
    raise UserError(f"which run? pass --run DIR (found: {found})")


def _cmd_predict(args: argparse.Namespace) -> int:
    from ego4d_lta.predict import PredictConfig, predict

    cfg = PredictConfig(
        run_dir=args.run or _default_run(),
        split=args.split,
        checkpoint=args.checkpoint,
        data_dir=args.data or (default_data_dir() if os.environ.get("EGO4D_LTA_DATA") else None),
        features_dir=args.features
        or (Path(os.environ["EGO4D_LTA_FEATURES"]) if os.environ.get("EGO4D_LTA_FEATURES") else None),
        out=args.out,
        overrides=list(args.set or []),
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
        pool=args.pool,
        recognitions=args.recognitions,
    )
    s = predict(cfg)
    if s is None:  # not rank 0
        return 0
    for warning in s.warnings:
        print(f"warning: {s.path}: {warning}", file=sys.stderr)
    print(f"wrote {s.path} ({s.windows} windows, valid) and {s.sidecar.name} in {s.seconds:.1f} s")
    if s.pool is not None:
        print(f"wrote {s.pool} ({args.pool} samples per window, for `ego4d-lta ensemble`; not a submission)")
    if s.scores is not None:
        ed = s.scores.ed20
        print(f"{args.split} ED@20: verb {ed['verb']:.4f}  noun {ed['noun']:.4f}  action {ed['action']:.4f}")
    return 0


def _cmd_resize(args: argparse.Namespace) -> int:
    from ego4d_lta.resize import ResizeConfig, resize_all

    cfg = ResizeConfig(
        short_side=args.short_side,
        keyframe_seconds=args.keyframe_seconds,
        crf=args.crf,
        preset=args.preset,
        shard=args.shard,
    )
    s = resize_all(args.src, args.dst, cfg, progress=_progress(args.quiet))
    if not args.quiet:
        print(file=sys.stderr)
    print(f"{args.dst}: {len(s.done)} clips re-encoded, {len(s.skipped)} already there, {len(s.failed)} failed")
    for error in s.failed.values():
        print(f"ego4d-lta resize: error: {error}", file=sys.stderr)
    return EXIT_INVALID if s.failed else 0


def _progress(quiet: bool) -> Callable[[str], None] | None:
    if quiet:
        return None

    def show(message: str) -> None:
        print(f"\r{message:<60}", end="", file=sys.stderr, flush=True)

    return show


def _add_annotations(p: argparse.ArgumentParser) -> None:
    """Where the split files and the taxonomy are: the same two ways for every command that checks submissions."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--annotations", type=Path, default=None, help="folder with fho_lta_*.json and the taxonomy")
    where.add_argument("--data", type=Path, default=None, help="dataset root (default: $EGO4D_LTA_DATA or data/)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ego4d-lta",
        description="Ego4D long-term action anticipation: data, features, training, challenge submissions.",
    )
    parser.add_argument("--version", action="version", version=f"ego4d-lta {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="synthetic data -> submissions -> validation and scores, on a laptop")
    p.add_argument("--out", default="demo", help="working folder (default: demo/)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("synth", help="write a synthetic dataset in the official Ego4D LTA layout")
    p.add_argument("out", type=Path, help="dataset root to write (annotations/, clips/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=["tiny", "small"], default="tiny")
    p.add_argument(
        "--missing-videos",
        type=int,
        default=0,
        metavar="N",
        help="test clips whose video file is left out (their keys still need predictions)",
    )
    p.add_argument("--corrupt-videos", type=int, default=0, metavar="N", help="test clips whose video file is corrupt")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("ensemble", help="combine submissions into one (K=5 chosen from all their sequences)")
    p.add_argument(
        "files", type=Path, nargs="+", metavar="FILE", help="valid submissions or pools (predict --pool) of one split"
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="output submission JSON")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="one per file (default: equal)")
    p.add_argument("--split", choices=["val", "test"], default="test")
    _add_annotations(p)
    p.set_defaults(func=_cmd_ensemble)

    p = sub.add_parser("report", help="a table of training runs, their training and ED@z curves (PNG)")
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders (runs/NAME)")
    p.add_argument("-o", "--out", type=Path, default=Path("reports"), help="output folder (default: reports/)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("upload", help="validate a test submission, then submit it to EvalAI (evalai client)")
    p.add_argument("file", type=Path, help="test submission JSON")
    p.add_argument("--phase", type=_positive, default=None, help="EvalAI phase id (default: $EGO4D_LTA_EVALAI_PHASE)")
    _add_annotations(p)
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--public", action="store_true", help="show it on the public leaderboard")
    shown.add_argument("--private", action="store_true", help="keep it off the public leaderboard")
    p.add_argument("--dry-run", action="store_true", help="validate and print the exact evalai command, run nothing")
    p.set_defaults(func=_cmd_upload)

    p = sub.add_parser("validate", help="check a submission as the challenge server would; score it on val")
    p.add_argument("file", type=Path, help="submission JSON")
    _add_annotations(p)
    p.add_argument("--split", choices=["val", "test"], default="test")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG", help="write ED@z curves (val only)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("resize", help="re-encode clips to 320p H.264, a keyframe every 2 s (resumable, shardable)")
    p.add_argument("--src", type=Path, required=True, help="folder of <clip_uid>.mp4")
    p.add_argument("--dst", type=Path, required=True, help="output folder (finished clips are skipped on a rerun)")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N", help="do clips I, I+N, ... (0-based)")
    p.add_argument("--short-side", type=int, default=320)
    p.add_argument("--keyframe-seconds", type=float, default=2.0)
    p.add_argument("--crf", type=int, default=23)
    p.add_argument("--preset", default="medium", help="x264 preset")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_resize)

    p = sub.add_parser("extract", help="frozen SlowFast + CLIP features of every segment -> feature cache")
    p.add_argument("--split", choices=["train", "val", "test"], required=True)
    p.add_argument("--data", type=Path, default=None, help="dataset root (default: $EGO4D_LTA_DATA or data/)")
    p.add_argument(
        "--features", type=Path, default=None, help="feature cache root (default: $EGO4D_LTA_FEATURES or DATA/features)"
    )
    p.add_argument(
        "--encoders",
        choices=["full", "tiny"],
        default="full",
        help="full: SlowFast R101 8x8 + CLIP ViT-B-16 at 224 px; tiny: narrow test models at 64 px",
    )
    p.add_argument(
        "--slowfast-weights",
        type=Path,
        default=None,
        metavar="FILE",
        help="ego4d_slowfast8x8.ckpt, lta_slowfast_*.ckpt or an ego4d-lta SlowFast file",
    )
    p.add_argument("--clip-model", default=None, help="open_clip model name (default: the preset's, ViT-B-16)")
    p.add_argument("--clip-weights", type=Path, default=None, metavar="FILE", help="open_clip weights file")
    p.add_argument("--clip-pretrained", default=None, metavar="TAG", help="open_clip pretrained tag (needs network)")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N", help="do shard I of N (0-based)")
    p.add_argument("--views", type=int, default=1, help="windows per train segment: the centre + random positions")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="decoding processes")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1, ...")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the shard's first N clips (smoke run)")
    p.add_argument(
        "--scenarios",
        type=Path,
        default=None,
        metavar="FILE",
        help="scenario names for the prompt bank (default: annotations/scenarios_taxonomy.json if there)",
    )
    p.add_argument("--seed", type=int, default=0, help="fixes the random views")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("train", help="train a forecaster (plain PyTorch, DDP under torchrun or srun)")
    p.add_argument("--config", default="slowfast_clip", help="a preset (see ego4d_lta/configs) or a .toml file")
    p.add_argument(
        "--recipe",
        default=None,
        help="training and sampling choices on top of the preset: report (the report's: iid sampling, 4 observed "
        "segments, summed loss, Dropout(0.5) on raw SlowFast, Adam fp32 without clipping, best by verb ED)",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. train.epochs=5")
    p.add_argument("--data", type=Path, default=None, help="dataset root (default: $EGO4D_LTA_DATA or data/)")
    p.add_argument("--features", type=Path, default=None, help="feature cache root (default: DATA/features)")
    p.add_argument("--run", type=Path, default=None, help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run from its last.pt")
    p.add_argument("--device", default="auto", help="auto (the local GPU when there is one), cpu, cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    job = p.add_argument_group("submit as a job (submitit) instead of training in this process")
    job.add_argument("--launcher", choices=["slurm", "local"], default=None, help="slurm: sbatch; local: processes")
    job.add_argument("--nodes", type=_positive, default=1)
    job.add_argument("--gpus-per-node", type=_count, default=0)
    job.add_argument("--tasks-per-node", type=_positive, default=None, help="default: one per GPU, else 1")
    job.add_argument("--cpus-per-task", type=_positive, default=8)
    job.add_argument("--time", type=_minutes, default=24 * 60, help="time limit: minutes or H:MM:SS (default 24 h)")
    job.add_argument("--partition", default=None, help="default: $SBATCH_PARTITION or the cluster's default")
    job.add_argument("--account", default=None)
    job.add_argument("--constraint", default=None)
    job.add_argument("--slurm", type=_key_value, action="append", metavar="KEY=VALUE", help="more sbatch options")
    job.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="a run's checkpoint -> submissions/<run>-<split>.json (validated)")
    p.add_argument("--split", choices=["val", "test"], default="test")
    p.add_argument("--run", type=Path, default=None, help="run folder (default: the only one in runs/)")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint file (default: best)")
    p.add_argument("--data", type=Path, default=None, help="dataset root (default: the run's)")
    p.add_argument("--features", type=Path, default=None, help="feature cache root (default: the run's)")
    p.add_argument("--out", type=Path, default=None, help="output file (default: submissions/<run>-<split>.json)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="generate.* settings, e.g. generate.strategy=iid"
    )
    p.add_argument("--batch-size", type=_positive, default=256, help="windows per forward pass")
    p.add_argument("--device", default="auto", help="auto (the local GPU when there is one), cpu, cuda")
    p.add_argument(
        "--recognitions",
        type=Path,
        default=None,
        metavar="FILE",
        help='labels runs: {"<clip_uid>_<action_idx>": {"verb": id, "noun": id}} of the observed segments '
        "(an action recogniser's output), read instead of the annotations' labels",
    )
    p.add_argument(
        "--pool",
        type=_positive,
        default=0,
        metavar="N",
        help="also write N (> 5) more sequences per window to <name>.poolN.json beside the submission, "
        "for `ego4d-lta ensemble`",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"ego4d-lta {args.command}: error: {e}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print(f"ego4d-lta {args.command}: interrupted", file=sys.stderr)
        return 130
