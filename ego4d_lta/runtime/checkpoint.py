"""Run checkpoints as one typed record: `last.pt` (everything to resume exactly) and `best.pt` (what predict needs).

Both hold the full config, the feature record (which encoders and weights made the inputs), the taxonomy size,
the fallback action and the CLIP prompt bank, so `ego4d-lta predict` rebuilds the model from the file alone.
Files are written atomically and read with `torch.load(weights_only=True)`: tensors and plain containers only,
so a crafted file cannot run code.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ego4d_lta import __version__
from ego4d_lta.base.errors import UserError
from ego4d_lta.data.feature_record import FeatureRecord

FORMAT = "ego4d-lta/checkpoint"
VERSION = 2
"""2: the prompt bank stored explicitly and the full feature record (1: bank only inside the model's buffers)."""


@dataclass
class TrainState:
    """Where a run is: the position in the data, the best epoch so far and the per-epoch history."""

    epoch: int = 0
    """Finished epochs."""
    batch: int = 0
    """Finished batches of the current epoch."""
    step: int = 0
    best: dict[str, Any] | None = None
    """Val ED@20 {verb, noun, action} and the epoch of best.pt."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One metrics.jsonl entry per finished epoch."""
    epoch_loss: list[float] = field(default_factory=lambda: [0.0, 0])
    """Sum of the batch losses of the current epoch, and their count."""
    epoch_seconds: float = 0.0


@dataclass
class RunCheckpoint:
    config: dict[str, Any]
    """The resolved Config (`Config.to_dict()`)."""
    features: FeatureRecord
    num_verbs: int
    num_nouns: int
    fallback: tuple[int, int]
    """The training set's most frequent (verb, noun): the prediction for windows without inputs."""
    model: dict[str, torch.Tensor]
    """The forecaster's state dict."""
    state: TrainState
    prompt_bank: dict[str, torch.Tensor] | None = None
    """Group -> (n, D) CLIP text embeddings, for the variants that use prompts."""
    encoders: dict[str, torch.Tensor] = field(default_factory=dict)
    """The trainable encoder weights of end-to-end runs."""
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    rng: list[dict[str, torch.Tensor]] | None = None
    """Each process's RNG states (last.pt only)."""
    package: str = __version__

    def save(self, path: Path) -> Path:
        """torch.save to a temporary file beside `path`, fsync, then rename: never a half-written checkpoint."""
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "package": self.package,
            "config": self.config,
            "features": self.features.to_json(),
            "taxonomy": {"verbs": self.num_verbs, "nouns": self.num_nouns},
            "fallback": list(self.fallback),
            "model": self.model,
            "prompt_bank": self.prompt_bank,
            "encoders": self.encoders,
            "state": asdict(self.state),
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "rng": self.rng,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: Path) -> RunCheckpoint:
        """A checkpoint written by `save`, on the CPU; one-line errors for anything else."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: checkpoint not found")
        try:
            doc = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated, not a torch file, or objects other than tensors and containers
            reason = f"{type(e).__name__}: {str(e)[:120]}"
            raise UserError(f"{path}: not a readable ego4d-lta checkpoint ({reason})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise UserError(f"{path}: not an ego4d-lta checkpoint (no format {FORMAT!r})")
        version = doc.get("version", 0)
        if version != VERSION:
            newer = "newer" if isinstance(version, int) and version > VERSION else "older"
            raise UserError(f"{path}: checkpoint version {version!r} is {newer} than this ego4d-lta reads ({VERSION})")
        try:
            return cls(
                config=doc["config"],
                features=FeatureRecord.from_json(doc["features"], str(path)),
                num_verbs=int(doc["taxonomy"]["verbs"]),
                num_nouns=int(doc["taxonomy"]["nouns"]),
                fallback=(int(doc["fallback"][0]), int(doc["fallback"][1])),
                model=doc["model"],
                state=TrainState(**doc["state"]),
                prompt_bank=doc.get("prompt_bank"),
                encoders=doc.get("encoders") or {},
                optimizer=doc.get("optimizer"),
                scheduler=doc.get("scheduler"),
                rng=doc.get("rng"),
                package=str(doc.get("package", "")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise UserError(f"{path}: incomplete ego4d-lta checkpoint ({type(e).__name__}: {e})") from None


def resolve(run_dir: Path, which: str) -> Path:
    """`best`, `last` or a path."""
    if which in ("best", "last"):
        path = Path(run_dir) / f"{which}.pt"
        if not path.is_file() and which == "best" and (Path(run_dir) / "last.pt").is_file():
            return Path(run_dir) / "last.pt"  # no epoch finished validation yet
        return path
    return Path(which)
