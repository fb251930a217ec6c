"""The five variants, the decoder and `generate`: shapes, parameter counts, prompt use, sampling rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.rules import NUM_OBSERVED, K, Z
from ego4d_lta.config import ModelConfig
from ego4d_lta.models.decoder import generate, sample_sequences, sampling_noise
from ego4d_lta.models.forecaster import VARIANTS, FeatureDims, build_forecaster, build_fusion

TINY = FeatureDims(slowfast=48, clip=16, clip_frames=4, omnivore=40)
V, N = 7, 11


def tiny_model_cfg(variant: str, **kw) -> ModelConfig:
    base = dict(variant=variant, slowfast_dim=24, layers=2, heads=4, ffn_dim=40, attn_heads=2, decoder="heads")
    return ModelConfig(**{**base, **kw})


def random_bank(dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    bank = {}
    for group, n in (("verb", V), ("noun", N), ("scenario", 3), ("place", 5)):
        e = rng.normal(size=(n, dim)).astype(np.float32)
        bank[group] = e / np.linalg.norm(e, axis=1, keepdims=True)
    return bank


def random_feats(b: int, dims: FeatureDims = TINY, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    clip = torch.nn.functional.normalize(torch.randn(b, NUM_OBSERVED, dims.clip_frames, dims.clip, generator=g), dim=-1)
    return {
        "slowfast": torch.randn(b, NUM_OBSERVED, dims.slowfast, generator=g),
        "clip": clip,
        "omnivore": torch.randn(b, NUM_OBSERVED, dims.omnivore, generator=g),
        "obs_verb": torch.randint(V, (b, NUM_OBSERVED), generator=g),
        "obs_noun": torch.randint(N, (b, NUM_OBSERVED), generator=g),
    }


def expected_parameters(variant: str, cfg: ModelConfig, dims: FeatureDims) -> int:
    """Counted from the architecture's definition, independently of the modules."""
    width, params = 0, 0
    d = dims.clip
    for part in VARIANTS[variant]:
        if part in ("slowfast", "omnivore"):
            width += cfg.slowfast_dim
            params += getattr(dims, part) * cfg.slowfast_dim + cfg.slowfast_dim
        elif part in ("clip_mean",):
            width += d
        elif part == "clip_text":
            width += len(cfg.text_groups) * d
        elif part == "clip_attn":
            width += d
            params += (3 * d * d + 3 * d) + (d * d + d) + 2 * d  # in/out projections + LayerNorm
        elif part == "labels":
            width += cfg.label_dim
            params += V * (cfg.label_dim // 2) + N * (cfg.label_dim - cfg.label_dim // 2)  # the two embeddings
    layer = (4 * width * width + 4 * width) + (2 * width * cfg.ffn_dim + cfg.ffn_dim + width) + 4 * width
    params += cfg.layers * layer + 2 * width  # layers + final LayerNorm
    if cfg.decoder == "heads":
        params += Z * (width * (V + N) + (V + N))  # Z heads
    else:  # the pointer-generator: embeddings (+ start), init, codes, GRU, query, key (no bias), value, mix, gate,
        # outputs
        w = cfg.sequence_dim
        params += (V + 1) * (w // 2) + (N + 1) * (w - w // 2) + (width * w + w) + cfg.hypotheses * w
        params += 6 * w * w + 6 * w + (w * w + w) + width * w + (width * w + w) + (2 * w * w + w) + (2 * w + 1)
        params += w * (V + N) + (V + N)
    if cfg.recognition_weight > 0 and variant != "labels":
        params += width * (V + N) + (V + N)  # the recognition heads on every observed segment
    return params


@pytest.mark.parametrize("decoder", ["heads", "sequence"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_builds_with_the_right_shapes_and_parameter_count(variant: str, decoder: str) -> None:
    cfg = tiny_model_cfg(variant, decoder=decoder, sequence_dim=12, hypotheses=2)
    torch.manual_seed(0)
    model = build_forecaster(cfg, TINY, V, N, random_bank(TINY.clip))
    trainable = sum(p.numel() for p in model.parameters())
    assert trainable == expected_parameters(variant, cfg, TINY)
    noise = torch.from_numpy(sampling_noise(0, 3, K, Z))
    if decoder == "heads":
        verb, noun = model(random_feats(3))
        assert verb.shape == (3, Z, V) and noun.shape == (3, Z, N)
        verbs, nouns = generate(verb, noun, noise, "greedy_sample")
    else:
        targets = (torch.randint(V, (3, Z)), torch.randint(N, (3, Z)))
        assert model(random_feats(3), targets=targets)[0].nll.shape == (3, 2)  # per window and hypothesis
        model.decoder.set_pairs(torch.tensor([[v, n] for v in range(V) for n in range(N)]))
        verbs, nouns = model.drawer(random_feats(3))(noise, "greedy_sample")
    assert verbs.shape == (3, K, Z) and nouns.shape == (3, K, Z)
    assert int(verbs.min()) >= 0 and int(verbs.max()) < V and int(nouns.max()) < N


def test_report_widths_follow_from_the_features() -> None:
    """With the report's features (SlowFast 2304, CLIP ViT-B/16 512 x 8 frames) the aggregator widths of design §1."""
    dims = FeatureDims(2304, 512, 8, omnivore=1536)
    bank = random_bank(512)
    widths = {v: build_fusion(ModelConfig(variant=v), dims, bank).out_dim for v in VARIANTS}
    assert widths == {
        "slowfast": 2048,
        "clip": 512,
        "slowfast_clip_text": 2048 + 512 + 4 * 512,
        "slowfast_clip": 2560,
        "slowfast_clip_attn": 2560,
        "omnivore": 2048,
        "labels": 256,
    }
    learned = tiny_model_cfg("slowfast_clip", positions="learned")
    extra = sum(p.numel() for p in build_forecaster(learned, TINY, V, N).parameters())
    base = sum(p.numel() for p in build_forecaster(tiny_model_cfg("slowfast_clip"), TINY, V, N).parameters())
    assert extra - base == NUM_OBSERVED * (24 + TINY.clip)


def test_text_variant_appends_the_nearest_prompt_of_each_group() -> None:
    bank = random_bank(TINY.clip)
    fusion = build_fusion(tiny_model_cfg("slowfast_clip_text", text_groups=["noun", "place"]), TINY, bank)
    feats = random_feats(2)
    feats["clip"][:] = torch.from_numpy(bank["noun"][4])  # every frame looks like noun 4 ...
    # ... except one segment, dominated by noun 9 (x3 against 3 frames of noun 4 was a tie, decided by rounding)
    feats["clip"][1, 3, 0] = torch.from_numpy(bank["noun"][9]) * 10
    out = fusion(feats)
    text = out[..., 24 + TINY.clip :].reshape(2, NUM_OBSERVED, 2, TINY.clip)
    assert torch.allclose(text[0, :, 0], torch.from_numpy(bank["noun"][4]).expand(NUM_OBSERVED, -1))
    assert torch.allclose(text[1, 3, 0], torch.from_numpy(bank["noun"][9]))
    nearest_place = int(np.argmax(bank["place"] @ bank["noun"][4]))
    assert torch.allclose(text[0, 0, 1], torch.from_numpy(bank["place"][nearest_place]))


def test_attention_variant_really_uses_the_text_prompts() -> None:
    """The fork's attention read the text only for its shape; here other prompts give another descriptor."""
    cfg = tiny_model_cfg("slowfast_clip_attn")
    feats = random_feats(2)
    torch.manual_seed(0)
    a = build_fusion(cfg, TINY, random_bank(TINY.clip, seed=0)).eval()
    torch.manual_seed(0)
    b = build_fusion(cfg, TINY, random_bank(TINY.clip, seed=1)).eval()
    assert not torch.allclose(a(feats), b(feats))


def test_a_prompt_group_missing_from_the_bank_is_a_clear_error() -> None:
    bank = random_bank(TINY.clip)
    bank["scenario"] = np.zeros((0, TINY.clip), np.float32)
    with pytest.raises(UserError, match=r"--prompts-only --scenarios.*needs scenario prompts"):
        build_forecaster(tiny_model_cfg("slowfast_clip_text"), TINY, V, N, bank)
    with pytest.raises(UserError, match="needs the CLIP prompt bank"):
        build_forecaster(tiny_model_cfg("slowfast_clip_attn"), TINY, V, N, None)
    with pytest.raises(UserError, match=r"model\.variant 'nope'"):
        build_forecaster(tiny_model_cfg("nope"), TINY, V, N)


def _peaked_logits(b: int, c: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, Z, c, generator=g) * 2


def test_sampling_is_deterministic_and_independent_of_batching() -> None:
    logits = _peaked_logits(6, 9)
    noise = torch.from_numpy(sampling_noise(3, 6, K, Z)[:, 0])
    whole = sample_sequences(logits, noise, "iid")
    halves = torch.cat([sample_sequences(logits[:2], noise[:2], "iid"), sample_sequences(logits[2:], noise[2:], "iid")])
    assert torch.equal(whole, halves)
    assert torch.equal(whole, sample_sequences(logits, noise, "iid"))
    other = torch.from_numpy(sampling_noise(4, 6, K, Z)[:, 0])
    assert not torch.equal(whole, sample_sequences(logits, other, "iid"))


def test_iid_sampling_follows_the_softmax() -> None:
    logits = torch.log(torch.tensor([0.6, 0.3, 0.1])).expand(4000, Z, 3).contiguous()
    noise = torch.from_numpy(sampling_noise(0, 4000, K, Z)[:, 0])
    ids = sample_sequences(logits, noise, "iid")
    freq = torch.bincount(ids.flatten(), minlength=3).double() / ids.numel()
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1], dtype=torch.double), atol=0.01)


def test_greedy_first_sequence_and_nucleus_cut() -> None:
    logits = _peaked_logits(5, 9, seed=1)
    noise = torch.from_numpy(sampling_noise(0, 5, K, Z)[:, 0])
    greedy = sample_sequences(logits, noise, "greedy_sample")
    assert torch.equal(greedy[:, 0], logits.argmax(-1))
    tight = sample_sequences(logits, noise, "nucleus", top_p=1e-6)
    assert torch.equal(tight, logits.argmax(-1)[:, None].expand(-1, K, -1))
    probs = torch.softmax(logits, -1)
    nucleus = sample_sequences(logits, noise, "nucleus", top_p=0.5)
    ranked = probs.sort(-1, descending=True)
    # each sampled class lies inside the smallest top set whose mass reaches 0.5
    keep = (ranked.values.cumsum(-1) - ranked.values) < 0.5
    allowed = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, ranked.indices, keep)
    assert allowed.gather(-1, nucleus.permute(0, 2, 1)).all()
