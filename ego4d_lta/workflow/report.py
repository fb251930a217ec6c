"""`ego4d-lta report`: one table of training runs and their curves, from what each run folder already holds.

A run folder has `metrics.jsonl` (one line per epoch: loss, learning rate, val ED@20 / AUED / ED@z, time) and
`config.json` (the resolved config; older runs: the one inside best.pt / last.pt). Nothing is recomputed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import orjson

from ego4d_lta.base.durable import write_bytes_atomic
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import printable, printable_path
from ego4d_lta.base.output_guard import check_output
from ego4d_lta.challenge.metrics import HEADS
from ego4d_lta.workflow.plots import plot_ed_at_z, pyplot, save


@dataclass
class RunSummary:
    """One row of the table; `history` is the run's metrics.jsonl."""

    name: str
    path: Path
    variant: str
    epochs: int
    history: list[dict]

    @property
    def best(self) -> dict | None:
        """The epoch with the best val action ED@20 (the one best.pt holds)."""
        scored = [h for h in self.history if h.get("val")]
        return min(scored, key=lambda h: h["val"]["action"]) if scored else None

    @property
    def train_seconds(self) -> float | None:
        times = [h.get("seconds") for h in self.history]
        return None if not times or None in times else float(sum(times))


def load_run(path: Path) -> RunSummary:
    """Read a run folder; a folder that is not a finished-or-running training run is a one-line error."""
    metrics = path / "metrics.jsonl"
    if not metrics.is_file():
        raise UserError(f"{path}: no metrics.jsonl (not a run folder of `ego4d-lta train`?)")
    history = []
    for n, line in enumerate(metrics.read_bytes().splitlines(), 1):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise UserError(f"{metrics}: line {n} is not JSON ({e})") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("epoch"), int) or "loss" not in entry:
            raise UserError(f"{metrics}: line {n} is not an epoch record (needs 'epoch' and 'loss')")
        history.append(entry)
    if not history:
        raise UserError(f"{metrics}: empty (the run has not finished an epoch yet)")
    config = _config(path)
    try:
        variant, epochs = config["model"]["variant"], config["train"]["epochs"]
    except (KeyError, TypeError):
        variant = epochs = None
    if not isinstance(variant, str) or type(epochs) is not int:
        raise UserError(f"{path}/config.json: no model.variant (string) and train.epochs (integer)")
    return RunSummary(path.name, path, variant, epochs, history)


def _config(path: Path) -> dict:
    saved = path / "config.json"
    if saved.is_file():
        try:
            return orjson.loads(saved.read_bytes())
        except orjson.JSONDecodeError as e:
            raise UserError(f"{saved}: not JSON ({e})") from None
    for name in ("best.pt", "last.pt"):  # runs from before config.json: the one loader, tensors only
        if (path / name).is_file():
            from ego4d_lta.runtime.checkpoint import RunCheckpoint

            return RunCheckpoint.load(path / name).config
    raise UserError(f"{path}: no config.json, best.pt or last.pt")


def table(runs: list[RunSummary]) -> str:
    """The runs as a Markdown table (readable as text too)."""
    head = "| run | variant | epochs | best epoch | verb ED@20 | noun ED@20 | action ED@20 | action AUED | train min |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for run in runs:
        best = run.best
        cells = [
            printable_path(run.name).replace("|", "\\|"),
            printable(run.variant, 40),
            f"{len(run.history)}/{run.epochs}",
        ]
        if best:
            aued = (best.get("val_aued") or {}).get("action")
            cells += [str(best["epoch"]), *(f"{best['val'][h]:.4f}" for h in HEADS)]
            cells.append(f"{aued:.4f}" if aued is not None else "-")
        else:
            cells += ["-"] * 5
        cells.append(f"{run.train_seconds / 60:.1f}" if run.train_seconds is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def loss_scale(runs: list[RunSummary]) -> str:
    """`log` when the runs' losses are more than 10x apart (a `labels` run's summed loss beside the others' mean),
    so that each run's curve keeps its shape; else `linear`."""
    typical = [statistics.median(h["loss"] for h in run.history) for run in runs if run.history]
    typical = [loss for loss in typical if loss > 0]
    return "log" if typical and max(typical) > 10 * min(typical) else "linear"


def plot_training(runs: list[RunSummary], out: Path) -> Path:
    """Loss and val ED@20 (verb, noun, action) per epoch, the runs side by side in each panel."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), dpi=110)
    for run in runs:
        epochs = [h["epoch"] for h in run.history]
        axes[0].plot(epochs, [h["loss"] for h in run.history], marker="o", markersize=3, label=run.name)
        scored = [h for h in run.history if h.get("val")]
        for ax, head in zip(axes[1:], HEADS, strict=True):
            ax.plot([h["epoch"] for h in scored], [h["val"][head] for h in scored], marker="o", markersize=3)
    scale = loss_scale(runs)
    axes[0].set_yscale(scale)
    axes[0].set_title("training loss" + (" (log scale)" if scale == "log" else ""))
    for ax, head in zip(axes[1:], HEADS, strict=True):
        ax.set_title(f"val {head} ED@20 (lower is better)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    fig.legend(loc="upper center", ncol=min(len(runs), 4), bbox_to_anchor=(0.5, 0.0))
    return save(fig, out)


def best_curves(runs: list[RunSummary]) -> dict[str, dict[str, list[float]]]:
    """ED@z at each run's best epoch (runs from before ED@z was recorded, or without val windows, are left out)."""
    curves = {}
    for run in runs:
        best = run.best
        if best and best.get("val_ed_at_z"):
            curves[run.name] = best["val_ed_at_z"]
    return curves


def report(paths: list[Path], out_dir: Path) -> tuple[str, list[Path]]:
    """The table (also written as report.md) and the two PNGs, in `out_dir`."""
    runs = [load_run(Path(p)) for p in paths]
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"-o {out_dir}: is a file, expected a folder for the report")
    for name, kind in {"report.md": "markdown", "training.png": "png", "ed_at_z.png": "png"}.items():
        check_output(out_dir / name, kind, flag="-o")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # two runs/A from different places: tell them apart
        for run in runs:
            run.name = str(run.path)
    text = table(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = write_bytes_atomic(out_dir / "report.md", (text + "\n").encode())
    training = plot_training(runs, out_dir / "training.png")
    return text, [md, training, plot_ed_at_z(best_curves(runs), out_dir / "ed_at_z.png")]
