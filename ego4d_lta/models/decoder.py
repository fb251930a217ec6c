"""The multi-head decoder (one head per future position), the observed segments' recognition heads and `generate`,
the K-sequence sampler.

Sampling is by inverse CDF from uniform noise the caller supplies, one number per (window, head, k, z):
a window's K sequences then depend only on its logits and its own noise, not on the batch it was in or the
number of processes, so predictions are reproducible for a seed whatever the hardware split.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

STRATEGIES = ("iid", "greedy_sample", "nucleus", "joint", "joint_greedy")


class PairsBuffer(nn.Module):
    """A decoder's `pairs` buffer: (P, 2) the (verb, noun) pairs seen in training, sorted, that the `joint`
    strategies and the sequence decoder draw from; its length is the checkpoint's."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("pairs", torch.zeros(0, 2, dtype=torch.long))

    def set_pairs(self, pairs: torch.Tensor) -> None:
        self.pairs = torch.as_tensor(pairs, dtype=torch.long, device=self.pairs.device).reshape(-1, 2)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        key = prefix + "pairs"  # older checkpoints have none
        state_dict.setdefault(key, torch.zeros(0, 2, dtype=torch.long))
        self.pairs = torch.empty_like(state_dict[key], device=self.pairs.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class MultiHeadDecoder(PairsBuffer):
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


class RecognitionHeads(nn.Module):
    """What each observed segment was: dropout -> Linear(D, V) and Linear(D, Nn) on every segment's token."""

    def __init__(self, dim: int, num_verbs: int, num_nouns: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.verb = nn.Linear(dim, num_verbs)
        self.noun = nn.Linear(dim, num_nouns)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, D) -> verb logits (B, N, V), noun logits (B, N, Nn) of the N observed segments."""
        x = self.dropout(tokens)
        return self.verb(x), self.noun(x)


def sampling_noise(seed: int | list[int], windows: int, k: int, horizon: int) -> np.ndarray:
    """(windows, 2, K, Z) uniforms in [0, 1) for the verb and noun heads, in the split's window order."""
    return np.random.default_rng(seed).random((windows, 2, k, horizon), dtype=np.float32)


def sample_sequences(
    logits: torch.Tensor, noise: torch.Tensor, strategy: str, temperature: float = 1.0, top_p: float = 1.0
) -> torch.Tensor:
    """(B, Z, C) logits and (B, K, Z) uniforms -> (B, K, Z) class ids.

    iid: every sequence sampled from softmax(logits) (the baseline's, temperature 1, all classes);
    nucleus: sampled from softmax(logits / temperature) cut to the top-p mass;
    greedy_sample: sequence 0 is the argmax, the rest as nucleus;
    joint, joint_greedy: as nucleus, greedy_sample (`generate` hands them scores over the (verb, noun) pairs).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if strategy == "iid":
        temperature, top_p = 1.0, 1.0
    strategy = {"joint": "nucleus", "joint_greedy": "greedy_sample"}.get(strategy, strategy)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    if top_p < 1.0:
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the classes ranked above each class
        cut = before >= top_p
        cut[..., 0] = False  # the top class always stays (a top_p below float32's range would cut it too)
        sorted_probs = sorted_probs.masked_fill(cut, 0.0)
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
    pairs: torch.Tensor | None = None,
    observed: tuple[torch.Tensor, torch.Tensor] | None = None,
    observed_bonus: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """K verb and K noun sequences per window, (B, K, Z) each; noise is (B, 2, K, Z) from `sampling_noise`.

    `joint` samples each step's (verb, noun) together over `pairs` (P, 2), the pairs seen in training, with
    score log p(v) + log p(n): the k-th verb and noun sequences then form actions that occur (the action score
    pairs them), at P instead of V x N cost; `joint_greedy` makes sequence 0 the most likely pair at every step.
    `observed` ((B, N) verb and noun ids of the observed segments)
    with `observed_bonus` > 0 adds that much to the log-score of the observed classes (pairs, for `joint`):
    actions recur, so a prior toward them helps when the model is unsure.
    """
    if strategy in ("joint", "joint_greedy"):
        if pairs is None or len(pairs) == 0:
            raise ValueError("the joint strategy needs the (verb, noun) pairs seen in training (decoder.pairs)")
        pairs = pairs.to(verb_logits.device)
        scores = (
            torch.log_softmax(verb_logits.float(), -1)[..., pairs[:, 0]]
            + torch.log_softmax(noun_logits.float(), -1)[..., pairs[:, 1]]
        )  # (B, Z, P)
        if observed is not None and observed_bonus:
            num_nouns = noun_logits.shape[-1]
            seen = (observed[0] * num_nouns + observed[1]).to(scores.device)  # (B, N) action tokens
            hit = (pairs[:, 0] * num_nouns + pairs[:, 1])[None, None, :] == seen[:, :, None]
            scores = scores + observed_bonus * hit.any(1)[:, None, :]
        picks = sample_sequences(scores, noise[:, 0], strategy, temperature, top_p)  # (B, K, Z) pair indices
        return pairs[picks, 0], pairs[picks, 1]
    if observed is not None and observed_bonus:
        verb_logits = _boost(verb_logits.float(), observed[0], observed_bonus)
        noun_logits = _boost(noun_logits.float(), observed[1], observed_bonus)
    verbs = sample_sequences(verb_logits, noise[:, 0], strategy, temperature, top_p)
    nouns = sample_sequences(noun_logits, noise[:, 1], strategy, temperature, top_p)
    return verbs, nouns


Drawer = Callable[[torch.Tensor, str, float, float], tuple[torch.Tensor, torch.Tensor]]
"""A batch's sequence sampler: (noise (B, 2, S, Z), strategy, temperature, top_p) -> S verb and S noun sequences,
(B, S, Z) each. Predict calls it for the K it writes, the set selection's samples and the `--pool`."""


def heads_drawer(
    verb_logits: torch.Tensor,
    noun_logits: torch.Tensor,
    pairs: torch.Tensor | None = None,
    observed: tuple[torch.Tensor, torch.Tensor] | None = None,
    observed_bonus: float = 0.0,
) -> Drawer:
    """The multi-head decoder's `Drawer`: `generate` on the batch's logits."""

    def draw(noise: torch.Tensor, strategy: str, temperature: float = 1.0, top_p: float = 1.0):
        return generate(verb_logits, noun_logits, noise, strategy, temperature, top_p, pairs, observed, observed_bonus)

    return draw


def _boost(logits: torch.Tensor, classes: torch.Tensor, bonus: float) -> torch.Tensor:
    """logits (B, Z, C) + bonus on each window's observed classes (B, N)."""
    hit = torch.zeros(logits.shape[0], logits.shape[-1], device=logits.device)
    hit.scatter_(1, classes.to(logits.device), 1.0)
    return logits + bonus * hit[:, None, :]
