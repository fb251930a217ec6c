"""The whole forecaster and the registry of the report's five variants (one class, five part lists).

segment features --fusion--> (B, 8, D) --transformer--> (B, D) --Z heads--> verb / noun logits
                                         (B, 8, D) --recognition heads (optional)--> each observed segment's verb / noun
                                         (B, 8, D) --sequence decoder (model.decoder)--> whole sequences, each step
                                                     generated or copied from an observed segment
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.rules import NUM_OBSERVED, Z
from ego4d_lta.config import ModelConfig
from ego4d_lta.models.aggregator import TransformerAggregator
from ego4d_lta.models.decoder import Drawer, MultiHeadDecoder, RecognitionHeads, heads_drawer
from ego4d_lta.models.fusion import PARTS, FeatureDims, FeatureStats, ObservedCopy, SegmentFusion
from ego4d_lta.models.sequence_decoder import CopySource, PointerGeneratorDecoder

VARIANTS: dict[str, tuple[str, ...]] = {
    "slowfast": ("slowfast",),
    "clip": ("clip_mean",),
    "slowfast_clip_text": ("slowfast", "clip_mean", "clip_text"),
    "slowfast_clip": ("slowfast", "clip_mean"),
    "slowfast_clip_attn": ("slowfast", "clip_attn"),
    "omnivore": ("omnivore",),
    "labels": ("labels",),
}
"""The report's five rows, Ego4D's released Omnivore features (`import-features`), and `labels`, which reads the
observed segments' (verb, noun) ids instead of features (the annotations' or an action recogniser's): the parts
(`fusion.PARTS`) whose outputs are concatenated per segment. A new variant is one entry here and one preset in
`configs/`."""


def variant_parts(variant: str) -> tuple[str, ...]:
    if variant not in VARIANTS:
        raise UserError(f"model.variant {variant!r}: choose from {', '.join(VARIANTS)}")
    return VARIANTS[variant]


def needs_prompts(variant: str) -> bool:
    return any(PARTS[p].prompts for p in variant_parts(variant))


def needed_arrays(variant: str) -> tuple[str, ...]:
    """The feature cache arrays the variant reads (none for `labels`)."""
    return tuple(dict.fromkeys(PARTS[p].array for p in variant_parts(variant) if PARTS[p].array))


def labels_only(variant: str) -> bool:
    """True when the variant reads only the observed labels: it trains and predicts without clips or a cache."""
    return variant_parts(variant) == ("labels",)


SEGMENT_INPUTS = ("slowfast", "clip", "omnivore", "obs_verb", "obs_noun")
"""Batch entries with one row per observed segment (dim 1): what `observed` cuts to the last n."""


class Forecaster(nn.Module):
    def __init__(
        self,
        fusion: SegmentFusion,
        aggregator: TransformerAggregator,
        decoder: MultiHeadDecoder,
        observed: int = NUM_OBSERVED,
        copy: ObservedCopy | None = None,
        recognition: RecognitionHeads | None = None,
    ) -> None:
        super().__init__()
        self.fusion = fusion
        self.aggregator = aggregator
        self.decoder = decoder
        self.observed = observed
        self.copy = copy
        self.recognition = recognition
        """Per-segment (verb, noun) classifiers on the aggregator's tokens (None: model.recognition_weight 0)."""

    @property
    def sequential(self) -> bool:
        """True with the sequence decoder (`model.decoder = "sequence"`): its forward scores target sequences."""
        return isinstance(self.decoder, PointerGeneratorDecoder)

    def forward(
        self,
        feats: dict[str, torch.Tensor],
        recognise: bool = False,
        targets: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple:
        """{"slowfast": (B, N, 2304), "clip": (B, N, F, D)} -> verb (B, Z, V) and noun (B, Z, Nn) logits; with
        `recognise`, a further item: the recognition heads' (verb (B, n, V), noun (B, n, Nn)) logits of the n
        segments. The sequence decoder instead scores the `targets` ((B, Z) verb and noun ids): its first item is a
        `SequenceNLL` (it has no per-position logits; `drawer` samples it).

        Only the last `observed` of the N segments are read (the report's code reads 4, the challenge gives 8).
        """
        feats = self._observed(feats)
        tokens = self.aggregator.tokens(self.fusion(feats))
        if self.sequential:
            if targets is None:
                raise ValueError("the sequence decoder scores target sequences (targets=); `drawer` samples it")
            out: tuple = (self.decoder(tokens, self._copy_source(feats, tokens), targets),)
        else:
            out = self._heads(feats, tokens)
        if not recognise:
            return out
        if self.recognition is None:
            raise ValueError("this forecaster has no recognition heads (model.recognition_weight 0)")
        return (*out, self.recognition(tokens))

    def drawer(self, feats: dict[str, torch.Tensor], observed_bonus: float = 0.0) -> Drawer:
        """The batch's sequence sampler (`decoder.Drawer`), for either decoder."""
        feats = self._observed(feats)
        tokens = self.aggregator.tokens(self.fusion(feats))
        observed = (feats["obs_verb"], feats["obs_noun"]) if "obs_verb" in feats else None
        if not self.sequential:
            return heads_drawer(*self._heads(feats, tokens), self.decoder.pairs, observed, observed_bonus)
        source = self._copy_source(feats, tokens)
        bonus = observed_bonus if observed is not None else 0.0  # as the heads': only observed labels get a bonus

        def draw(noise: torch.Tensor, strategy: str, temperature: float = 1.0, top_p: float = 1.0):
            return self.decoder.draw(tokens, source, noise[:, 0], strategy, temperature, top_p, bonus)

        return draw

    def _observed(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v[:, -self.observed :] if k in SEGMENT_INPUTS else v for k, v in feats.items()}

    def _heads(self, feats: dict[str, torch.Tensor], tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        verb, noun = self.decoder(tokens[:, -1])
        return (verb, noun) if self.copy is None else self.copy(verb, noun, feats)

    def _copy_source(self, feats: dict[str, torch.Tensor], tokens: torch.Tensor) -> CopySource:
        """What the sequence decoder's pointer copies: the observed labels, else the recognition heads' view, else
        nothing (a video run without recognition heads: every segment unknown, so the decoder only generates; heads
        trained only through the copies would be an unanchored guess)."""
        if "obs_verb" in feats:
            return CopySource(feats["obs_verb"], feats["obs_noun"])
        if self.recognition is None:
            unknown = torch.full(tokens.shape[:2], -1, dtype=torch.long, device=tokens.device)
            return CopySource(unknown, unknown)
        verb, noun = self.recognition(tokens)
        return CopySource(torch.log_softmax(verb.float(), -1), torch.log_softmax(noun.float(), -1))


def build_forecaster(
    cfg: ModelConfig,
    dims: FeatureDims,
    num_verbs: int,
    num_nouns: int,
    bank: dict[str, np.ndarray] | None = None,
) -> Forecaster:
    """The variant `cfg.variant` for features of `dims` and a taxonomy of num_verbs x num_nouns.

    `bank` (group -> (n, D) unit-norm text embeddings) is needed by the `_text` and `_attn` variants.
    """
    dims = replace(dims, verbs=num_verbs, nouns=num_nouns)
    check_size(cfg, dims, num_verbs, num_nouns)
    fusion = build_fusion(cfg, dims, bank)
    if fusion.out_dim % cfg.heads:
        raise UserError(
            f"model: the {cfg.variant} segment width {fusion.out_dim} is not divisible by model.heads={cfg.heads}"
        )
    aggregator = TransformerAggregator(
        fusion.out_dim,
        NUM_OBSERVED,
        cfg.layers,
        cfg.heads,
        cfg.ffn_dim,
        cfg.dropout,
        cfg.position_dropout,
        cfg.positions,
    )
    decoder = build_decoder(cfg, aggregator.out_dim, num_verbs, num_nouns)
    copy = None
    if cfg.copy_observed:
        if "labels" not in variant_parts(cfg.variant):
            raise UserError(f"model.copy_observed needs a variant with the labels part, not {cfg.variant}")
        copy = ObservedCopy(Z, cfg.observed) if cfg.decoder == "heads" else None  # the sequence decoder's pointer
    recognition = None
    if has_recognition(cfg):  # built last: a model without heads draws the same initial weights as before
        recognition = RecognitionHeads(aggregator.out_dim, num_verbs, num_nouns, cfg.head_dropout)
    return Forecaster(fusion, aggregator, decoder, cfg.observed, copy, recognition)


DECODERS = ("heads", "sequence")
"""`model.decoder`: the report's Z independent heads, or the pointer-generator sequence decoder."""


def build_decoder(cfg: ModelConfig, dim: int, num_verbs: int, num_nouns: int) -> nn.Module:
    if cfg.decoder not in DECODERS:
        raise UserError(f"model.decoder {cfg.decoder!r}: choose {' or '.join(DECODERS)}")
    if cfg.decoder == "heads":
        return MultiHeadDecoder(dim, Z, num_verbs, num_nouns, cfg.head_dropout)
    return PointerGeneratorDecoder(dim, cfg.sequence_dim, Z, num_verbs, num_nouns, cfg.hypotheses, cfg.head_dropout)


def has_recognition(cfg: ModelConfig) -> bool:
    """Recognition heads: `model.recognition_weight` > 0 on a variant that does not read the observed labels (for
    `labels` they are the input: nothing to recognise)."""
    return cfg.recognition_weight > 0 and "labels" not in variant_parts(cfg.variant)


MAX_PARAMETERS = 2_000_000_000
"""8 GB of fp32 weights (x4 with gradients and Adam moments): a bigger config is refused, not swapped to death."""


def check_size(cfg: ModelConfig, dims: FeatureDims, num_verbs: int, num_nouns: int) -> int:
    """An upper estimate of the forecaster's parameters from the config alone, before anything is allocated."""
    width = cfg.slowfast_dim + dims.clip * (2 + len(cfg.text_groups))  # no variant's segment is wider
    estimate = (
        dims.slowfast * cfg.slowfast_dim
        + cfg.layers * (4 * width * width + 2 * width * cfg.ffn_dim)
        + width * (Z + has_recognition(cfg)) * (num_verbs + num_nouns)
        + (cfg.decoder == "sequence") * (cfg.sequence_dim * (9 * cfg.sequence_dim + 3 * width + num_verbs + num_nouns))
    )
    if estimate > MAX_PARAMETERS:
        raise UserError(
            f"model: about {estimate / 1e9:.1f} billion parameters (model.layers={cfg.layers}, model.ffn_dim="
            f"{cfg.ffn_dim}, model.slowfast_dim={cfg.slowfast_dim}); the limit is {MAX_PARAMETERS / 1e9:.0f} billion"
        )
    return estimate


def build_fusion(cfg: ModelConfig, dims: FeatureDims, bank: dict[str, np.ndarray] | None = None) -> SegmentFusion:
    """The per-segment feature builder: the variant's parts (`fusion.PARTS`); `out_dim` is the aggregator's width."""
    names = variant_parts(cfg.variant)
    prompts = _prompt_tensors(bank, cfg.text_groups, dims.clip, cfg.variant) if needs_prompts(cfg.variant) else None
    parts = [PARTS[name].build(cfg, dims, prompts if PARTS[name].prompts else None) for name in names]
    return SegmentFusion(parts, FeatureStats(dims.slowfast, dims.clip, dims.omnivore))


def _prompt_tensors(
    bank: dict[str, np.ndarray] | None, groups: list[str], clip_dim: int, variant: str
) -> dict[str, torch.Tensor]:
    if bank is None:
        raise UserError(f"model.variant {variant} needs the CLIP prompt bank of the feature cache; none was found")
    out = {}
    for g in groups:
        emb = np.asarray(bank.get(g, np.zeros((0, clip_dim))))
        if len(emb) == 0:
            fix = (
                "add the scenario list to the feature cache's prompt bank, the features kept: your `ego4d-lta extract` "
                "command with --prompts-only --scenarios scenarios_taxonomy.json (Ego4D's list), "
                if g == "scenario"
                else ""
            )
            raise UserError(
                f"{fix}or leave {g} out of model.text_groups: model.variant {variant} needs {g} prompts and the "
                "prompt bank has none"
            )
        if emb.shape[1] != clip_dim:
            raise UserError(f"prompt bank {g} embeddings are {emb.shape[1]}-d but the CLIP features {clip_dim}-d")
        out[g] = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
    return out


class ForecastingModel(nn.Module):
    """What training optimises and prediction runs: the forecaster, fed by the cache or by the video encoders."""

    def __init__(self, forecaster: Forecaster, encoders: nn.Module | None = None) -> None:
        super().__init__()
        self.forecaster = forecaster
        self.encoders = encoders

    def forward(self, batch: dict[str, torch.Tensor], recognise: bool = False) -> tuple:
        """The forecaster's outputs (`Forecaster.forward`; `recognise`: the recognition heads' too); a sequence
        decoder scores the batch's future labels (`verb`, `noun`)."""
        feats = self.encoders(batch) if self.encoders is not None else batch
        targets = (batch["verb"], batch["noun"]) if self.forecaster.sequential else None
        return self.forecaster(feats, recognise, targets)

    def drawer(self, batch: dict[str, torch.Tensor], observed_bonus: float = 0.0) -> Drawer:
        """The batch's sequence sampler (`Forecaster.drawer`)."""
        feats = self.encoders(batch) if self.encoders is not None else batch
        return self.forecaster.drawer(feats, observed_bonus)
