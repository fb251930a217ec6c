"""A per-segment action recogniser: one segment's feature vector -> verb and noun logits.

Small on purpose: the features are frozen-encoder outputs (pooled SlowFast / Omnivore rows, mean-pooled CLIP frames),
so a linear head (`hidden` 0) or one hidden layer on standardised features is the whole model. `ego4d-lta recognise`
trains it (`stages/recognise.py`) and writes the recognitions `predict --recognitions` reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class RecogniserSpec:
    """What builds a recogniser (stored with its weights)."""

    dim: int
    """Input width: the segment's features, every cache array side by side."""
    num_verbs: int
    num_nouns: int
    hidden: int = 0
    """Width of one hidden layer (GELU); 0: the heads read the standardised features directly (linear)."""
    dropout: float = 0.0
    """Dropout on the standardised features (and the hidden layer) while training (0: none; weight decay alone)."""


class SegmentRecogniser(nn.Module):
    """Standardise (training statistics, stored as buffers) -> dropout -> [Linear + GELU -> dropout] -> two heads."""

    def __init__(self, spec: RecogniserSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("mean", torch.zeros(spec.dim))
        self.register_buffer("std", torch.ones(spec.dim))
        layers: list[nn.Module] = [nn.Dropout(spec.dropout)]
        if spec.hidden:
            layers += [nn.Linear(spec.dim, spec.hidden), nn.GELU(), nn.Dropout(spec.dropout)]
        self.body = nn.Sequential(*layers)
        width = spec.hidden or spec.dim
        self.verb = nn.Linear(width, spec.num_verbs)
        self.noun = nn.Linear(width, spec.num_nouns)

    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The per-dimension mean and std of the training features (std floored, so a constant column reads 0)."""
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body((x - self.mean) / self.std)
        return self.verb(h), self.noun(h)


def build_recogniser(spec: RecogniserSpec, seed: int) -> SegmentRecogniser:
    """The recogniser with initial weights fixed by `seed` (the global RNG is left as it was)."""
    if spec.dim < 1 or spec.num_verbs < 1 or spec.num_nouns < 1 or spec.hidden < 0 or not 0 <= spec.dropout < 1:
        raise ValueError(f"not a recogniser: {spec}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SegmentRecogniser(spec)
