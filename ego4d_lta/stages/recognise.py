"""`ego4d-lta recognise`: a per-segment (verb, noun) recogniser trained from a feature cache alone, and the
recognitions file `predict --recognitions` (and a `labels` run's `data.recognitions`) reads.

The recogniser is trained on the train split's annotated segments with features, scored on val (top-1 / top-5
verb, noun and action accuracy, beside the majority class's), and recognises every segment of the splits asked
for. The train split's own recognitions come from k-fold cross-fitting (`runtime/recognition.py`): no segment is
recognised by a recogniser that saw its video. Written to the run folder: `recogniser.pt` (the recogniser trained on
all of train), `report.json` (settings, accuracies, folds, per-epoch losses) and the recognitions (one file for
every split asked for).
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import torch

from ego4d_lta import __version__
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.hashing import file_digest
from ego4d_lta.base.jsonio import printable, write_bytes_atomic, write_json_atomic
from ego4d_lta.base.output_guard import check_output
from ego4d_lta.challenge.annotations import Taxonomy, load_split, load_taxonomy, split_path, taxonomy_path
from ego4d_lta.config import Config
from ego4d_lta.data.label_windows import recognition_entry
from ego4d_lta.data.segment_features import SegmentFeatures, segment_features
from ego4d_lta.models.recogniser import RecogniserSpec
from ego4d_lta.runtime.inputs import RunInputs
from ego4d_lta.runtime.recognition import (
    TOPK,
    FitSettings,
    accuracies,
    assign_folds,
    class_probabilities,
    cross_fit,
    fit_recogniser,
    fold_groups,
    majority_accuracy,
    ranked,
)

MODEL_FILE = "recogniser.pt"
REPORT_FILE = "report.json"
RECOGNITIONS_FILE = "recognitions.json"
REPORT_FORMAT = "ego4d-lta-recogniser-report"
FORECASTER_FILES = ("last.pt", "best.pt", "metrics.jsonl")
"""A forecaster run's files: a folder holding one is not a recogniser's to write into."""


@dataclass
class RecogniseConfig:
    cfg: Config
    """Where the features are: `data.data_dir`, `data.features_dir`, `data.released`, `data.encoders`."""
    run_dir: Path
    splits: tuple[str, ...] = ("val", "test")
    """Whose segments the recognitions file holds; `train` needs `folds`."""
    out: Path | None = None
    """The recognitions file (default RUN/recognitions.json)."""
    folds: int = 0
    """K >= 2: the train split's recognitions by K-fold cross-fitting; 0: none."""
    hidden: int = 0
    dropout: float = 0.0
    topk: int = TOPK
    fit: FitSettings = field(default_factory=FitSettings)
    progress: bool = True


@dataclass
class SplitData:
    split: str
    table: pd.DataFrame
    features: SegmentFeatures
    cache_dir: Path

    @property
    def labelled(self) -> np.ndarray:
        """Rows with features and an annotated verb and noun."""
        return self.features.ok & (self.table["verb"].to_numpy() >= 0) & (self.table["noun"].to_numpy() >= 0)


@dataclass
class RecogniseSummary:
    run_dir: Path
    out: Path
    report: dict
    seconds: float

    def lines(self) -> list[str]:
        """What the command prints: val accuracy against the majority class, the cross-fitted train's, the files."""
        r = self.report
        out = [_accuracy_line("val", r["val"], r["val"]["majority"])]
        if r.get("train_cross_fitted"):
            name = f"train ({r['folds']['k']}-fold cross-fitted by {r['folds']['by']})"
            out.append(_accuracy_line(name, r["train_cross_fitted"]))
        counts = ", ".join(f"{s} {v['written']}" for s, v in r["splits"].items())
        out.append(
            f"wrote {self.out} ({counts} segments, top-{r['topk']} with probabilities), "
            f"{self.run_dir / MODEL_FILE} and {self.run_dir / REPORT_FILE} in {self.seconds:.1f} s"
        )
        return out


def _accuracy_line(name: str, acc: dict, majority: dict | None = None) -> str:
    k = next(key for key in acc if key.startswith("verb_top") and key != "verb_top1")[len("verb_top") :]
    line = (
        f"{name} ({acc['segments']} segments): top-1 verb {acc['verb_top1']:.4f} noun {acc['noun_top1']:.4f} action "
        f"{acc['action_top1']:.4f}; top-{k} verb {acc[f'verb_top{k}']:.4f} noun {acc[f'noun_top{k}']:.4f} action "
        f"{acc[f'action_top{k}']:.4f}"
    )
    if majority:
        m = majority
        line += f" (majority class: verb {m['verb']:.4f} noun {m['noun']:.4f} action {m['action']:.4f})"
    return line


