"""`ego4d-lta recognise`: train a per-segment (verb, noun) recogniser from a feature cache; write recognitions."""

from __future__ import annotations

import argparse
from pathlib import Path

from ego4d_lta.base.errors import UserError
from ego4d_lta.cli.common import add_data, add_features, add_quiet, bounded, with_requested_paths
from ego4d_lta.config import Config

HELP = "a per-segment (verb, noun) recogniser from a feature cache -> recognitions for predict / labels runs"
EPILOG = """examples:
  ego4d-lta recognise --data data-synth --set data.released=slowfast8x8_r101_k400 --split train val test --folds 5
  ego4d-lta recognise --split val test --run runs/recogniser-clip   # the extract cache of data.encoders=full"""
SPLITS = ("train", "val", "test")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--split",
        nargs="+",
        choices=SPLITS,
        default=["val", "test"],
        help="whose segments the recognitions file holds (one file for all); train needs --folds",
    )
    p.add_argument(
        "--folds",
        type=bounded(0, 1000),
        default=0,
        metavar="K",
        help="recognise the train split by K-fold cross-fitting over its videos: each segment by a recogniser "
        "trained without its video (2..1000; 0: no train recognitions)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="which features: data.released=SET (imported) or data.encoders=NAME (extracted; default full)",
    )
    add_data(p)
    add_features(p)
    p.add_argument("--run", type=Path, default=Path("runs/recogniser"), help="folder for the recogniser and report")
    p.add_argument("--out", type=Path, default=None, help="recognitions file (default: RUN/recognitions.json)")
    p.add_argument(
        "--hidden", type=bounded(0, 65536), default=0, help="width of one hidden layer (0..65536; 0: linear)"
    )
    p.add_argument(
        "--dropout", type=bounded(0, 0.99, float), default=0.0, help="dropout on the standardised features (0..0.99)"
    )
    p.add_argument("--epochs", type=bounded(1, 10000), default=20, help="passes over the train segments (1..10000)")
    p.add_argument("--lr", type=bounded(1e-8, 10, float), default=1e-3, help="Adam learning rate (1e-08..10)")
    p.add_argument("--batch-size", type=bounded(1, 1 << 20), default=256, help="segments per step (1..1048576)")
    p.add_argument(
        "--seed", type=bounded(0, 2**31 - 1), default=0, help="weights, data order, dropout and the folds (0..2**31-1)"
    )
    p.add_argument(
        "--topk", type=bounded(1, 100), default=5, help="(id, probability) pairs per head in the file (1..100)"
    )
    add_quiet(p)


def feature_config(args: argparse.Namespace) -> Config:
    """A run config whose `data` section says where the features are: --set data.* on the defaults, then --data /
    --features (or their environment variables)."""
    from ego4d_lta.config import apply_override

    cfg = Config()
    for item in args.set or []:
        if not item.strip().startswith("data."):
            raise UserError(f"--set {item}: recognise takes data.* settings only (its own are flags: --epochs, ...)")
        apply_override(cfg, item)
    return with_requested_paths(cfg, args)


def run(args: argparse.Namespace) -> int:
    from ego4d_lta.runtime.recognition import FitSettings
    from ego4d_lta.stages.recognise import RecogniseConfig, recognise

    rc = RecogniseConfig(
        cfg=feature_config(args),
        run_dir=args.run,
        splits=tuple(args.split),
        out=args.out,
        folds=args.folds,
        hidden=args.hidden,
        dropout=args.dropout,
        topk=args.topk,
        fit=FitSettings(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed),
        progress=not args.quiet,
    )
    summary = recognise(rc)
    for line in summary.lines():
        print(line)
    return 0
