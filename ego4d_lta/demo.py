"""`ego4d-lta demo`: the whole path on synthetic data, on a laptop.

synthetic Ego4D-format data -> predictions for val and test -> the challenge JSON -> validation and
scores, next to the reference baselines. The forecaster joins this pipeline once it exists; until
then the demo shows the data, submission and scoring stages end to end.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

from ego4d_lta.baselines import BASELINES, baseline_predictions
from ego4d_lta.data.annotations import load_annotations
from ego4d_lta.data.jsonio import read_json, write_json_atomic
from ego4d_lta.data.synthetic import SynthConfig, generate
from ego4d_lta.data.windows import make_windows
from ego4d_lta.errors import UserError
from ego4d_lta.submission import build_submission, write_submission
from ego4d_lta.validate import validate_file

DEMO_SYNTH = SynthConfig(size="tiny", missing_videos=1, corrupt_videos=1)


def ensure_dataset(data: Path, cfg: SynthConfig) -> None:
    """Generate the synthetic dataset unless `data` already holds the same one."""
    info = data / "synthetic.json"
    if info.exists():
        try:
            same = read_json(info).get("config") == _as_dict(cfg)
        except (UserError, AttributeError):  # a damaged marker file: regenerate
            same = False
        if same:
            print(f"[demo] reusing synthetic dataset in {data}")
            return
    started = time.perf_counter()
    print(f"[demo] writing synthetic dataset to {data} ...", flush=True)
    summary = generate(data, cfg)
    print(
        f"[demo] {sum(len(v) for v in summary.clips.values())} clips, "
        f"{summary.bytes / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s"
    )


def run_demo(out: Path, seed: int = 0) -> dict:
    """Run the demo into `out`; returns the report also written to `out/demo_report.json`."""
    cfg = SynthConfig(**{**_as_dict(DEMO_SYNTH), "seed": seed})
    data = out / "data"
    ensure_dataset(data, cfg)
    annotations = data / "annotations"
    train, _ = load_annotations(annotations, "train")
    results = {}
    for split in ("val", "test"):
        table, taxonomy = load_annotations(annotations, split)
        windows = make_windows(table, include_extra=False)
        names = BASELINES if split == "val" else ("majority",)
        for name in names:
            verb, noun = baseline_predictions(name, windows, table, train, taxonomy, seed=seed)
            path = write_submission(
                out / "submissions" / f"{name}-{split}.json", build_submission(windows.keys, verb, noun)
            )
            report = validate_file(path, annotations, split)
            if not report.valid:
                raise RuntimeError(f"demo produced an invalid submission {path}: {report.errors[0]}")
            results[(name, split)] = (path, report)
    baselines = {name: results[(name, "val")][1].scores.ed20 for name in BASELINES}
    test_path = results[("majority", "test")][0]
    report = {"model": None, "baselines": baselines, "submission": str(test_path)}
    write_json_atomic(out / "demo_report.json", report)
    _print_table(baselines, results[("majority", "test")][1].windows, test_path, out)
    return report


def _print_table(baselines: dict, test_windows: int, test_path: Path, out: Path) -> None:
    print("\nval ED@20 (lower is better; K=5, Z=20)")
    print(f"{'predictor':<14}{'verb':>8}{'noun':>8}{'action':>8}")
    for name, ed in baselines.items():
        print(f"{name:<14}{ed['verb']:8.4f}{ed['noun']:8.4f}{ed['action']:8.4f}")
    print(f"\ntest submission: {test_path} ({test_windows} windows, valid)")
    print(f"report: {out / 'demo_report.json'}")
    sys.stdout.flush()


def _as_dict(cfg: SynthConfig) -> dict:
    return asdict(cfg)