def recognise(rc: RecogniseConfig) -> RecogniseSummary:
    """Train, score, cross-fit and write; every check that can fail fast runs before any training."""
    started = time.perf_counter()
    out = check_request(rc)
    annotations = Path(rc.cfg.data.data_dir) / "annotations"
    taxonomy = load_taxonomy(taxonomy_path(annotations))
    data = open_splits(rc.cfg, taxonomy, ("train", "val", *rc.splits))
    train = data["train"]
    spec = RecogniserSpec(train.features.dim, taxonomy.num_verbs, taxonomy.num_nouns, rc.hidden, rc.dropout)
    pick = train.labelled
    if not pick.any():
        raise UserError(f"{train.cache_dir}: no train segment has both features and labels; nothing to learn from")
    folds = _plan_folds(rc, train) if rc.folds else None  # refused here, before any training
    verb, noun = train.table["verb"].to_numpy(), train.table["noun"].to_numpy()
    _say(rc, f"training the recogniser on {int(pick.sum())} train segments ({spec.dim} features)")
    model, history = fit_recogniser(train.features.x[pick], verb[pick], noun[pick], spec, rc.fit)
    probs = {s: class_probabilities(model, d.features.x) for s, d in data.items() if s != "train"}
    report = {
        "format": REPORT_FORMAT,
        "package": __version__,
        "features": {s: str(d.cache_dir) for s, d in data.items()},
        "arrays": list(train.features.arrays),
        "spec": asdict(spec),
        "fit": asdict(rc.fit),
        "topk": rc.topk,
        "history": history,
        "val": _score(data["val"], *probs["val"]) | {"majority": _majority(train, data["val"])},
    }
    if folds is not None:
        probs["train"], report["folds"] = _cross_fit(rc, train, spec, *folds)
        report["train_cross_fitted"] = _score(train, *probs["train"])
    entries, report["splits"] = _entries(data, probs, rc.splits, rc.topk)
    if not entries:
        raise UserError(f"no segment of {', '.join(rc.splits)} has features; nothing to recognise, nothing written")
    _write(rc.run_dir, out, model, report, entries)
    return RecogniseSummary(rc.run_dir, out, report, time.perf_counter() - started)


def check_request(rc: RecogniseConfig) -> Path:
    """The request's rules and the outputs' guards, before anything is read or trained; returns the output file."""
    if "train" in rc.splits and rc.folds < 2:
        raise UserError(
            "--split train: the train split's recognitions must come from recognisers that never saw them; "
            "add --folds K (K >= 2) to cross-fit them"
        )
    if rc.folds and "train" not in rc.splits:
        raise UserError(f"--folds {rc.folds} cross-fits the train split's recognitions: add --split train")
    if rc.folds == 1 or rc.topk < 1 or rc.hidden < 0 or not 0 <= rc.dropout < 1:
        raise UserError("--folds must be 0 or >= 2, --topk >= 1, --hidden >= 0 and --dropout in [0, 1)")
    run_dir = rc.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run {printable(str(run_dir), 200)}: is a file, expected a run folder")
    held = [name for name in FORECASTER_FILES if (run_dir / name).exists()]
    if held:
        raise UserError(f"--run {printable(str(run_dir), 200)}: holds a forecaster run ({held[0]}); use another --run")
    report = run_dir / REPORT_FILE
    if report.is_file() and _report_format(report) != REPORT_FORMAT:
        raise UserError(f"{printable(str(report), 200)}: a file this command did not write; use another --run")
    out = rc.out or run_dir / RECOGNITIONS_FILE
    annotations = Path(rc.cfg.data.data_dir) / "annotations"
    inputs = [*(sorted(annotations.glob("*")) if annotations.is_dir() else []), run_dir / MODEL_FILE, report]
    return check_output(out, "recognitions", inputs)


def _report_format(path: Path) -> object:
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return doc.get("format") if isinstance(doc, dict) else None


