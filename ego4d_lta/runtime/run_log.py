"""What a training run shows while it runs, on rank 0: the epoch line, TensorBoard event files, optionally W&B.

TensorBoard (the official baseline's users watch it) is on by default: `RUN/tensorboard/`, read with
`tensorboard --logdir runs`. A resumed run writes a new event file into the same folder with `purge_step` at the
resumed step, so the steps done after the last checkpoint (and redone now) are not drawn twice. The run's config is
its `config` text (TEXT tab) from the start, and once training ends its flattened fields with the best epoch's val
ED@20 are one row of the HPARAMS tab (`add_hparams`), so runs compare by setting as in Lightning. W&B is an
optional extra (`pip install 'ego4d-lta[wandb]'`, `--log wandb`); its run id is kept in `RUN/wandb_id.txt`, so a
resumed run continues the same W&B run. `metrics.jsonl` stays the record; these are views of it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ego4d_lta.base.errors import UserError

LOGGERS = ("tensorboard", "wandb", "none")
DEFAULT_LOGGERS = ("tensorboard",)
STEP_EVERY = 10
"""Training loss and learning rate go to the loggers every this many steps (and on the first)."""
TENSORBOARD_DIR = "tensorboard"


def check_loggers(loggers: Sequence[str]) -> tuple[str, ...]:
    """The loggers asked for, checked on every process before any work (a missing package: one line, exit 2)."""
    chosen = tuple(dict.fromkeys(x for x in loggers if x != "none"))
    unknown = [x for x in chosen if x not in LOGGERS]
    if unknown:
        raise UserError(f"--log {unknown[0]}: expected one of {', '.join(LOGGERS)}")
    needs = {
        "tensorboard": ("tensorboard", "pip install tensorboard"),
        "wandb": ("wandb", "pip install 'ego4d-lta[wandb]'"),
    }
    for name in chosen:
        module, how = needs[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"--log {name}: the {module} package is not installed ({how}), or pass --log none")
    return chosen


def epoch_line(entry: dict[str, Any], epochs: int, best: bool) -> str:
    """`epoch 3/20 41s lr 2.1e-04 1.9k win/s: loss 7.1234; val ED@20 verb 0.7 noun 0.8 action 0.9 *best`."""
    rate = entry["windows_per_s"]
    rate_text = f"{rate / 1000:.1f}k" if rate >= 1000 else f"{rate:.0f}"
    scores = entry.get("val")
    val = " ".join(f"{k} {v:.4f}" for k, v in scores.items()) if scores else "no val windows"
    seen = entry.get("val_recognition")  # runs with recognition heads
    recognised = f"; recognised verb {seen['verb']:.3f} noun {seen['noun']:.3f}" if seen else ""
    return (
        f"epoch {entry['epoch']}/{epochs} {entry['seconds']:.0f}s lr {entry['lr']:.2e} {rate_text} win/s: "
        f"loss {entry['loss']:.4f}; val ED@20 {val}{recognised}{' *best' if best else ''}"
    )


class RunLog:
    """The loggers of one run on one process; on ranks other than 0 (`enabled` False) every call does nothing."""

    def __init__(
        self, run_dir: Path, config: dict[str, Any], loggers: Sequence[str], enabled: bool, start_step: int = 0
    ) -> None:
        self.tb = None
        self.wandb = None
        self.hparams: dict[str, Any] = {}
        if not enabled:
            return
        run_dir = Path(run_dir)
        if "tensorboard" in loggers:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=start_step or None)
            self.tb.add_text("config", "```json\n" + json.dumps(config, indent=2, default=str) + "\n```", start_step)
            self.hparams = hparams(config)
        if "wandb" in loggers:
            import wandb

            self.wandb = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "ego4d-lta"),
                name=run_dir.name,
                id=_wandb_id(run_dir),
                resume="allow",
                dir=str(run_dir),
                config=config,
            )

    def step(self, step: int, loss: float, lr: float) -> None:
        if step % STEP_EVERY and step != 1:
            return
        self._scalars({"train/loss": loss, "train/lr": lr}, step)

    def epoch(self, entry: dict[str, Any]) -> None:
        """An epoch's metrics.jsonl entry: mean loss, throughput, val ED@20 and AUED per head (and the recognition
        heads' val loss and top-1 accuracy, where the run has them)."""
        values = {
            "epoch/loss": entry["loss"],
            "epoch/windows_per_s": entry["windows_per_s"],
            "epoch/seconds": entry["seconds"],
            "epoch/epoch": entry["epoch"],
        }
        for head, value in (entry.get("val") or {}).items():
            values[f"val/ed20_{head}"] = value
        for head, value in (entry.get("val_aued") or {}).items():
            values[f"val/aued_{head}"] = value
        for key, value in (entry.get("val_recognition") or {}).items():  # loss, verb and noun top-1
            values[f"val/recognition_{key}"] = value
        self._scalars(values, entry["step"])

    def final(self, history: list[dict[str, Any]], best: dict[str, Any] | None) -> None:
        """ED@z, z = 1..Z, of the best epoch (best.pt) once training is done: one curve per head over z."""
        best_entry = next((e for e in history if best and e["epoch"] == best.get("epoch")), None)
        curves = (best_entry or {}).get("val_ed_at_z") or {}
        for head, values in curves.items():
            for z, value in enumerate(values, start=1):
                self._scalars({f"best/ed_at_z_{head}": value}, z)
        if self.tb is not None and best_entry and best_entry.get("val"):  # TensorBoard's HPARAMS tab: config -> score
            scores = {f"hparam/best_ed20_{h}": v for h, v in best_entry["val"].items()}
            self.tb.add_hparams(self.hparams, scores, run_name=".")
            self.tb.flush()
        if self.wandb is not None and best_entry and best_entry.get("val"):
            self.wandb.summary.update({f"best_ed20_{h}": v for h, v in best_entry["val"].items()})

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None

    def _scalars(self, values: dict[str, float], step: int) -> None:
        if self.tb is not None:
            for tag, value in values.items():
                self.tb.add_scalar(tag, value, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(values, step=step)


def hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The config flattened for TensorBoard's hyper-parameters (`model.layers`: 6): numbers, text and booleans kept,
    lists and None as text."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= hparams(value, f"{name}.")
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def _wandb_id(run_dir: Path) -> str:
    """The run's W&B id, made on its first start and reused on every resume."""
    path = run_dir / "wandb_id.txt"
    if path.is_file():
        return path.read_text().strip()
    run_dir.mkdir(parents=True, exist_ok=True)
    new = secrets.token_hex(4)
    path.write_text(new + "\n")
    return new
