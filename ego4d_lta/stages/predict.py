"""`ego4d-lta predict`: a run's checkpoint -> the challenge JSON for val or test, validated before it is reported.

Every key the annotations expect gets a prediction, also when a clip's video (hence its features) is missing:
those windows get the fallback (the training set's most frequent action) and are counted in a warning. The
file is written beside its final name, checked exactly as `ego4d-lta validate` does, then renamed; a sidecar
`<name>.meta.json` records the run, checkpoint and config that made it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import torch

from ego4d_lta import __version__
from ego4d_lta.base.denormals import flush_denormals
from ego4d_lta.base.durable import publish, staged_file, sweep_leftovers
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.hashing import file_digest
from ego4d_lta.base.jsonio import printable
from ego4d_lta.base.output_guard import check_output
from ego4d_lta.challenge.metrics import Scores
from ego4d_lta.challenge.rules import K
from ego4d_lta.challenge.submission import build_submission
from ego4d_lta.challenge.validate import stage_checked
from ego4d_lta.config import Config, apply_override, check, from_dict
from ego4d_lta.models.forecaster import ForecastingModel, build_forecaster, labels_only
from ego4d_lta.runtime import checkpoint
from ego4d_lta.runtime.checkpoint import RunCheckpoint
from ego4d_lta.runtime.distributed import broadcast_object, device_for, setup, world_info_from_env
from ego4d_lta.runtime.inference import predict_windows
from ego4d_lta.runtime.inputs import RunInputs, SplitInputs, feature_dims


@dataclass
class PredictConfig:
    run_dir: Path
    split: str = "test"
    checkpoint: str = "best"
    """best, last, or a checkpoint file."""
    data_dir: Path | None = None
    """Dataset root; default: the one the run was trained on."""
    features_dir: Path | None = None
    out: Path | None = None
    """Default: submissions/<run name>-<split>.json."""
    overrides: list[str] = field(default_factory=list)
    """`generate.*` settings (`--set generate.strategy=iid`)."""
    batch_size: int = 256
    device: str = "auto"
    progress: bool = True
    recognitions: Path | None = None
    """`labels` runs: recognised (verb, noun) per observed segment key, read instead of the annotations' labels
    where it has the segment; test windows it does not cover get the fallback."""
    pool: int = 0
    """Also write this many more sequences per window (drawn like the submission's: generate.*) beside it, to
    <name>.pool<N>.json, for `ego4d-lta ensemble` (0: none; else more than K)."""


@dataclass
class PredictSummary:
    path: Path
    sidecar: Path
    windows: int
    fallback: int
    scores: Scores | None
    warnings: list[str]
    seconds: float
    pool: Path | None = None


def default_output(run_dir: Path, split: str) -> Path:
    return Path("submissions") / f"{Path(run_dir).resolve().name}-{split}.json"


def run_config(ckpt: RunCheckpoint, pcfg: PredictConfig) -> Config:
    """The run's config with this prediction's data paths and generate.* overrides."""
    cfg = from_dict(ckpt.config, where="checkpoint")
    if pcfg.data_dir is not None:
        cfg.data.data_dir = str(pcfg.data_dir)
    if pcfg.features_dir is not None:
        cfg.data.features_dir = str(pcfg.features_dir)
    for item in pcfg.overrides:
        if not item.startswith("generate."):
            raise UserError(f"--set {item}: predict takes only generate.* settings (the model is the checkpoint's)")
        apply_override(cfg, item)
    check(cfg)
    return cfg


def load_model(ckpt: RunCheckpoint, cfg: Config, encoders=None) -> ForecastingModel:
    """The checkpoint's forecaster, with its prompt bank (and the trained encoder weights of end-to-end runs)."""
    bank = {g: v.numpy() for g, v in ckpt.prompt_bank.items()} if ckpt.prompt_bank else None
    forecaster = build_forecaster(cfg.model, feature_dims(ckpt.features), ckpt.num_verbs, ckpt.num_nouns, bank)
    forecaster.load_state_dict(ckpt.model)
    if encoders is not None and ckpt.encoders:
        encoders.load_state_dict(ckpt.encoders, strict=False)
    return ForecastingModel(forecaster, encoders)


@flush_denormals()
def predict(pcfg: PredictConfig) -> PredictSummary | None:
    """Write the submission (on rank 0; the other processes return None)."""
    started = time.perf_counter()
    if pcfg.pool and pcfg.pool <= K:
        raise UserError(
            f"--pool {pcfg.pool}: a pool holds more than K={K} samples per window (else it is a submission)"
        )
    info = world_info_from_env()
    device = device_for(info, pcfg.device)
    setup(info, device)
    ckpt_path = checkpoint.resolve(pcfg.run_dir, pcfg.checkpoint)
    ckpt = RunCheckpoint.load(ckpt_path)
    cfg = run_config(ckpt, pcfg)
    check_outputs(pcfg, cfg, ckpt_path)
    recognitions = str(pcfg.recognitions) if pcfg.recognitions else ""  # never the training run's file
    sources = RunInputs(cfg, expected=ckpt.features, recognitions=recognitions)
    check_recognitions_use(cfg, sources)
    inputs = sources.open(pcfg.split, training=False)
    coverage = recognitions_coverage(pcfg, inputs)
    tax = inputs.taxonomy
    if (tax.num_verbs, tax.num_nouns) != (ckpt.num_verbs, ckpt.num_nouns):
        raise UserError(
            f"{ckpt_path}: trained for {ckpt.num_verbs} verbs / {ckpt.num_nouns} nouns, but the taxonomy has "
            f"{tax.num_verbs} / {tax.num_nouns}"
        )
    model = load_model(ckpt, cfg, sources.encoders).to(device)
    from ego4d_lta.base.progress import progress_bar

    show = pcfg.progress and info.is_main
    with progress_bar(len(inputs.windows), f"predict {pcfg.split}", "win", disable=not show) as bar:
        preds = predict_windows(
            model,
            inputs.dataset,
            cfg.generate,
            ckpt.fallback,
            device,
            pcfg.batch_size,
            info.rank,
            info.world_size,
            cfg.train.precision,
            progress=bar.update,
            pool=pcfg.pool,
            recognised=inputs.recognised,
        )
    outcome: PredictSummary | str | None = None
    if info.is_main:
        try:
            outcome = _write(pcfg, cfg, ckpt, ckpt_path, inputs, preds, started, coverage)
        except OSError as e:
            outcome = f"{e.filename or pcfg.out}: cannot write the submission ({e.strerror or e})"
        except (UserError, RuntimeError) as e:
            outcome = str(e)
    outcome = broadcast_object(outcome)  # every process learns whether rank 0 succeeded
    if isinstance(outcome, str):
        raise UserError(outcome)
    return outcome if info.is_main else None


def check_recognitions_use(cfg: Config, sources: RunInputs) -> None:
    """A video run uses a recognitions file only as the set selection's observed candidates: without the set
    selection it would be read and ignored, so it is refused."""
    if sources.predicting and not sources.labels_only and not (cfg.generate.samples and cfg.generate.candidates):
        raise UserError(
            f"--recognitions {printable(sources.recognitions, 200)}: a {cfg.model.variant} run reads video features; "
            "it uses recognitions only as the set selection's observed candidates: add --set generate.samples=50 "
            "(with generate.candidates not empty), or leave the file out"
        )


def recognitions_coverage(pcfg: PredictConfig, inputs: SplitInputs) -> dict | None:
    """How much of the split the recognitions file covers (for the sidecar); a file that covers no window is refused,
    with the key format, since then nothing it holds is used."""
    if inputs.recognised is None:
        return None
    verb, noun = inputs.recognised
    covered = int(((verb >= 0) & (noun >= 0)).all(1).sum())
    if not covered:
        uid, idx = inputs.table["clip_uid"].iloc[0], inputs.table["action_idx"].iloc[0]
        raise UserError(
            f"--recognitions {printable(str(pcfg.recognitions), 200)}: covers no {pcfg.split} window's 8 observed "
            f"segments; keys are '<clip_uid>_<action_idx>' of the {pcfg.split} annotations, e.g. "
            f"{printable(f'{uid}_{idx}', 120)!r}"
        )
    return {
        "path": str(Path(pcfg.recognitions).resolve()),
        "sha256": file_digest(pcfg.recognitions),
        "windows_covered": covered,
        "windows": len(verb),
    }


def check_outputs(pcfg: PredictConfig, cfg: Config, ckpt_path: Path) -> None:
    """Before any work: the submission, its sidecar and pool replace none of the inputs and no other kind of file."""
    out = Path(pcfg.out) if pcfg.out else default_output(pcfg.run_dir, pcfg.split)
    annotations = Path(cfg.data.data_dir) / "annotations"
    inputs = [ckpt_path, *(sorted(annotations.glob("*")) if annotations.is_dir() else [])]
    inputs += [pcfg.recognitions] if pcfg.recognitions else []
    check_output(out, "submission", inputs)
    check_output(sidecar_path(out), "sidecar", inputs, "--out (its sidecar)", sidecar_of=out.name)
    if pcfg.pool:
        check_output(pool_path(out, pcfg.pool), "submission", inputs, "--out (its pool)")
    remove_leftovers(out, pcfg.pool)


def sidecar_path(out: Path) -> Path:
    return out.with_name(out.stem + ".meta.json")


def _write(
    pcfg: PredictConfig,
    cfg: Config,
    ckpt: RunCheckpoint,
    ckpt_path: Path,
    inputs: SplitInputs,
    preds,
    started: float,
    recognitions: dict | None = None,
) -> PredictSummary:
    out = Path(pcfg.out) if pcfg.out else default_output(pcfg.run_dir, pcfg.split)
    submission = build_submission(inputs.windows.keys, preds.verb, preds.noun)
    annotations = Path(cfg.data.data_dir) / "annotations"
    sidecar, staged = sidecar_path(out), []  # (temporary, final) in the order they are renamed
    try:
        tmp, report = stage_checked(out, submission, annotations, pcfg.split, "predict")
        staged.append((tmp, out))
        pool = None
        if preds.pool_verb is not None:
            pool = pool_path(out, pcfg.pool)
            samples = build_submission(inputs.windows.keys, preds.pool_verb, preds.pool_noun, k=pcfg.pool)
            pool_tmp, _ = stage_checked(pool, samples, annotations, pcfg.split, "predict --pool", k=pcfg.pool)
            staged.insert(0, (pool_tmp, pool))  # renamed first: the submission is what a user looks for
        warnings = [*report.warnings, *prediction_warnings(cfg, inputs, preds, recognitions)]
        fallback = int(preds.fallback.sum())
        meta = {
            "submission": out.name,
            "submission_sha256": file_digest(tmp),
            "split": pcfg.split,
            "windows": len(inputs.windows),
            "fallback_windows": fallback,
            "run": str(Path(pcfg.run_dir).resolve()),
            "checkpoint": str(Path(ckpt_path).resolve()),
            "checkpoint_sha256": file_digest(ckpt_path),
            "checkpoint_epoch": ckpt.state.epoch,
            "config": cfg.to_dict(),
            "features": ckpt.features.to_json(),
            "recognitions": recognitions,
            "scores": report.scores.to_json() if report.scores else None,
            "package": __version__,
            "torch": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if pool is not None:
            meta["pool"], meta["pool_sha256"] = pool.name, file_digest(staged[0][0])
        with staged_file(sidecar, suffix=".json") as side_tmp:
            side_tmp.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        staged.append((side_tmp, sidecar))
        # Every file is written and checked; now the renames. The old sidecar goes first and the new one comes
        # last: a kill in between leaves a submission without a sidecar, never one beside another's sidecar.
        sidecar.unlink(missing_ok=True)
        publish(staged)
    finally:
        for tmp_path, _ in staged:
            tmp_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return PredictSummary(out, sidecar, len(inputs.windows), fallback, report.scores, warnings, seconds, pool)


def prediction_warnings(cfg: Config, inputs: SplitInputs, preds, recognitions: dict | None) -> list[str]:
    """What the user should know about how the windows were predicted: fallbacks, replays without weight or data."""
    warnings = []
    video = not labels_only(cfg.model.variant)
    if recognitions and video and not cfg.generate.observed_weight:
        warnings.append(
            "the recognised replays are candidates only (generate.observed_weight is 0): they are chosen only "
            "where they cover the model's samples; --set generate.observed_weight=0.6 gives them weight"
        )
    uncovered = recognitions["windows"] - recognitions["windows_covered"] if recognitions else 0
    if uncovered and video:  # a labels run's are counted as fallbacks below
        warnings.append(
            f"{uncovered} of {recognitions['windows']} windows have an observed segment the recognitions file "
            "lacks: their K were chosen from the model's samples alone"
        )
    fallback = int(preds.fallback.sum())
    if fallback:
        clips = sorted({inputs.windows.clip_uids[i] for i in preds.fallback.nonzero()[0]})
        warnings.append(
            f"{fallback} of {len(preds.fallback)} windows had no features or recognitions (clips "
            f"{', '.join(clips[:5])}{' ...' if len(clips) > 5 else ''}) and got the fallback prediction"
        )
    return warnings


def remove_leftovers(out: Path, pool: int) -> list[Path]:
    """Temporary files of an earlier prediction to the same name that a kill interrupted, removed."""
    names = [out, sidecar_path(out), *([pool_path(out, pool)] if pool else [])]
    return sweep_leftovers(out.parent, [name.stem for name in names], older=None)


def pool_path(out: Path, samples: int) -> Path:
    """Where `--pool N` writes: beside the submission, `<name>.pool<N>.json`."""
    return out.with_name(f"{out.stem}.pool{samples}.json")
