"""Per-segment feature builders: what each variant feeds the aggregator for one observed segment.

Inputs come from the feature cache (or the encoders, end to end): `slowfast` (B, N, 2304) pooled SlowFast
features and `clip` (B, N, F, D) unit-norm CLIP embeddings of F frames; or `omnivore` (B, N, 1536) from Ego4D's
released Omnivore features. A variant is a list of parts whose outputs are concatenated; each part knows its
width, so every dimension follows from the config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ego4d_lta.base.errors import UserError
from ego4d_lta.config import ModelConfig


@dataclass(frozen=True)
class FeatureDims:
    """What the inputs hold per segment (the feature record says)."""

    slowfast: int = 2304
    clip: int = 512
    clip_frames: int = 8
    omnivore: int = 0
    """Ego4D's released Omnivore video features (1536-d), when imported."""
    verbs: int = 0
    """Class counts of the taxonomy: the `labels` part embeds the observed ids (set by `build_forecaster`)."""
    nouns: int = 0


class FeatureStats(nn.Module):
    """Per-dimension mean and std of the training features, applied before the trainable parts.

    Frozen-encoder features vary little around a large common offset (pooled SlowFast activations, CLIP
    embeddings); standardising them with training-set statistics lets a small model see the differences (the
    CLIP parts always read them standardised; the SlowFast head does when `model.slowfast_standardise`, while
    the report's Dropout(0.5) on raw features measured better there). The statistics are buffers, so a
    checkpoint carries them to prediction.
    """

    def __init__(self, slowfast_dim: int, clip_dim: int, omnivore_dim: int = 0) -> None:
        super().__init__()
        self.register_buffer("slowfast_mean", torch.zeros(slowfast_dim))
        self.register_buffer("slowfast_std", torch.ones(slowfast_dim))
        self.register_buffer("clip_mean", torch.zeros(clip_dim))
        self.register_buffer("clip_std", torch.ones(clip_dim))
        if omnivore_dim:  # only then: checkpoints of the other variants keep their keys
            self.register_buffer("omnivore_mean", torch.zeros(omnivore_dim))
            self.register_buffer("omnivore_std", torch.ones(omnivore_dim))

    def set(self, stats: dict[str, torch.Tensor]) -> None:
        for name, value in stats.items():
            getattr(self, name).copy_(value)

    def forward(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Adds standardised `slowfast_z` and `clip_z` beside the raw features (the text parts need raw CLIP)."""
        out = dict(feats)
        if "slowfast" in feats:
            out["slowfast_z"] = (feats["slowfast"] - self.slowfast_mean) / self.slowfast_std
        if "omnivore" in feats and hasattr(self, "omnivore_mean"):
            out["omnivore_z"] = (feats["omnivore"] - self.omnivore_mean) / self.omnivore_std
        if "clip" in feats:
            out["clip_z"] = (feats["clip"] - self.clip_mean) / self.clip_std
        return out


class SlowFastPart(nn.Module):
    """Pooled SlowFast features -> [Dropout] -> trainable Linear (2304 -> 2048 in the report); `source="omnivore"`:
    the same for Ego4D's released Omnivore video features (1536-d).

    The report's head is Dropout(0.5) -> Linear on the raw pooled features (`standardise=False`, `dropout=0.5`); the
    default standardises them and drops nothing.
    """

    def __init__(
        self, in_dim: int, out_dim: int, source: str = "slowfast", dropout: float = 0.0, standardise: bool = True
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_dim, out_dim)
        self.key = f"{source}_z" if standardise else source
        self.out_dim = out_dim

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.proj(self.dropout(feats[self.key]))


class LabelPart(nn.Module):
    """Each observed segment's (verb, noun) class ids -> learned verb and noun embeddings, concatenated.

    The input of the `labels` variant: ground-truth labels of the observed segments when training, an action
    recogniser's output (or the annotations, on val) when predicting. Batches carry them as `obs_verb` and
    `obs_noun`, (B, N) int64.
    """

    def __init__(self, num_verbs: int, num_nouns: int, dim: int) -> None:
        super().__init__()
        self.verb = nn.Embedding(num_verbs, dim // 2)
        self.noun = nn.Embedding(num_nouns, dim - dim // 2)
        self.out_dim = dim

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.verb(feats["obs_verb"]), self.noun(feats["obs_noun"])], dim=-1)


class ClipMeanPart(nn.Module):
    """CLIP image embeddings mean-pooled over the segment's frames (no parameters)."""

    def __init__(self, clip_dim: int) -> None:
        super().__init__()
        self.out_dim = clip_dim

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return feats["clip_z"].mean(dim=2)


class TopTextPart(nn.Module):
    """For each prompt group, the text embedding closest (cosine) to the segment's mean image embedding.

    The prompt bank is a buffer: encoded once at extraction, never re-encoded, saved with the model.
    """

    def __init__(self, bank: dict[str, torch.Tensor], groups: list[str]) -> None:
        super().__init__()
        self.groups = list(groups)
        for g in self.groups:
            self.register_buffer(f"bank_{g}", bank[g].float())
        self.out_dim = len(self.groups) * bank[self.groups[0]].shape[1]

    def top1(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, N, G, D): one top-1 prompt embedding per group."""
        image = F.normalize(feats["clip"].mean(dim=2), dim=-1)
        picks = []
        for g in self.groups:
            bank = getattr(self, f"bank_{g}")
            idx = (image @ bank.to(image.dtype).T).argmax(dim=-1)
            picks.append(bank[idx].to(image.dtype))
        return torch.stack(picks, dim=2)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.top1(feats).flatten(2)


class ClipAttnPart(nn.Module):
    """A 512 descriptor by cross-attention: top-1 text prompts (one per group) ask, the segment's frames answer.

    Queries are learned projections of the text embeddings, keys and values learned projections of the
    per-frame CLIP embeddings (the in-projections of `nn.MultiheadAttention`); residual + LayerNorm, then the
    mean over the queries. Unlike the fork's, the text embeddings really enter the computation.
    """

    def __init__(self, bank: dict[str, torch.Tensor], groups: list[str], heads: int, dropout: float) -> None:
        super().__init__()
        self.text = TopTextPart(bank, groups)
        dim = bank[groups[0]].shape[1]
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        queries = self.text.top1(feats)  # (B, N, G, D)
        b, n, g, d = queries.shape
        frames = feats["clip_z"].reshape(b * n, -1, d)
        q = queries.reshape(b * n, g, d)
        out, _ = self.attn(q, frames, frames, need_weights=False)
        return self.norm(out + q).mean(dim=1).reshape(b, n, d)


class ObservedCopy(nn.Module):
    """Learned copying of the observed classes: logit[z, c] += sum_j w[z, j] * [observed_j == c], per head.

    Actions recur within a clip (on Ego4D, cycling the 8 observed actions beats every other heuristic on nouns);
    a Z x N weight per head lets the model learn how much each future position copies each observed segment.
    Starts at zero (no copying); needs the observed labels (`obs_verb`, `obs_noun`: the `labels` part's input).
    The weights are used x `GAIN`: Adam moves a parameter about lr per step, and useful copy weights are a few
    units of logit, so without it they would take thousands of steps to grow.
    """

    GAIN = 10.0

    def __init__(self, horizon: int, observed: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, horizon, observed))

    def forward(
        self, verb: torch.Tensor, noun: torch.Tensor, feats: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = []
        for head, logits, key in ((0, verb, "obs_verb"), (1, noun, "obs_noun")):
            hits = F.one_hot(feats[key], logits.shape[-1]).to(logits.dtype)  # (B, n, C)
            weight = self.weight[head].to(logits.dtype) * self.GAIN
            out.append(logits + torch.einsum("zj,bjc->bzc", weight, hits))
        return out[0], out[1]


class SegmentFusion(nn.Module):
    """Concatenates the variant's parts: (B, N, out_dim)."""

    def __init__(self, parts: list[nn.Module], stats: FeatureStats) -> None:
        super().__init__()
        self.stats = stats
        self.parts = nn.ModuleList(parts)
        self.out_dim = sum(p.out_dim for p in parts)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = self.stats(feats)
        return torch.cat([p(feats) for p in self.parts], dim=-1)


@dataclass(frozen=True)
class PartSpec:
    """How to build one registered part: `build(model config, input dims, prompt bank or None)`."""

    build: Callable[[ModelConfig, FeatureDims, dict[str, torch.Tensor] | None], nn.Module]
    array: str | None
    """The feature cache array it reads (slowfast, clip, omnivore; None: no cache, e.g. `labels`)."""
    prompts: bool = False
    """Needs the CLIP prompt bank of the feature cache."""


def _clip_attn(cfg: ModelConfig, dims: FeatureDims, bank: dict[str, torch.Tensor] | None) -> ClipAttnPart:
    if dims.clip % cfg.attn_heads:
        raise UserError(f"model.attn_heads={cfg.attn_heads} must divide the CLIP width {dims.clip}")
    return ClipAttnPart(bank, cfg.text_groups, cfg.attn_heads, cfg.dropout)


PARTS: dict[str, PartSpec] = {
    "slowfast": PartSpec(
        lambda cfg, dims, bank: SlowFastPart(
            dims.slowfast, cfg.slowfast_dim, "slowfast", cfg.slowfast_input_dropout, cfg.slowfast_standardise
        ),
        "slowfast",
    ),
    "omnivore": PartSpec(
        lambda cfg, dims, bank: SlowFastPart(
            dims.omnivore, cfg.slowfast_dim, "omnivore", cfg.slowfast_input_dropout, cfg.slowfast_standardise
        ),
        "omnivore",
    ),
    "labels": PartSpec(lambda cfg, dims, bank: LabelPart(dims.verbs, dims.nouns, cfg.label_dim), None),
    "clip_mean": PartSpec(lambda cfg, dims, bank: ClipMeanPart(dims.clip), "clip"),
    "clip_text": PartSpec(lambda cfg, dims, bank: TopTextPart(bank, cfg.text_groups), "clip", prompts=True),
    "clip_attn": PartSpec(_clip_attn, "clip", prompts=True),
}
"""Every per-segment part a variant can list (`forecaster.VARIANTS`); a new part is one entry here."""
