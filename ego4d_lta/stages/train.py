"""`ego4d-lta train`: plain PyTorch + DDP training of a forecaster variant, validated every epoch.

Ranks come from the environment (torchrun, srun, submitit; `distributed.py`). Every process sees the same
global batches (`EpochBatches`), so the learning rate follows the global batch and W processes reproduce one
process with the same global batch. `last.pt` is written after every epoch and when SIGTERM / SIGUSR2 arrives
(Slurm's warning before a time limit or preemption); `--resume` continues from it exactly: data order, dropout
RNG, optimizer and schedule. `best.pt` is the epoch with the lowest val ED@20 of `train.select_by` (action).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import orjson
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ego4d_lta import __version__
from ego4d_lta.base.denormals import flush_denormals
from ego4d_lta.base.difference import first_difference
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import write_bytes_atomic, write_json_atomic
from ego4d_lta.base.progress import progress_bar
from ego4d_lta.challenge.baselines import most_frequent_action
from ego4d_lta.challenge.metrics import Scores
from ego4d_lta.config import Config
from ego4d_lta.data.label_windows import action_pairs
from ego4d_lta.data.window_datasets import EpochBatches
from ego4d_lta.models.forecaster import ForecastingModel, build_forecaster, variant_parts
from ego4d_lta.runtime.checkpoint import RunCheckpoint, TrainState, restore_optimizer, restore_rng
from ego4d_lta.runtime.distributed import WorldInfo, all_gather_objects, device_for, setup, world_info_from_env
from ego4d_lta.runtime.inference import autocast, predict_windows, recognition_scores, score_predictions, to_device
from ego4d_lta.runtime.inputs import RunInputs, SplitInputs, feature_dims
from ego4d_lta.runtime.run_folder import check_run_free, commit_file, hold_run, remove_leftovers
from ego4d_lta.runtime.run_log import DEFAULT_LOGGERS, RunLog, check_loggers, epoch_line
from ego4d_lta.runtime.training import (
    StopFlag,
    TrainPlan,
    TrainResult,
    make_optimizer,
    restart_schedule,
    training_loss,
    warmup_cosine,
)

RESUMABLE_CHANGES = ("train.stop_after", "train.epochs", "data.workers", "data.data_dir", "data.features_dir")
"""Config keys that may differ between a run and its resumption: paths move, and `train.epochs` extends (or
shortens) a run; its warm-up + cosine schedule is then recomputed for the new total from the resumed step on."""


class Trainer:
    """One training run on this process; `run()` does the epochs."""

    def __init__(
        self, cfg: Config, run_dir: Path, resume: bool, device: str, progress: bool, log=DEFAULT_LOGGERS, dry_run=False
    ) -> None:
        variant_parts(cfg.model.variant)  # an unknown variant fails before any data is read
        self.dry_run = dry_run  # read and build everything, join no process group, write nothing
        self.loggers = check_loggers(log)  # on every process: all fail together
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.info: WorldInfo = world_info_from_env()
        self.device = device_for(self.info, device)
        self.progress = progress and self.info.is_main
        if not dry_run:
            setup(self.info, self.device)
        print(f"[{self.info.describe()}] ego4d-lta {__version__} train {cfg.name} on {self.device}", flush=True)
        world = self.info.world_size
        if cfg.train.batch_size % world:
            raise UserError(f"train.batch_size={cfg.train.batch_size} must be divisible by the {world} processes")
        self.last_path = self.run_dir / "last.pt"
        self.resume_from = self._resume_checkpoint(resume)
        self.inputs = RunInputs(cfg, self.resume_from.features if self.resume_from else None)
        self.train_in = self.inputs.open("train", training=True)
        self.val_in = self.inputs.open("val", training=False)
        self.usable = self._usable_windows()
        self.fallback = most_frequent_action(self.train_in.table)
        self._build()
        if dry_run:
            return
        if self.info.is_main:  # what `ego4d-lta report` reads without loading a checkpoint
            remove_leftovers(self.run_dir)
            config = cfg.to_dict()
            commit_file(self.run_dir / "config.json", lambda p: write_json_atomic(p, config, orjson.OPT_INDENT_2))
            if self.resume_from is not None:
                self._reconcile(self.resume_from)
        self.log = RunLog(self.run_dir, cfg.to_dict(), self.loggers, self.info.is_main, self.state.step)

    # -- set-up -------------------------------------------------------------------------------------------------

    def _resume_checkpoint(self, resume: bool) -> RunCheckpoint | None:
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise UserError(f"--run {self.run_dir}: is a file, expected a run folder")
        if not self.last_path.is_file():
            other = [n for n in ("best.pt", "metrics.jsonl") if (self.run_dir / n).exists()]
            if other:  # never train into (and replace) another run's files
                raise UserError(f"{self.run_dir} holds {other[0]} but no last.pt: not resumable; use another --run")
            return None
        if not resume:
            raise UserError(
                f"{self.run_dir} already holds a run (last.pt); pass --resume to continue it, or another --run"
            )
        ckpt = RunCheckpoint.load(self.last_path)
        ckpt.check_resumable(self.last_path)
        diff = first_difference(ckpt.config, self.cfg.to_dict(), ignore=RESUMABLE_CHANGES)
        if diff:
            key, old, new = diff
            raise UserError(f"{self.last_path}: --resume with a different config ({key}: {old!r} -> {new!r})")
        return ckpt

    def _usable_windows(self) -> np.ndarray:
        tax, saved = self.train_in.taxonomy, self.resume_from
        if saved is not None and (saved.num_verbs, saved.num_nouns) != (tax.num_verbs, tax.num_nouns):
            raise UserError(
                f"{self.last_path}: --resume with another taxonomy ({tax.num_verbs} verbs / {tax.num_nouns} nouns; "
                f"the run has {saved.num_verbs} / {saved.num_nouns})"
            )
        usable = np.flatnonzero(self.train_in.available)
        dropped = len(self.train_in.windows) - len(usable)
        if dropped and self.info.is_main:
            print(f"warning: {dropped} training windows have a segment without features; left out", file=sys.stderr)
        if len(usable) < self.cfg.train.batch_size:
            raise UserError(
                f"train split: {len(usable)} usable windows, fewer than one batch (train.batch_size="
                f"{self.cfg.train.batch_size}): pass --set train.batch_size=N with N <= {len(usable)}"
            )
        return usable

    def _build(self) -> None:
        cfg, info = self.cfg, self.info
        taxonomy = self.train_in.taxonomy
        torch.manual_seed(cfg.train.seed)  # the same initial weights on every process
        record, bank = self.inputs.record, self.inputs.bank
        forecaster = build_forecaster(cfg.model, feature_dims(record), taxonomy.num_verbs, taxonomy.num_nouns, bank)
        if self.inputs.encoders is None:  # standardise the cached features (video runs keep the identity)
            forecaster.fusion.stats.set(self.train_in.dataset.feature_stats(self.usable))
        forecaster.decoder.set_pairs(torch.from_numpy(action_pairs(self.train_in.table)))
        self.model = ForecastingModel(forecaster, self.inputs.encoders).to(self.device)
        self.recognising = forecaster.recognition is not None
        self.lr = cfg.optim.lr * cfg.train.batch_size / cfg.optim.base_batch
        self.optimizer = make_optimizer(self.model, cfg, self.lr)
        self.batches = EpochBatches(self.usable, cfg.train.batch_size, info.rank, info.world_size, True, cfg.train.seed)
        self.total_steps = len(self.batches) * cfg.train.epochs
        self.schedule = warmup_cosine(min(cfg.optim.warmup_steps, self.total_steps), self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.state = TrainState()
        torch.manual_seed(cfg.train.seed * 1000 + info.rank)  # dropout differs between processes
        if self.resume_from is not None:
            self._restore(self.resume_from)
        self.ddp = (
            DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if info.world_size > 1 and not self.dry_run
            else self.model
        )

    def _restore(self, ckpt: RunCheckpoint) -> None:
        self.model.forecaster.load_state_dict(ckpt.model)
        if self.inputs.encoders is not None and ckpt.encoders:
            self.inputs.encoders.load_state_dict(ckpt.encoders, strict=False)
        restore_optimizer(self.optimizer, self.scheduler, ckpt, self.last_path)
        self.state = ckpt.state
        if (old := ckpt.config["train"]["epochs"]) != self.cfg.train.epochs:  # extended: see RESUMABLE_CHANGES
            was, now = restart_schedule(self.optimizer, self.scheduler, self.schedule)
            if self.info.is_main:
                print(
                    f"note: train.epochs {old} -> {self.cfg.train.epochs}: the cosine now ends at step "
                    f"{self.total_steps}; lr {was:.3e} -> {now:.3e} at step {self.state.step}",
                    flush=True,
                )
        if not restore_rng(ckpt, self.info.rank, self.info.world_size, self.device) and self.info.is_main:
            print(f"note: resuming on {self.info.world_size} processes, saved with {len(ckpt.rng)}: new dropout RNG")
        if self.info.is_main:
            print(f"resumed {self.last_path} at epoch {self.state.epoch} batch {self.state.batch}", flush=True)

    # -- checkpoints --------------------------------------------------------------------------------------------

    def _checkpoint(self, full: bool, rng: list | None = None) -> RunCheckpoint:
        taxonomy = self.train_in.taxonomy
        encoders = self.inputs.encoders
        bank = self.inputs.bank
        return RunCheckpoint(
            config=self.cfg.to_dict(),
            features=self.inputs.record,
            num_verbs=taxonomy.num_verbs,
            num_nouns=taxonomy.num_nouns,
            fallback=self.fallback,
            model=self.model.forecaster.state_dict(),
            state=TrainState(**asdict(self.state)),
            prompt_bank={g: torch.from_numpy(np.asarray(v, np.float32)) for g, v in bank.items()} if bank else None,
            encoders=encoders.trainable_state() if encoders is not None else {},
            optimizer=self.optimizer.state_dict() if full else None,
            scheduler=self.scheduler.state_dict() if full else None,
            rng=rng,
        )

    def _save_last(self) -> None:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        states = all_gather_objects(rng)
        if self.info.is_main:
            commit_file(self.last_path, self._checkpoint(full=True, rng=states).save)

    def _reconcile(self, ckpt: RunCheckpoint) -> None:
        """Bring best.pt and metrics.jsonl in line with last.pt, the epoch's commit point: a kill after last.pt and
        before them (or during them) left them an epoch behind; both are derived from what last.pt holds."""
        state, best = ckpt.state, ckpt.state.best
        best_path = self.run_dir / "best.pt"
        if best and best["epoch"] == state.epoch and state.batch == 0:  # last.pt holds the best epoch's weights
            saved = RunCheckpoint.load(best_path).state.epoch if best_path.is_file() else None
            if saved != best["epoch"]:
                view = replace(ckpt, state=TrainState(**asdict(state)), optimizer=None, scheduler=None, rng=None)
                commit_file(best_path, view.save)
                print(f"reconciled {best_path} with {self.last_path} (epoch {best['epoch']})", flush=True)
        self._write_metrics(state.history)

    def _write_metrics(self, history: list[dict]) -> None:
        """metrics.jsonl = the state's history, one line per epoch, rewritten whole and atomically (never appended:
        an append cut by a kill, or missed by one, could not be told from a finished epoch)."""
        path = self.run_dir / "metrics.jsonl"
        data = b"".join(orjson.dumps(entry) + b"\n" for entry in history)
        if not (path.is_file() and path.read_bytes() == data):
            commit_file(path, lambda p: write_bytes_atomic(p, data))

    # -- the loop -----------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        cfg = self.cfg
        stop = StopFlag().install()
        loader = DataLoader(
            self.train_in.dataset,
            sampler=self.batches,
            batch_size=None,
            num_workers=cfg.data.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.train.seed),  # leaves the global (dropout) RNG alone
        )
        done, total = self.state.step * cfg.train.batch_size, self.total_steps * cfg.train.batch_size
        bar = progress_bar(total, f"train {cfg.name}", "win", disable=not self.progress, initial=done, unit_scale=True)
        steps_now = 0
        try:
            for epoch in range(self.state.epoch, cfg.train.epochs):
                self.batches.epoch, self.batches.start = epoch, self.state.batch
                self.train_in.dataset.set_epoch(epoch)
                self.model.train()
                if self.state.batch == 0:
                    self.state.epoch_loss, self.state.epoch_seconds = [0.0, 0], 0.0
                started = time.perf_counter()
                for batch in loader:
                    loss = self._step(batch)
                    self.state.epoch_loss[0] += loss
                    self.state.epoch_loss[1] += 1
                    self.state.batch += 1
                    self.state.step += 1
                    steps_now += 1
                    bar.update(cfg.train.batch_size)
                    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                    self.log.step(self.state.step, loss, self.scheduler.get_last_lr()[0])
                    signum = stop.requested()
                    if signum or (cfg.train.stop_after and steps_now >= cfg.train.stop_after):
                        self.state.epoch_seconds += time.perf_counter() - started
                        self._save_last()
                        return self._result(signal.Signals(signum).name if signum else "stop_after")
                self.state.epoch_seconds += time.perf_counter() - started
                self._end_epoch(epoch, bar)
            if steps_now:  # finished now (not a resume of a finished run)
                self.log.final(self.state.history, self.state.best)
        finally:
            stop.restore()
            bar.close()
            self.log.close()
        return self._result(None)

    def _step(self, batch: dict[str, torch.Tensor]) -> float:
        batch = to_device(batch, self.device)
        with autocast(self.device, self.cfg.train.precision):
            outputs = self.ddp(batch, recognise=True) if self.recognising else self.ddp(batch)
        loss = training_loss(outputs, batch, self.cfg.train.loss, self.cfg.model.recognition_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    def _end_epoch(self, epoch: int, bar) -> None:
        cfg = self.cfg
        loss = torch.tensor(self.state.epoch_loss, dtype=torch.float64)
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(loss)
        seconds = self.state.epoch_seconds
        full = self.validate()
        scores = full.ed20 if full else None
        entry = {
            "epoch": epoch + 1,
            "step": self.state.step,
            "loss": float(loss[0] / max(loss[1], 1)),
            "lr": self.scheduler.get_last_lr()[0],
            "windows_per_s": self.state.epoch_loss[1] * cfg.train.batch_size / seconds if seconds else 0.0,
            "seconds": seconds,
            "val": scores,
            "val_aued": full.aued if full else None,
            "val_ed_at_z": full.ed_at_z if full else None,
        }
        if self.recognising and full:  # only runs with recognition heads: the others' metrics stay as they were
            entry["val_recognition"] = self.validate_recognition()
        self.state.epoch, self.state.batch = epoch + 1, 0
        self.state.history.append(entry)
        key = cfg.train.select_by
        improved = scores is not None and (self.state.best is None or scores[key] < self.state.best[key])
        if improved:
            self.state.best = {**scores, "epoch": epoch + 1}
        # One ordered commit: last.pt first (it holds the history and the best), then what derives from it; resume
        # reconciles best.pt and metrics.jsonl with last.pt (`_reconcile`), so a kill between them loses nothing.
        self._save_last()
        if self.info.is_main:
            if improved:
                commit_file(self.run_dir / "best.pt", self._checkpoint(full=False).save)
            self._write_metrics(self.state.history)
            self.log.epoch(entry)
            bar.write(epoch_line(entry, cfg.train.epochs, improved), file=sys.stderr)

    def validate(self) -> Scores | None:
        """Val ED@z and AUED (verb, noun, action) on the challenge's windows, fixed sampling seed."""
        val: SplitInputs = self.val_in
        if len(val.windows) == 0 or val.labels is None:
            return None
        preds = predict_windows(
            self.model,
            val.dataset,
            self.cfg.generate,
            self.fallback,
            self.device,
            max(1, self.cfg.train.eval_batch_size // self.info.world_size),
            self.info.rank,
            self.info.world_size,
            self.cfg.train.precision,
        )
        return score_predictions(preds, val.labels, val.taxonomy.num_nouns)

    def validate_recognition(self) -> dict[str, float]:
        """The recognition heads on val: loss (as trained) and top-1 verb / noun accuracy over the observed segments."""
        batch = max(1, self.cfg.train.eval_batch_size // self.info.world_size)
        args = (self.device, batch, self.info.rank, self.info.world_size, self.cfg.train.precision)
        return recognition_scores(self.model, self.val_in.dataset, *args)

    def plan(self) -> TrainPlan:
        """What `run()` would do (`train --dry-run`)."""
        params = list(self.model.parameters())
        sizes = (len(self.train_in.windows), len(self.usable), len(self.val_in.windows))
        counts = (sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))
        where = (len(self.batches), self.state.epoch, self.state.step, self.total_steps, self.lr)
        return TrainPlan(self.info.world_size, *sizes, *counts, *where)

    def _result(self, stopped: str | None) -> TrainResult:
        state = self.state
        return TrainResult(self.run_dir, state.epoch, state.step, stopped, list(state.history), state.best)


@flush_denormals()
def train(
    cfg: Config,
    run_dir: Path,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    log: Sequence[str] = DEFAULT_LOGGERS,
) -> TrainResult:
    """Train (or resume) the run in `run_dir` on this process; the other processes of the job do the same.
    `log`: live views on rank 0 (`runtime/run_log.py`): tensorboard (default), wandb; () for none."""
    info = world_info_from_env()
    if info.world_size > 1:  # the job's processes meet first, so that all of them learn rank 0's lock outcome
        setup(info, device_for(info, device))
    with hold_run(run_dir, info.is_main):  # one writer per run folder
        return Trainer(cfg, run_dir, resume, device, progress, log).run()


def plan(cfg: Config, run_dir: Path, resume: bool = False) -> TrainPlan:
    """All `train` checks and builds before its first step, on the CPU, with no process group, writing nothing."""
    check_run_free(run_dir)
    return Trainer(cfg, run_dir, resume, "cpu", False, log=(), dry_run=True).plan()
