"""`ego4d-lta predict`: a run's checkpoint -> submissions/<run>-<split>.json, validated before it is reported."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.rules import K
from ego4d_lta.cli.common import add_data, add_features, add_quiet, bounded, requested_paths

MAX_POOL = 1000
"""`--pool`'s bound: what `ego4d-lta ensemble` takes per input (workflow/ensemble.py MAX_POOL)."""

HELP = "a run's checkpoint -> submissions/<run>-<split>.json (validated)"
EPILOG = "example: ego4d-lta predict --split val --run runs/tiny   # also prints the val scores"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--split",
        choices=["val", "test"],
        required=True,
        help="windows to predict: val (scored here) or test (the upload); required, a test run costs as much",
    )
    p.add_argument("--run", type=Path, default=None, help="run folder (default: the only one in runs/)")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint file (default: best)")
    add_data(p, "dataset root (default: $EGO4D_LTA_DATA, else the run's)")
    add_features(p, "feature cache root (default: $EGO4D_LTA_FEATURES, else the run's)")
    p.add_argument("--out", type=Path, default=None, help="output file (default: submissions/<run>-<split>.json)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="generate.* settings, e.g. generate.strategy=iid"
    )
    p.add_argument("--batch-size", type=bounded(1, 1 << 20), default=256, help="windows per forward pass (1..2**20)")
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
        type=bounded(K + 1, MAX_POOL),
        default=0,
        metavar="N",
        help=f"also write N ({K + 1}..{MAX_POOL}) more sequences per window to <name>.poolN.json beside the output, "
        "for `ego4d-lta ensemble`",
    )
    add_quiet(p)


def default_run() -> Path:
    runs = sorted(p for p in Path("runs").glob("*") if (p / "last.pt").is_file() or (p / "best.pt").is_file())
    if len(runs) == 1:
        return runs[0]
    found = ", ".join(str(r) for r in runs) if runs else "none in runs/"
    raise UserError(f"which run? pass --run DIR (found: {found})")


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.base.jsonio import printable_path
    from ego4d_lta.stages.predict import PredictConfig, predict

    data, features = requested_paths(args)
    cfg = PredictConfig(
        run_dir=args.run or default_run(),
        split=args.split,
        checkpoint=args.checkpoint,
        data_dir=data,
        features_dir=features,
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
        print(f"warning: {printable_path(s.path)}: {warning}", file=sys.stderr)
    shown = printable_path(s.path), printable_path(s.sidecar.name)
    print(f"wrote {shown[0]} ({s.windows} windows, valid) and {shown[1]} in {s.seconds:.1f} s")
    if s.pool is not None:
        print(
            f"wrote {printable_path(s.pool)} ({args.pool} samples per window, for `ego4d-lta ensemble`; "
            "not a submission)"
        )
    if s.scores is not None:
        ed = s.scores.ed20
        print(f"{args.split} ED@20: verb {ed['verb']:.4f}  noun {ed['noun']:.4f}  action {ed['action']:.4f}")
    return 0
