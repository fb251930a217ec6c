"""`ego4d-lta report`: the table from each run's metrics.jsonl + config.json, the PNGs, one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest

from ego4d_lta.challenge.rules import Z
from ego4d_lta.cli import main
from ego4d_lta.workflow.report import load_run, report


def _run(path: Path, variant: str, actions: list[float], seconds: float | None = 30.0) -> Path:
    """A run folder as training leaves it: config.json and one metrics line per epoch."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model": {"variant": variant}, "train": {"epochs": 5}}))
    lines = []
    for epoch, action in enumerate(actions, 1):
        val = {"verb": action - 0.2, "noun": action - 0.1, "action": action}
        curves = {h: [v * z / Z for z in range(1, Z + 1)] for h, v in val.items()}
        entry = {"epoch": epoch, "step": 10 * epoch, "loss": 5.0 / epoch, "lr": 1e-3, "val": val}
        entry |= {"val_aued": {h: v / 2 for h, v in val.items()}, "val_ed_at_z": curves, "seconds": seconds}
        lines.append(json.dumps(entry))
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return path


def test_table_rows_are_each_runs_best_epoch_and_plots_are_written(tmp_path: Path, capsys) -> None:
    a = _run(tmp_path / "runs" / "clip", "slowfast_clip", [0.95, 0.90, 0.92])
    b = _run(tmp_path / "runs" / "video", "slowfast", [0.97, 0.96, 0.93, 0.94, 0.95], seconds=None)
    out = tmp_path / "reports"
    assert main(["report", str(a), str(b), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| clip | slowfast_clip | 3/5 | 2 | 0.7000 | 0.8000 | 0.9000 | 0.4500 | 1.5 |" in printed
    assert "| video | slowfast | 5/5 | 3 | 0.7300 | 0.8300 | 0.9300 | 0.4650 | - |" in printed
    assert (out / "report.md").read_text().strip() == printed.split("wrote")[0].strip()
    for name, min_width in (("training.png", 1200), ("ed_at_z.png", 1000)):
        image = matplotlib.image.imread(out / name)
        assert image.shape[1] >= min_width and image.std() > 0.01, name  # a real, non-blank picture
    assert not list(out.glob(".*"))


def test_runs_with_one_name_are_told_apart(tmp_path: Path) -> None:
    a, b = _run(tmp_path / "x" / "tiny", "slowfast", [0.9]), _run(tmp_path / "y" / "tiny", "slowfast", [0.8])
    text, _ = report([a, b], tmp_path / "out")
    assert f"| {a} |" in text and f"| {b} |" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no metrics.jsonl (not a run folder of `ego4d-lta train`?)"),
        ("", "metrics.jsonl: empty (the run has not finished an epoch yet)"),
        ('{"epoch": 1, "loss": 2.0}\n{oops\n', "metrics.jsonl: line 2 is not JSON"),
        ('{"epoch": "1", "loss": 2.0}\n', "metrics.jsonl: line 1 is not an epoch record"),
    ],
)
def test_bad_run_folders_are_one_line_errors(tmp_path: Path, content: str | None, message: str, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    if content is not None:
        (run / "metrics.jsonl").write_text(content)
    assert main(["report", str(run), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(run) in err and len(err.strip().splitlines()) == 1, err


def test_a_run_without_config_json_reads_the_checkpoints_config(
    demo_report: dict, demo_dir: Path, tmp_path: Path
) -> None:
    run = _run(tmp_path / "old", "clip", [0.9])
    (run / "config.json").unlink()
    (run / "best.pt").write_bytes((demo_dir / "runs" / "tiny" / "best.pt").read_bytes())
    summary = load_run(run)
    assert (summary.variant, summary.epochs, summary.best["epoch"]) == ("slowfast_clip", 16, 1)  # tiny.toml's


def test_a_crafted_checkpoint_runs_no_code(tmp_path: Path, capsys) -> None:
    """report reads an old run's config from best.pt through the checkpoint loader (tensors only): a pickle that
    would run code is refused in one line and the code never runs."""
    import torch

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    run = _run(tmp_path / "old", "clip", [0.9])
    (run / "config.json").unlink()
    torch.save({"config": Payload()}, run / "best.pt")
    assert main(["report", str(run), "-o", str(tmp_path / "out")]) == 2
    assert "not a readable ego4d-lta checkpoint" in capsys.readouterr().err
    assert not marker.exists()


def test_a_labels_runs_summed_loss_goes_on_a_log_axis_beside_the_others(tmp_path: Path) -> None:
    """Issue 23.7: a `labels` run's summed loss (~112) on one linear axis with the others' (~3-5) flattened them."""
    from ego4d_lta.workflow.report import loss_scale

    a = _run(tmp_path / "a", "slowfast_clip", [0.95, 0.90, 0.92])
    b = _run(tmp_path / "b", "slowfast", [0.97, 0.96])
    assert loss_scale([load_run(a), load_run(b)]) == "linear"
    labels = _run(tmp_path / "labels", "labels", [0.99, 0.98])
    lines = [json.loads(line) | {"loss": 112.0 - n} for n, line in enumerate((labels / "metrics.jsonl").open())]
    (labels / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert loss_scale([load_run(a), load_run(labels)]) == "log"
    _, written = report([a, labels], tmp_path / "out")
    assert all(path.is_file() for path in written)
