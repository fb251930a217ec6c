"""The transformer aggregator over the observed segments: positions, 6 encoder layers, the last token (the forecast's;
every token for the recognition heads)."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sine/cosine table of "Attention is all you need" (as the baseline's PositionalEncoding).

    Always computed on the CPU, also when the model is built on the meta device (a checkpoint's shape check): meta
    `arange` goes through torch's Python decompositions, seconds of start-up for a table of a few KB."""
    cpu = torch.device("cpu")
    pos = torch.arange(length, dtype=torch.float32, device=cpu)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=cpu) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=cpu)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return table


class TransformerAggregator(nn.Module):
    """(B, N, D) segment features -> (B, D): post-norm encoder layers with a final LayerNorm, last position out."""

    def __init__(
        self,
        dim: int,
        length: int,
        layers: int,
        heads: int,
        ffn_dim: int,
        dropout: float,
        position_dropout: float,
        positions: str,
    ) -> None:
        super().__init__()
        if positions == "learned":
            self.positions = nn.Parameter(torch.randn(length, dim) * 0.02)
        else:
            self.register_buffer("positions", sinusoidal_positions(length, dim), persistent=False)
        self.position_dropout = nn.Dropout(position_dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, ffn_dim, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)[:, -1]

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D): every segment's output, each having attended to all N (the recognition heads')."""
        x = self.position_dropout(x + self.positions[: x.shape[1]].to(x.dtype))
        return self.encoder(x)
