"""The sequence decoder: a pointer-generator over actions, so each of the K sequences is one coherent future.

Beside the report's 20 independent heads (`decoder.MultiHeadDecoder`), `model.decoder = "sequence"` decodes the
future one action at a time, each step conditioned on the actions before it (See et al., "Get To The Point", 2017):

    h_0 = tanh(W summary + code_k)                 summary: the aggregator's last token; code_k: hypothesis k
    h_t = GRU([verb_emb(v_t-1); noun_emb(n_t-1)], h_t-1)
    a_t = softmax over the n observed segments of (W_q h_t) . (W_k token_j)         the pointer
    o_t = tanh(W_o [h_t; sum_j a_tj W_v token_j])
    g_t = sigmoid(w [h_t; c_t])                                                     the copy gate
    p(v, n) = (1 - g_t) softmax(W_v o_t)[v] softmax(W_n o_t)[n] + g_t sum_j a_tj copy_j(v, n)

`copy_j` is segment j's action: for `labels` variants the observed (verb, noun) itself; for video variants the
recognition heads' verb x noun distribution over segment j's token (restricted to the training pairs when decoding).
Training maximises the sequences' likelihood with teacher forcing; with `model.hypotheses` H > 1, H learned codes
start H decoders and only the best one's loss counts (winner-takes-all, relaxed by `WTA_RELAX`), so the codes can
learn different futures. Decoding draws whole sequences: one uniform per step picks an action of the mixture above
over the training pairs and the copied actions, by inverse CDF (so a sequence's draws depend only on its window
and its noise, as the heads').
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ego4d_lta.models.decoder import PairsBuffer, sample_sequences

NEVER = -1e4
"""A log-probability that stands for 0 and keeps gradients finite (log 0 = -inf makes logsumexp's backward NaN)."""
WTA_RELAX = 0.05
"""Winner-takes-all training: (1 - relax) x the best hypothesis' loss + relax x the mean over all of them, so a
hypothesis that never wins still learns (Rupprecht et al., 2017)."""
ROWS_PER_CHUNK = 1 << 22
"""Decoding draws sequences in chunks of at most this many (sequence x candidate) cells, ~16 MB per step tensor."""


class SequenceNLL(NamedTuple):
    """What the sequence decoder's forward returns in training: each window's negative log-likelihood of its
    target sequence under each hypothesis, summed over the Z steps, (B, H)."""

    nll: torch.Tensor
    steps: int

    def loss(self, reduction: str = "mean") -> torch.Tensor:
        """The batch mean of the relaxed best-of-H NLL; `mean` divides it by Z (a per-step loss, as the heads'
        mean over positions), `sum` keeps the sum over the Z steps (as the heads' summed loss)."""
        best = self.nll.min(1).values
        per_window = (1 - WTA_RELAX) * best + WTA_RELAX * self.nll.mean(1) if self.nll.shape[1] > 1 else best
        return per_window.mean() / (1 if reduction == "sum" else self.steps)


class CopySource(NamedTuple):
    """What pointing at observed segment j emits: the labels' ids (`verb`, `noun`, (B, n), -1 unknown), or the
    recognition heads' log-probabilities over the segment's verb and noun ((B, n, V), (B, n, Nn))."""

    verb: torch.Tensor
    noun: torch.Tensor

    @property
    def soft(self) -> bool:
        return self.verb.dim() == 3


class PointerGeneratorDecoder(PairsBuffer):
    """(B, n, D) aggregator tokens -> Z (verb, noun) steps, each generated or copied from an observed segment."""

    def __init__(
        self, dim: int, width: int, horizon: int, num_verbs: int, num_nouns: int, hypotheses: int, dropout: float
    ) -> None:
        super().__init__()
        self.horizon, self.num_verbs, self.num_nouns = horizon, num_verbs, num_nouns
        self.verb_embedding = nn.Embedding(num_verbs + 1, width // 2)  # the last row: the start token
        self.noun_embedding = nn.Embedding(num_nouns + 1, width - width // 2)
        self.init = nn.Linear(dim, width)
        self.codes = nn.Parameter(torch.randn(hypotheses, width) * 0.5)
        self.cell = nn.GRUCell(width, width)
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(dim, width, bias=False)  # a key bias adds q.b to every segment's score: no effect
        self.value = nn.Linear(dim, width)
        self.mix = nn.Linear(2 * width, width)
        self.gate = nn.Linear(2 * width, 1)
        self.verb = nn.Linear(width, num_verbs)
        self.noun = nn.Linear(width, num_nouns)
        self.dropout = nn.Dropout(dropout)

    @property
    def hypotheses(self) -> int:
        return self.codes.shape[0]

    def start(self, tokens: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens (B, n, D), codes (B, S) hypothesis ids -> the first state (B, S, W) and the keys and values."""
        tokens = tokens.float()
        h = torch.tanh(self.init(tokens[:, -1])[:, None] + self.codes[codes])
        return h, self.key(tokens), self.value(tokens)

    def step(
        self, h: torch.Tensor, prev: tuple[torch.Tensor, torch.Tensor], keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for (B, S) sequences: state (B, S, W), previous ids -> the new state, log p_generate(verb)
        (B, S, V) and (noun) (B, S, Nn) (the gate's share included), log p_copy(segment) (B, S, n) (idem)."""
        b, s, w = h.shape
        x = torch.cat([self.verb_embedding(prev[0]), self.noun_embedding(prev[1])], -1)
        h = self.cell(x.reshape(b * s, w), h.reshape(b * s, w)).reshape(b, s, w)
        scores = torch.einsum("bsw,bnw->bsn", self.query(h), keys) / math.sqrt(w)
        context = torch.einsum("bsn,bnw->bsw", torch.softmax(scores, -1), values)
        both = torch.cat([h, context], -1)
        out = self.dropout(torch.tanh(self.mix(both)))
        gate = self.gate(both).float()  # (B, S, 1): the copy logit
        verb = F.log_softmax(self.verb(out).float(), -1) + F.logsigmoid(-gate)
        noun = F.log_softmax(self.noun(out).float(), -1)
        copy = torch.log_softmax(scores.float(), -1) + F.logsigmoid(gate)
        return h, verb, noun, copy

    def forward(
        self, tokens: torch.Tensor, source: CopySource, targets: tuple[torch.Tensor, torch.Tensor]
    ) -> SequenceNLL:
        """Teacher forcing: the NLL of the target (verb, noun) sequences ((B, Z) each) under every hypothesis."""
        b, hyp = tokens.shape[0], self.hypotheses
        codes = torch.arange(hyp, device=tokens.device).expand(b, hyp)
        h, keys, values = self.start(tokens, codes)
        verbs, nouns = (t.long()[:, None].expand(b, hyp, -1) for t in targets)
        prev = (torch.full_like(verbs[..., 0], self.num_verbs), torch.full_like(nouns[..., 0], self.num_nouns))
        nll = torch.zeros(b, hyp, device=tokens.device)
        for t in range(verbs.shape[-1]):
            h, verb, noun, copy = self.step(h, prev, keys, values)
            v, n = verbs[..., t], nouns[..., t]
            generated = verb.gather(-1, v[..., None])[..., 0] + noun.gather(-1, n[..., None])[..., 0]
            copied = torch.logsumexp(copy + copy_log_prob(source, v, n), -1)
            nll = nll - torch.logaddexp(generated, copied)
            prev = (v, n)
        return SequenceNLL(nll, verbs.shape[-1])

    @torch.no_grad()
    def draw(
        self,
        tokens: torch.Tensor,
        source: CopySource,
        noise: torch.Tensor,
        strategy: str,
        temperature: float = 1.0,
        top_p: float = 1.0,
        observed_bonus: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S, Z) uniforms -> S whole sequences per window, verb and noun ids (B, S, Z) each; sequence s starts
        from hypothesis s mod H. `strategy` as `decoder.sample_sequences` (iid: T = 1 and the whole mass; the
        greedy ones: sequence 0 takes the most likely action at every step); `observed_bonus` multiplies the
        observed actions' probability by e^bonus before the temperature."""
        if len(self.pairs) == 0:
            raise ValueError("the sequence decoder draws over the (verb, noun) pairs seen in training (decoder.pairs)")
        if strategy == "iid":
            temperature, top_p = 1.0, 1.0
        spread = copy_spread(source, self.pairs)
        copy_ids = copy_actions(source, self.pairs, spread)
        b, s, _ = noise.shape
        per = max(1, ROWS_PER_CHUNK // max(1, s * (len(self.pairs) + copy_ids[0].shape[1])))
        outs = []
        for i in range(0, b, per):
            rows = slice(i, i + per)
            copying = (tuple(c[rows] for c in copy_ids), None if spread is None else spread[rows])
            outs.append(
                self._draw_chunk(tokens[rows], copying, noise[rows], strategy, temperature, top_p, observed_bonus)
            )
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def _draw_chunk(self, tokens, copying, noise, strategy, temperature, top_p, observed_bonus):
        (copy_ids, spread), (b, s, steps) = copying, noise.shape
        codes = (torch.arange(s, device=tokens.device) % self.hypotheses).expand(b, s)
        h, keys, values = self.start(tokens, codes)
        pairs = self.pairs.to(tokens.device)
        into_pairs = pair_columns(copy_ids[0], copy_ids[1], pairs, self.num_nouns)  # (b, n): column in pairs or -1
        known, inside = copy_ids[0] >= 0, (into_pairs >= 0).T[..., None]  # (b, n), (n, b, 1)
        into = into_pairs.clamp(min=0).T[..., None].expand(-1, -1, s)  # (n, b, s)
        boost = _bonus(into_pairs, known, len(pairs), observed_bonus)
        start = torch.full((b, s), self.num_verbs, device=h.device)
        prev = (start, torch.full_like(start, self.num_nouns))
        verbs, nouns = [], []
        for t in range(steps):
            h, verb, noun, copy = self.step(h, prev, keys, values)
            # columns first, (C, b, s): a gather of whole rows (a last-dim gather of (b, s, P) is many times slower)
            verb, noun = verb.permute(2, 0, 1).contiguous(), noun.permute(2, 0, 1).contiguous()
            probs = (verb.index_select(0, pairs[:, 0]) + noun.index_select(0, pairs[:, 1])).exp()  # (P, b, s)
            copied = copy.exp() * known[:, None]  # (b, s, n)
            if spread is not None:  # recognised segments: each copy spreads over the pairs as the heads see them
                columns = probs.permute(1, 2, 0) + torch.bmm(copied, spread)  # (b, s, P)
            else:  # labels: a copy is the segment's own pair; one outside P gets a column of its own
                copied = copied.permute(2, 0, 1)
                probs.scatter_add_(0, into, copied * inside)
                columns = torch.cat([probs, copied * ~inside], 0)
                if boost is not None:
                    columns = columns * boost
                columns = columns.permute(1, 2, 0).contiguous()  # (b, s, C): the cumulative sum runs along memory
            pick = _pick(columns, noise[..., t], strategy, temperature, top_p)  # (b, s) column ids
            v, n = _column_ids(pick, pairs, copy_ids)
            verbs.append(v)
            nouns.append(n)
            prev = (v, n)
        return torch.stack(verbs, -1), torch.stack(nouns, -1)


def _bonus(into_pairs: torch.Tensor, known: torch.Tensor, num_pairs: int, bonus: float) -> torch.Tensor | None:
    """(C, b, 1) factors e^bonus on each window's observed actions' columns (None without a bonus)."""
    if not bonus:
        return None
    inside = into_pairs >= 0
    seen = torch.zeros(num_pairs, len(known), device=known.device)
    seen = seen.scatter_add_(0, into_pairs.clamp(min=0).T, inside.T.float()).clamp(max=1)
    seen = torch.cat([seen, (~inside & known).T.float()], 0)
    return torch.exp(bonus * seen)[..., None]


def copy_log_prob(source: CopySource, verb: torch.Tensor, noun: torch.Tensor) -> torch.Tensor:
    """log copy_j(verb, noun) of every segment j for (B, S) targets: (B, S, n)."""
    if source.soft:
        v = source.verb.float().gather(-1, verb[:, None, :].expand(-1, source.verb.shape[1], -1))  # (B, n, S)
        n = source.noun.float().gather(-1, noun[:, None, :].expand(-1, source.noun.shape[1], -1))
        return (v + n).transpose(1, 2)
    match = (source.verb[:, None] == verb[..., None]) & (source.noun[:, None] == noun[..., None])
    return torch.where(match, 0.0, NEVER)


def copy_actions(
    source: CopySource, pairs: torch.Tensor, spread: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each segment's copied action, (B, n) verb and noun ids: the labels, or the most likely training pair of its
    `copy_spread` (a recognised segment's copies are drawn from the whole spread; this marks it as known)."""
    if spread is None:
        return source.verb.long(), source.noun.long()
    best = pairs[spread.argmax(-1)]
    return best[..., 0], best[..., 1]


def copy_spread(source: CopySource, pairs: torch.Tensor) -> torch.Tensor | None:
    """(B, n, P) the probability of each training pair under each recognised segment's verb x noun distribution,
    what copying it emits when decoding (as in training); None for labels, whose copies are their own pairs."""
    if not source.soft:
        return None
    return (source.verb.float()[..., pairs[:, 0]] + source.noun.float()[..., pairs[:, 1]]).exp()


def pair_columns(verb: torch.Tensor, noun: torch.Tensor, pairs: torch.Tensor, num_nouns: int) -> torch.Tensor:
    """The column of each (verb, noun) among `pairs` (sorted by verb, then noun, as `action_pairs` makes them), -1
    where it is not one."""
    codes = pairs[:, 0] * num_nouns + pairs[:, 1]
    wanted = verb * num_nouns + noun
    at = torch.searchsorted(codes, wanted).clamp(max=len(codes) - 1)
    return torch.where((codes[at] == wanted) & (verb >= 0), at, -1)


def _pick(columns: torch.Tensor, u: torch.Tensor, strategy: str, temperature: float, top_p: float) -> torch.Tensor:
    """One column per (window, sequence) of unnormalised probabilities (b, s, C), by the uniforms u (b, s): the
    inverse CDF (the column whose cumulative mass first exceeds u x the total)."""
    weights = columns.pow(1.0 / temperature) if temperature != 1.0 else columns
    if top_p < 1.0:  # the nucleus needs the classes ranked: `sample_sequences`' own rule, one step at a time
        logits = weights.clamp(min=1e-30).log().flatten(0, 1)[:, None]
        ids = sample_sequences(logits, u.reshape(-1, 1, 1), "nucleus", 1.0, top_p).reshape(u.shape)
    else:
        cdf = weights.cumsum(-1)
        value = u.to(cdf.dtype) * cdf[..., -1]
        ids = torch.searchsorted(cdf, value[..., None], right=True)[..., 0]
        over = value >= cdf[..., -1]  # u rounding up to the total: the last column with mass, not a 0 one after it
        if over.any():
            ids[over] = columns.shape[-1] - 1 - (weights[over] > 0).flip(-1).int().argmax(-1)
    if strategy in ("greedy_sample", "joint_greedy"):
        ids[:, 0] = columns[:, 0].argmax(-1)
    return ids


def _column_ids(pick: torch.Tensor, pairs: torch.Tensor, copy_ids: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The (verb, noun) of picked columns: a training pair, or (past the P pairs) segment j's copied action."""
    p = len(pairs)
    seg = (pick - p).clamp(min=0)
    verb = torch.where(pick < p, pairs[pick.clamp(max=p - 1), 0], copy_ids[0].gather(1, seg))
    noun = torch.where(pick < p, pairs[pick.clamp(max=p - 1), 1], copy_ids[1].gather(1, seg))
    return verb, noun
