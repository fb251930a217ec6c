"""`ego4d-lta demo`: the whole path on synthetic data, on a laptop CPU.

synthetic Ego4D-format data -> frozen tiny encoders (random weights saved to files, loaded like real ones) ->
feature cache -> train the `tiny` config -> predict val and test -> validate -> the model's val ED@20 next to
three baselines scored by the same code. Rerunning reuses what is already there (dataset, caches, the run).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import read_json, write_json_atomic
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.baselines import BASELINES, baseline_predictions
from ego4d_lta.challenge.submission import build_submission, write_submission
from ego4d_lta.challenge.validate import validate_file
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.stages.synth import SynthConfig, generate

DEMO_SYNTH = SynthConfig(size="tiny", missing_videos=1, corrupt_videos=1)
DEMO_CONFIG = "tiny"


def ensure_dataset(data: Path, cfg: SynthConfig) -> bool:
    """Generate the synthetic dataset unless `data` already holds the same one; True if it was (re)generated."""
    info = data / "synthetic.json"
    if info.exists():
        try:
            same = read_json(info).get("config") == _as_dict(cfg)
        except (UserError, AttributeError):  # a damaged marker file: regenerate
            same = False
        if same:
            print(f"[demo] reusing synthetic dataset in {data}")
            return False
    started = time.perf_counter()
    print(f"[demo] writing synthetic dataset to {data} ...", flush=True)
    summary = generate(data, cfg)
    print(
        f"[demo] {sum(len(v) for v in summary.clips.values())} clips, "
        f"{summary.bytes / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s"
    )
    return True


def demo_weights(out: Path) -> tuple[Path, Path]:
    """Random-init tiny SlowFast and CLIP weights saved as files (no weights can be downloaded in a demo)."""
    from ego4d_lta.models.factory import random_tiny_weights
    from ego4d_lta.runtime.encoder_config import ENCODER_PRESETS

    sampling = ENCODER_PRESETS["tiny"].sampling
    return random_tiny_weights(out, sampling.num_frames, sampling.crop_size)


def extract_all(data: Path, slowfast: Path, clip: Path, progress: bool = True) -> None:
    from ego4d_lta.runtime.encoder_config import ENCODER_PRESETS
    from ego4d_lta.stages.extract import ExtractConfig, extract

    for split in ("train", "val", "test"):
        planted = planted_note(data, split)
        print(f"[demo] extracting {split} features (tiny encoders){planted} ...", flush=True)
        cfg = ExtractConfig(
            data_dir=data,
            features_dir=data / "features",
            split=split,
            encoders=ENCODER_PRESETS["tiny"],
            slowfast_weights=slowfast,
            clip_weights=clip,
            batch_size=16,
            workers=1,
            progress=progress,
        )
        s = extract(cfg)
        note = f", {len(s.failed)} clips without video, planted" if s.failed else ""
        print(f"[demo] features {split}: {s.rows} segments ({s.done_now} extracted in {s.seconds:.1f} s{note})")


def planted_note(data: Path, split: str) -> str:
    """`; 1 missing and 1 corrupt clip planted on purpose: ...` for the split whose clips the demo breaks."""
    try:
        info = read_json(data / "synthetic.json")
    except UserError:
        return ""
    if split != "test" or not isinstance(info, dict):
        return ""
    missing, corrupt = len(info.get("missing_videos") or []), len(info.get("corrupt_videos") or [])
    if not missing and not corrupt:
        return ""
    return (
        f"; {missing} missing and {corrupt} corrupt clips are planted on purpose, so the warnings about them below "
        "are expected (their windows still get a prediction)"
    )


def run_demo(out: Path, seed: int = 0, progress: bool = True) -> dict:
    """Run the demo into `out`; returns the report also written to `out/demo_report.json`."""
    from ego4d_lta.config import load_config
    from ego4d_lta.stages.predict import PredictConfig, predict
    from ego4d_lta.stages.train import train

    started = time.perf_counter()
    data = out / "data"
    if ensure_dataset(data, SynthConfig(**{**_as_dict(DEMO_SYNTH), "seed": seed})):
        for stale in (data / "features", out / "runs"):  # made from another dataset (e.g. another --seed)
            shutil.rmtree(stale, ignore_errors=True)
    extract_all(data, *demo_weights(out / "weights"), progress=progress)
    cfg = load_config(DEMO_CONFIG, [f"train.seed={seed}", f"generate.seed={seed}"])
    cfg.data.data_dir = str(data)
    run = out / "runs" / DEMO_CONFIG
    print(f"[demo] training {cfg.name} ({cfg.model.variant}, {cfg.train.epochs} epochs) in {run} ...", flush=True)
    train(cfg, run, resume=True, device="cpu", progress=progress)
    predictions = {}
    for split in ("val", "test"):
        pcfg = PredictConfig(run, split, out=out / "submissions" / f"{DEMO_CONFIG}-{split}.json", device="cpu")
        predictions[split] = predict(pcfg)
        for warning in predictions[split].warnings:
            print(f"[demo] warning: {split}: {warning}")
    baselines = score_baselines(out, data, seed)
    model = predictions["val"].scores.ed20
    report = {"model": model, "baselines": baselines, "submission": str(predictions["test"].path)}
    write_json_atomic(out / "demo_report.json", report)
    _print_table(model, baselines, predictions["test"], out, time.perf_counter() - started)
    return report


def score_baselines(out: Path, data: Path, seed: int) -> dict[str, dict[str, float]]:
    """Val ED@20 of each baseline, through a written and validated submission like the model's."""
    annotations = data / "annotations"
    train_table, _ = load_annotations(annotations, "train")
    table, taxonomy = load_annotations(annotations, "val")
    windows = make_windows(table, include_extra=False)
    scores = {}
    for name in BASELINES:
        verb, noun = baseline_predictions(name, windows, table, train_table, taxonomy, seed=seed)
        path = write_submission(out / "submissions" / f"{name}-val.json", build_submission(windows.keys, verb, noun))
        report = validate_file(path, annotations, "val")
        if not report.valid:
            raise RuntimeError(f"demo produced an invalid submission {path}: {report.errors[0]}")
        scores[name] = report.scores.ed20
    return scores


def _print_table(model: dict, baselines: dict, test, out: Path, seconds: float) -> None:
    print("\nval ED@20 (lower is better; K=5, Z=20)")
    print(f"{'predictor':<14}{'verb':>8}{'noun':>8}{'action':>8}")
    for name, ed in {f"model ({DEMO_CONFIG})": model, **baselines}.items():
        print(f"{name:<14}{ed['verb']:8.4f}{ed['noun']:8.4f}{ed['action']:8.4f}")
    print(f"\ntest submission: {test.path} ({test.windows} windows, valid; {test.fallback} without features)")
    print(f"report: {out / 'demo_report.json'} (demo took {seconds / 60:.1f} min)")
    sys.stdout.flush()


def _as_dict(cfg: SynthConfig) -> dict:
    return asdict(cfg)
