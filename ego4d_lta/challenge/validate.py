"""`ego4d-lta validate`: check a submission against a split's key set and, on val, score it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from ego4d_lta.base.durable import publish, staged_file
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import printable_path
from ego4d_lta.challenge.annotations import Taxonomy, load_annotations
from ego4d_lta.challenge.metrics import HEADS, Scores, score
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.submission import check_submission, read_submission
from ego4d_lta.challenge.windows import Windows, make_windows


@dataclass
class ValidationReport:
    """The outcome of `validate_file`; `to_json` is the `--json` output."""

    path: Path
    split: str
    windows: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    scores: Scores | None = None

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_json(self) -> dict:
        out = {
            "valid": self.valid,
            "split": self.split,
            "windows": self.windows,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }
        if self.scores is not None:
            out["scores"] = self.scores.to_json()
        return out


def validate_file(path: Path | str, annotations_dir: Path | str, split: str, k: int = K) -> ValidationReport:
    """Check `path` against `split`'s windows; on a labelled split, also score it.

    Raises `UserError` for unreadable inputs (the annotations, a file that is not JSON); rule
    violations of the submission itself are collected in the report. `k` other than K checks a pool of samples
    (`predict --pool`) by the same rules; a pool is not scored (the challenge scores K = 5).
    """
    path = Path(path)
    table, taxonomy = load_annotations(annotations_dir, split)
    windows = make_windows(table, include_extra=True)
    required, extra = windows.key_sets()
    obj, raw = read_submission(path)
    check = check_submission(obj, required, extra, taxonomy, raw=raw, k=k)
    report = ValidationReport(path, split, len(required), list(check.errors), list(check.warnings))
    if check.valid and split != "test" and k == K:
        report.scores = score_against(windows, table, check.keys, check.verb, check.noun, taxonomy)
    return report


def write_checked(
    out: Path | str, submission: dict, annotations_dir: Path | str, split: str, who: str, k: int = K
) -> ValidationReport:
    """Write a submission we made beside `out`, check it as `validate` does, and only then rename it into place.

    Its inputs were checked, so a failed check here is our bug (`who` names the command): nothing is written.
    """
    tmp, report = stage_checked(out, submission, annotations_dir, split, who, k)
    publish([(tmp, Path(out))])
    return report


def stage_checked(
    out: Path | str, submission: dict, annotations_dir: Path | str, split: str, who: str, k: int = K
) -> tuple[Path, ValidationReport]:
    """The checked submission in a temporary file beside `out` (`base/durable.py`'s `staged_file`, fsynced), not
    yet renamed: a command writing several files renames them all (`publish`) only once every one is written.
    Removed again on failure."""
    out = Path(out)
    with staged_file(out, suffix=".json") as tmp:
        try:
            tmp.write_bytes(orjson.dumps(submission, option=orjson.OPT_SERIALIZE_NUMPY))
        except OSError as e:
            raise UserError(f"{printable_path(out)}: cannot write ({e.strerror or e})") from None
        report = validate_file(tmp, annotations_dir, split, k)
        if not report.valid:
            raise RuntimeError(f"{who} made an invalid {split} submission: {report.errors[0]}")
    report.path = out
    return tmp, report


def score_against(
    windows: Windows, table, keys: list[str], verb: np.ndarray, noun: np.ndarray, taxonomy: Taxonomy
) -> Scores:
    """Score (n, K, Z) predictions for `keys` on the challenge windows (extra-window keys ignored)."""
    row_of = {key: i for i, key in enumerate(keys)}
    challenge = windows.challenge()
    rows = np.array([row_of[key] for key in challenge.keys], dtype=np.int64)
    verb_truth = table["verb"].to_numpy()[challenge.future]
    noun_truth = table["noun"].to_numpy()[challenge.future]
    return score(verb[rows], noun[rows], verb_truth, noun_truth, taxonomy.num_nouns)


def format_report(report: ValidationReport) -> str:
    """The human-readable summary printed on stdout for a valid file."""
    lines = [f"{printable_path(report.path)}: valid {report.split} submission, {report.windows} windows (K={K}, Z={Z})"]
    if report.scores is not None:
        ed20 = report.scores.ed20
        lines.append(f"{'':8}{'ED@20':>8}{'AUED':>8}")
        for head in HEADS:
            lines.append(f"{head:8}{ed20[head]:8.4f}{report.scores.aued[head]:8.4f}")
    return "\n".join(lines)
