"""The Python API: what the CLI does, as functions for a notebook or a script (`import ego4d_lta as lta`).

    report = lta.score_submission("demo/submissions/tiny-val.json", "demo/data/annotations")
    report.scores.ed20                      # {"verb": ..., "noun": ..., "action": ...}
    run = lta.load_run("demo/runs/tiny")    # best.pt, its config and model, on the CPU
    forecast = lta.predict(run, "val")      # (n, K, Z) verb and noun ids for every val window
    forecast.write("val.json")              # the challenge JSON (not validated; `ego4d-lta predict` is)
    cache = lta.read_cache("demo/data/features", "val")  # the one cache there (the tiny encoders')

Each is the code path its command takes (`validate`, `predict`, the feature cache reader), not a second copy.
`import ego4d_lta` stays cheap: these load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.output_guard import check_output
from ego4d_lta.challenge.split_guess import infer_split
from ego4d_lta.challenge.submission import build_submission, write_submission
from ego4d_lta.challenge.validate import ValidationReport, validate_file
from ego4d_lta.config import Config
from ego4d_lta.data.feature_cache import FeatureCache
from ego4d_lta.models.forecaster import ForecastingModel
from ego4d_lta.runtime import checkpoint as checkpoints
from ego4d_lta.runtime.checkpoint import RunCheckpoint
from ego4d_lta.runtime.distributed import WorldInfo, device_for
from ego4d_lta.runtime.encoder_config import caches_present, encoder_preset
from ego4d_lta.runtime.inference import predict_windows
from ego4d_lta.runtime.inputs import RunInputs
from ego4d_lta.stages.predict import PredictConfig, load_model, run_config

__all__ = ["Forecast", "Run", "load_run", "predict", "read_cache", "score_submission"]


def score_submission(path: Path | str, annotations: Path | str, split: str | None = None) -> ValidationReport:
    """`ego4d-lta validate`: the server's checks, and on val the scores (`.scores.ed20`, `.scores.aued`).

    `split` None: read from the file (its `.meta.json`, else its keys), as the command does. Rule violations are
    in `.errors` (`.valid` False); unreadable inputs raise `UserError`.
    """
    if split is None:
        split = infer_split([Path(path)], annotations).split
    return validate_file(path, annotations, split)


@dataclass
class Run:
    """A trained run loaded for prediction: the checkpoint record, its config and the model (eval mode)."""

    path: Path
    """The checkpoint file."""
    checkpoint: RunCheckpoint
    config: Config
    model: ForecastingModel
    device: torch.device


def load_run(
    run_dir: Path | str,
    checkpoint: str = "best",
    device: str = "cpu",
    data: Path | str | None = None,
    features: Path | str | None = None,
    generate: list[str] | tuple[str, ...] = (),
) -> Run:
    """A run's `best.pt` (or `last`, or a file) as `ego4d-lta predict` loads it; `data` / `features` move the
    dataset and cache roots, `generate` takes `generate.*=value` settings like `predict --set`."""
    pcfg = PredictConfig(
        Path(run_dir),
        checkpoint=checkpoint,
        data_dir=Path(data) if data is not None else None,
        features_dir=Path(features) if features is not None else None,
        overrides=list(generate),
    )
    path = checkpoints.resolve(pcfg.run_dir, pcfg.checkpoint)
    ckpt = RunCheckpoint.load(path)
    cfg = run_config(ckpt, pcfg)
    where = device_for(WorldInfo(), device)
    model = load_model(ckpt, cfg).to(where).eval()
    return Run(path, ckpt, cfg, model, where)


@dataclass
class Forecast:
    """K sequences of Z (verb, noun) per window of a split, in its window order (what a submission holds)."""

    split: str
    keys: list[str]
    verb: np.ndarray
    """(n, K, Z) verb ids."""
    noun: np.ndarray
    fallback: np.ndarray
    """(n,) True where the window had no features and got the training set's most frequent action."""

    def submission(self) -> dict[str, dict]:
        return build_submission(self.keys, self.verb, self.noun)

    def write(self, path: Path | str) -> Path:
        """The submission JSON at `path`; like the command, never over a file of another kind (annotations)."""
        check_output(path, "submission", flag="Forecast.write")
        return write_submission(path, self.submission())


MAX_BATCH = 1 << 20
"""The largest `batch_size` `predict` takes (windows per forward pass), as the command's `--batch-size`."""


def predict(run: Run | Path | str, split: str, batch_size: int = 256) -> Forecast:
    """Every window of `split` from the run's feature cache, sampled as `ego4d-lta predict` does (same seed, same
    result). `run` is a loaded `Run` or a run folder (`load_run` with its defaults). Video runs (finetune_slowfast)
    are for the command: this reads features only."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise UserError(f"predict: batch_size must be an integer in 1..{MAX_BATCH}, got {batch_size!r}")
    if not isinstance(run, Run):
        run = load_run(run)
    if run.config.model.finetune_slowfast:
        raise UserError("predict: an end-to-end (video) run; use `ego4d-lta predict`, which loads the encoders")
    sources = RunInputs(run.config, expected=run.checkpoint.features, recognitions="")  # never the training run's
    inputs = sources.open(split, training=False)
    preds = predict_windows(
        run.model,
        inputs.dataset,
        run.config.generate,
        run.checkpoint.fallback,
        run.device,
        batch_size,
        precision=run.config.train.precision,
    )
    return Forecast(split, list(inputs.windows.keys), preds.verb, preds.noun, preds.fallback)


def read_cache(features: Path | str, split: str, encoders: str | None = None) -> FeatureCache:
    """A split's feature cache (FEATURES/<encoder tag>/<split>/): `.index`, `.manifest`, `.gather(rows, name)`.

    `encoders` ("full", "tiny": `extract --encoders`) picks the cache; None takes the one the folder holds.
    """
    present = caches_present(features, split)
    if encoders is None and len(present) == 1:
        encoders = present[0]
    elif encoders is None:
        choices = " or ".join(f"encoders={name!r}" for name in present) or "encoders='full' or 'tiny'"
        held = f"holds the {' and '.join(present)} caches" if present else "holds no extract cache"
        raise UserError(f"pass {choices}: {Path(features)} {held} of {split}")
    if encoders not in present and present:
        raise UserError(
            f"pass encoders={present[0]!r}: {Path(features)} holds the {present[0]} cache of {split}, "
            f"not the {encoders} one (`ego4d-lta extract --encoders {encoders}` makes it)"
        )
    return FeatureCache.open(Path(features) / encoder_preset(encoders).tag / split)