def open_splits(cfg: Config, taxonomy: Taxonomy, splits: tuple[str, ...]) -> dict[str, SplitData]:
    """Each split's annotations and per-segment features, from the cache `cfg` finds (`RunInputs.feature_cache`);
    every split's features must be made the same way as the first's (train's)."""
    sources = RunInputs(cfg)
    annotations = Path(cfg.data.data_dir) / "annotations"
    data: dict[str, SplitData] = {}
    first = None
    for split in dict.fromkeys(splits):
        cache = sources.feature_cache(split)
        if first is None:
            first = cache
        else:
            first.manifest.record.check_same(cache.manifest.record, str(cache.split_dir))
            if tuple(cache.arrays) != tuple(first.arrays):
                raise UserError(
                    f"{cache.split_dir}: holds {', '.join(cache.arrays)} features, {first.split_dir} "
                    f"{', '.join(first.arrays)}; use features made the same way for every split"
                )
        table = load_split(split_path(annotations, split), taxonomy, require_labels=split != "test")
        data[split] = SplitData(split, table, segment_features(cache, table), cache.split_dir)
    return data


def _score(split: SplitData, pv: np.ndarray, pn: np.ndarray) -> dict:
    pick = split.labelled
    verb, noun = split.table["verb"].to_numpy()[pick], split.table["noun"].to_numpy()[pick]
    return accuracies(pv[pick], pn[pick], verb, noun)


def _majority(train: SplitData, val: SplitData) -> dict[str, float]:
    labelled = train.table[train.table["verb"] >= 0]
    pick = val.labelled
    return majority_accuracy(labelled, val.table["verb"].to_numpy()[pick], val.table["noun"].to_numpy()[pick])


def _plan_folds(rc: RecogniseConfig, train: SplitData) -> tuple[np.ndarray, dict]:
    """Each train row's fold (-1: no features or labels, never trained on nor recognised) and the report's record.

    Only groups with labelled features are dealt, so every fold holds some and every fold's complement too."""
    groups, by = fold_groups(train.table)
    names = groups[train.labelled]
    distinct = len(set(names.tolist()))
    if rc.folds > distinct:
        raise UserError(
            f"--folds {rc.folds}: the train split has only {distinct} {by}s with features to deal into folds"
        )
    assignment = assign_folds(names, rc.folds, rc.fit.seed)
    fold = np.full(len(groups), -1, dtype=np.int64)
    fold[train.labelled] = [assignment[g] for g in names]
    return fold, {"k": rc.folds, "by": by, "seed": rc.fit.seed, "assignment": assignment}


def _cross_fit(
    rc: RecogniseConfig, train: SplitData, spec: RecogniserSpec, fold: np.ndarray, record: dict
) -> tuple[tuple[np.ndarray, ...], dict]:
    """Out-of-fold probabilities of the train split (`_plan_folds`' folds), and the folds' record."""
    _say(rc, f"cross-fitting the train split: {rc.folds} recognisers, each without one fold of the {record['by']}s")
    x, verb, noun = train.features.x, train.table["verb"].to_numpy(), train.table["noun"].to_numpy()
    return cross_fit(x, verb, noun, fold, spec, rc.fit), record


def _entries(
    data: dict[str, SplitData], probs: dict[str, tuple[np.ndarray, np.ndarray]], splits: tuple[str, ...], k: int
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Segment key -> entry for every segment with features of the splits asked for; and per split, the counts."""
    entries, counts = {}, {}
    for split in dict.fromkeys(splits):
        d = data[split]
        pv, pn = probs[split]
        rows = np.flatnonzero(d.features.ok)
        tv, tn = ranked(pv[rows], k), ranked(pn[rows], k)
        keys = (d.table["clip_uid"].astype(str) + "_" + d.table["action_idx"].astype(str)).to_numpy()[rows]
        for j, (key, r) in enumerate(zip(keys, rows, strict=True)):
            verbs = [(int(i), float(pv[r, i])) for i in tv[j]]
            nouns = [(int(i), float(pn[r, i])) for i in tn[j]]
            entries[key] = recognition_entry(verbs, nouns)
        counts[split] = {"segments": len(d.table), "written": len(rows), "without_features": len(d.table) - len(rows)}
    return entries, counts


def _write(run_dir: Path, out: Path, model: torch.nn.Module, report: dict, entries: dict[str, dict]) -> None:
    """The recognitions, then the recogniser and the report that names the recognitions' sha256 (each atomic)."""
    write_json_atomic(out, entries)
    buffer = io.BytesIO()
    torch.save({"format": "ego4d-lta-recogniser", "spec": report["spec"], "state_dict": model.state_dict()}, buffer)
    write_bytes_atomic(run_dir / MODEL_FILE, buffer.getvalue())
    report["recognitions"] = {"path": str(out.resolve()), "sha256": file_digest(out), "segments": len(entries)}
    write_json_atomic(run_dir / REPORT_FILE, report, option=orjson.OPT_INDENT_2)


def _say(rc: RecogniseConfig, line: str) -> None:
    if rc.progress:
        print(line, file=sys.stderr, flush=True)
