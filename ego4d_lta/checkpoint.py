"""Run checkpoints: `last.pt` (everything to resume exactly) and `best.pt` (what prediction needs), atomic.

Both hold the full config, the feature record (which encoders and weights made the inputs), the taxonomy
size and the fallback action, so `ego4d-lta predict` rebuilds the model from the file alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ego4d_lta.errors import UserError

FORMAT = "ego4d-lta/checkpoint"
VERSION = 1


def save(path: Path, payload: dict) -> Path:
    """torch.save to a temporary file beside `path`, fsync, then rename: never a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def load(path: Path) -> dict:
    """A checkpoint written by `save`, on the CPU; one-line errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated file, not a torch file
        raise UserError(f"{path}: cannot read the checkpoint ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: not an ego4d-lta checkpoint (no format {FORMAT!r})")
    if ckpt.get("version", 0) > VERSION:
        raise UserError(f"{path}: checkpoint version {ckpt['version']} is newer than this ego4d-lta ({VERSION})")
    return ckpt


def resolve(run_dir: Path, which: str) -> Path:
    """`best`, `last` or a path."""
    if which in ("best", "last"):
        path = Path(run_dir) / f"{which}.pt"
        if not path.is_file() and which == "best" and (Path(run_dir) / "last.pt").is_file():
            return Path(run_dir) / "last.pt"  # no epoch finished validation yet
        return path
    return Path(which)
