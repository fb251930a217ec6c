"""Frozen open_clip encoders: per-frame image embeddings and text embeddings, both L2-normalised.

Any open_clip model name works (`ViT-B-16` by default, as in the report). Weights come from a local file
(what offline cluster users have) or, when online, an open_clip pretrained tag. The package registers its
own model configs (`clip_configs/*.json`, e.g. the tiny one the tests use) with open_clip's factory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import open_clip
import torch
from torch import nn

from ego4d_lta.base.durable import atomic_target
from ego4d_lta.base.errors import UserError
from ego4d_lta.models import TINY_CLIP  # noqa: F401 (re-exported)

open_clip.add_model_config(Path(__file__).with_name("clip_configs"))


class ClipEncoder(nn.Module):
    """An open_clip model, frozen (eval, no grad), with its own image preprocessing settings."""

    def __init__(self, model_name: str, weights: str | Path | None = None, pretrained: str | None = None) -> None:
        super().__init__()
        if model_name not in open_clip.list_models():
            raise UserError(f"CLIP model {model_name!r} is not an open_clip model name (see open_clip.list_models())")
        if weights is not None and not Path(weights).is_file():
            raise UserError(f"{weights}: CLIP weights file not found")
        source = str(weights) if weights is not None else pretrained
        try:
            self.model = open_clip.create_model(model_name, pretrained=source)
        except RuntimeError as e:  # load_state_dict: missing / unexpected keys or shape mismatches
            first = str(e).strip().splitlines()
            detail = next((line.strip() for line in first[1:] if line.strip()), first[0] if first else "")
            raise UserError(f"{source}: not {model_name} weights ({detail[:160]})") from None
        except Exception as e:  # unreadable file, unknown tag, no network
            reason = str(e).split(". ")[0][:100]
            raise UserError(f"{source}: cannot load {model_name} weights ({type(e).__name__}: {reason})") from None
        self.model_name = model_name
        self.tokenizer = open_clip.get_tokenizer(model_name)
        pp = open_clip.get_model_preprocess_cfg(self.model)
        size = pp.get("size", 224)
        self.image_size = int(size if isinstance(size, int) else size[0])
        self.mean = tuple(float(v) for v in pp.get("mean", open_clip.OPENAI_DATASET_MEAN))
        self.std = tuple(float(v) for v in pp.get("std", open_clip.OPENAI_DATASET_STD))
        self.embed_dim = int(self.model.text_projection.shape[1] if hasattr(self.model, "text_projection") else 0)
        self.model.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> ClipEncoder:
        """Always eval: frozen means dropout and any normalisation statistics stay put."""
        return super().train(False)

    @torch.no_grad()
    def encode_frames(self, images: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, S, S) preprocessed frames -> (B, F, D) unit-norm embeddings."""
        b, f = images.shape[:2]
        emb = self.model.encode_image(images.flatten(0, 1), normalize=True)
        return emb.view(b, f, -1)

    @torch.no_grad()
    def encode_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """(len(texts), D) unit-norm text embeddings."""
        device = next(self.model.parameters()).device
        out = [
            self.model.encode_text(self.tokenizer(texts[i : i + batch_size]).to(device), normalize=True).float()
            for i in range(0, len(texts), batch_size)
        ]
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)


def save_weights(encoder: ClipEncoder, path: Path | str) -> None:
    """A plain open_clip state dict, as open_clip's `pretrained=FILE` loads it (atomically written)."""
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        torch.save(encoder.model.state_dict(), f)  # a file object: the bytes do not depend on the temporary name


def random_clip(model_name: str, seed: int = 0) -> ClipEncoder:
    """A randomly initialised CLIP (tests and the demo: no weights can be downloaded there)."""
    torch.manual_seed(seed)
    root = logging.getLogger()
    intended = _DropRecords("No pretrained weights loaded")  # open_clip's warning: random is what was asked for
    root.addFilter(intended)
    try:
        return ClipEncoder(model_name)
    finally:
        root.removeFilter(intended)


class _DropRecords(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)
