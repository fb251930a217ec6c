"""The pieces of a training step that are not the loop: loss, optimizer, schedule and the stop signals."""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ego4d_lta.config import Config
from ego4d_lta.data.window_datasets import SEGMENT_LABELS
from ego4d_lta.models.sequence_decoder import SequenceNLL


@dataclass(frozen=True)
class TrainPlan:
    """`train --dry-run`: the job's size and where a resume would start, found without writing anything."""

    world_size: int
    train_windows: int
    usable_windows: int
    """Training windows whose segments all have features (the others are left out)."""
    val_windows: int
    parameters: int
    trainable: int
    steps_per_epoch: int
    start_epoch: int
    start_step: int
    total_steps: int
    lr: float
    """The peak learning rate (optim.lr scaled to the global batch)."""


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    steps: int
    stopped: str | None = None
    """Why training stopped early (a signal name, or `stop_after`), else None."""
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    """Val ED@20 {verb, noun, action} and the epoch of best.pt, if any epoch was validated."""

    def summary(self) -> str:
        """The one line a finished or stopped run ends with (the CLI and the submitit job print it)."""
        if self.stopped:
            return f"{self.run_dir}: stopped ({self.stopped}) at step {self.steps}; last.pt saved, resume with --resume"
        if self.best is not None:
            v = self.best
            return (
                f"{self.run_dir}: {self.epochs_done} epochs; best val ED@20 verb {v['verb']:.4f} noun {v['noun']:.4f} "
                f"action {v['action']:.4f} (epoch {v['epoch']}, best.pt)"
            )
        return f"{self.run_dir}: {self.epochs_done} epochs (last.pt)"

    @property
    def exit_status(self) -> int:
        """0, or 128 + the signal that stopped it, like a shell: what `slurm/train.sh` requeues on (140 = USR2)."""
        if self.stopped in (None, "stop_after"):
            return 0
        return 128 + int(getattr(signal, self.stopped))


class StopFlag:
    """SIGTERM / SIGUSR2 ask for a checkpoint and a clean exit at the next step boundary."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR2)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> StopFlag:
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum

    def requested(self) -> int:
        """The signal any process got (0: none), the same on every process: they must stop at the same step."""
        flag = torch.tensor([self.signum or 0])
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())


def restart_schedule(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR, schedule: Callable[[int], float]
) -> tuple[float, float]:
    """After a resume under a new schedule (more epochs): the next step's learning rate from `schedule` at the
    resumed step, not the saved one (a finished run saved ~0). Returns (saved, new) of the first group."""
    was = optimizer.param_groups[0]["lr"]
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = base * schedule(scheduler.last_epoch)
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
    return was, optimizer.param_groups[0]["lr"]


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """LR multiplier per step: linear warm-up to 1, then a cosine down to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def make_optimizer(model: nn.Module, cfg: Config, lr: float) -> torch.optim.Optimizer:
    """Adam (the report's, L2 decay) or AdamW; no decay on biases, norms and position tables."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            plain = p.ndim > 1 and not name.endswith(("positions", "bias"))
            (decay if plain else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    cls = torch.optim.AdamW if cfg.optim.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=(0.9, 0.999))


def loss_fn(
    verb_logits: torch.Tensor, noun_logits: torch.Tensor, batch: dict[str, torch.Tensor], reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy over all Z positions, verb + noun: `mean` is the mean over positions x 2, `sum` the baseline's
    sum of the 2Z per-position cross-entropies (each a mean over the batch), Z times larger."""
    verb = F.cross_entropy(verb_logits.float().flatten(0, 1), batch["verb"].flatten())
    noun = F.cross_entropy(noun_logits.float().flatten(0, 1), batch["noun"].flatten())
    return (verb + noun) * (verb_logits.shape[1] if reduction == "sum" else 1)


def recognition_loss(
    verb_logits: torch.Tensor, noun_logits: torch.Tensor, batch: dict[str, torch.Tensor], reduction: str = "mean"
) -> torch.Tensor:
    """The recognition heads' (B, n, V) and (B, n, Nn) logits against the last n observed segments' own labels:
    mean cross-entropy over the segments, verb + noun (`reduction="sum"`: summed over them instead)."""
    n = verb_logits.shape[1]
    verb, noun = (batch[key][:, -n:].flatten() for key in SEGMENT_LABELS)
    return F.cross_entropy(verb_logits.float().flatten(0, 1), verb, reduction=reduction) + F.cross_entropy(
        noun_logits.float().flatten(0, 1), noun, reduction=reduction
    )


def training_loss(
    outputs: tuple, batch: dict[str, torch.Tensor], reduction: str = "mean", recognition_weight: float = 0.0
) -> torch.Tensor:
    """What a step minimises: the forecast's `loss_fn` on the model's (verb, noun) logits (a sequence decoder's
    `SequenceNLL.loss` instead), plus, where the model also gave its recognition logits (the last item),
    `recognition_weight` x `recognition_loss`. Without them it is the forecast's loss alone, bit for bit."""
    if isinstance(outputs[0], SequenceNLL):
        loss, rest = outputs[0].loss(reduction), outputs[1:]
    else:
        loss, rest = loss_fn(outputs[0], outputs[1], batch, reduction), outputs[2:]
    if rest:
        loss = loss + recognition_weight * recognition_loss(*rest[0], batch)
    return loss
