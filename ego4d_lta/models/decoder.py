"""The multi-head decoder (one head per future position) and `generate`, the K-sequence sampler.

Sampling is by inverse CDF from uniform noise the caller supplies, one number per (window, head, k, z):
a window's K sequences then depend only on its logits and its own noise, not on the batch it was in or the
number of processes, so predictions are reproducible for a seed whatever the hardware split.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

STRATEGIES = ("iid", "greedy_sample", "nucleus")


class MultiHeadDecoder(nn.Module):
    """Z independent Linear(D, V + Nn) heads (the baseline's), stored as one (Z, D, V + Nn) weight."""

    def __init__(self, dim: int, horizon: int, num_verbs: int, num_nouns: int, dropout: float) -> None:
        super().__init__()
        classes = num_verbs + num_nouns
        self.num_verbs = num_verbs
        self.dropout = nn.Dropout(dropout)
        self.weight = nn.Parameter(torch.empty(horizon, dim, classes))
        self.bias = nn.Parameter(torch.empty(horizon, classes))
        bound = 1 / math.sqrt(dim)  # nn.Linear's default initialisation, per head
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) -> verb logits (B, Z, V), noun logits (B, Z, Nn)."""
        logits = torch.einsum("bd,zdc->bzc", self.dropout(x), self.weight.to(x.dtype)) + self.bias.to(x.dtype)
        return logits[..., : self.num_verbs], logits[..., self.num_verbs :]


def sampling_noise(seed: int | list[int], windows: int, k: int, horizon: int) -> np.ndarray:
    """(windows, 2, K, Z) uniforms in [0, 1) for the verb and noun heads, in the split's window order."""
    return np.random.default_rng(seed).random((windows, 2, k, horizon), dtype=np.float32)


def sample_sequences(
    logits: torch.Tensor, noise: torch.Tensor, strategy: str, temperature: float = 1.0, top_p: float = 1.0
) -> torch.Tensor:
    """(B, Z, C) logits and (B, K, Z) uniforms -> (B, K, Z) class ids.

    iid: every sequence sampled from softmax(logits) (the baseline's, temperature 1, all classes);
    nucleus: sampled from softmax(logits / temperature) cut to the top-p mass;
    greedy_sample: sequence 0 is the argmax, the rest as nucleus.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if strategy == "iid":
        temperature, top_p = 1.0, 1.0
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    if top_p < 1.0:
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the classes ranked above each class
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)  # the top class always stays
    cdf = sorted_probs.cumsum(-1)
    u = noise.permute(0, 2, 1).to(cdf.device, cdf.dtype) * cdf[..., -1:]  # (B, Z, K), scaled to the kept mass
    kept = (sorted_probs > 0).sum(-1, keepdim=True) - 1  # u rounding up to the total must not pick a cut class
    rank = torch.minimum(torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True), kept)
    ids = order.gather(-1, rank).permute(0, 2, 1)  # (B, K, Z)
    if strategy == "greedy_sample":
        ids[:, 0] = order[..., 0]
    return ids.contiguous()


def generate(
    verb_logits: torch.Tensor,
    noun_logits: torch.Tensor,
    noise: torch.Tensor,
    strategy: str,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """K verb and K noun sequences per window, (B, K, Z) each; noise is (B, 2, K, Z) from `sampling_noise`."""
    verbs = sample_sequences(verb_logits, noise[:, 0], strategy, temperature, top_p)
    nouns = sample_sequences(noun_logits, noise[:, 1], strategy, temperature, top_p)
    return verbs, nouns
