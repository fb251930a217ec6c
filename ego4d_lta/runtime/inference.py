"""K sequences for every window of a split, spread over the processes, merged on all of them.

Each process takes windows rank, rank + W, ... (no padding, so nothing is duplicated); the gathered result is
in window order. Windows without features (a missing or broken video) get the fallback: the training set's
most frequent action, repeated.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ego4d_lta.challenge.metrics import Scores, score
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.selection import observed_candidates, observed_positions, select_in_blocks
from ego4d_lta.config import GenerateConfig
from ego4d_lta.data.window_datasets import SEGMENT_LABELS, eval_batches
from ego4d_lta.models.decoder import Drawer, heads_drawer, sampling_noise
from ego4d_lta.models.forecaster import ForecastingModel
from ego4d_lta.runtime.distributed import all_gather_objects
from ego4d_lta.runtime.training import recognition_loss


@dataclass
class Predictions:
    verb: np.ndarray
    """(n, K, Z) ids, in the split's window order."""
    noun: np.ndarray
    fallback: np.ndarray
    """(n,) True where the window had no features and got the fallback."""
    pool_verb: np.ndarray | None = None
    """(n, P, Z): `pool` more samples per window from the same logits (for `ego4d-lta ensemble`), or None."""
    pool_noun: np.ndarray | None = None


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast on a GPU (unless precision is fp32); nothing on a CPU."""
    if device.type == "cuda" and precision == "auto":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def training_pairs(model: nn.Module) -> torch.Tensor | None:
    """The (verb, noun) pairs seen in training, which the joint strategies sample over (None: a model without)."""
    decoder = getattr(getattr(model, "forecaster", None), "decoder", None)
    return getattr(decoder, "pairs", None)


@torch.no_grad()
def predict_windows(
    model: nn.Module,
    dataset,
    gen: GenerateConfig,
    fallback: tuple[int, int],
    device: torch.device,
    batch_size: int,
    rank: int = 0,
    world: int = 1,
    precision: str = "auto",
    progress=None,
    pool: int = 0,
    recognised: tuple[np.ndarray, np.ndarray] | None = None,
) -> Predictions:
    """Every window's K verb and noun sequences (all processes get the merged result); with `pool`, also that many
    more samples per window from the same logits and strategy (their own noise stream). `recognised` ((n, 8) ids,
    -1 unknown) gives the set selection its observed candidates where the inputs carry no observed labels."""
    n = len(dataset)
    observed_positions(gen.candidates, 8, Z)  # an unknown candidate kind is refused before any work
    noise = torch.from_numpy(sampling_noise(gen.seed, n, K, Z))
    pool_noise = torch.from_numpy(sampling_noise([gen.seed, pool], n, pool, Z)) if pool else None
    was_training = model.training
    model.eval()
    pairs = training_pairs(model)
    sample = (gen.strategy, gen.temperature, gen.top_p)
    parts: list[tuple] = []
    for indices in eval_batches(n, batch_size, rank, world):
        batch = dataset[indices]
        ok = batch["available"].numpy()
        with autocast(device, precision):
            draw = batch_drawer(model, to_device(batch, device), gen.observed_bonus, pairs)
        heads = [draw(noise[indices], *sample)]
        if gen.samples:
            replayed = (batch["obs_verb"], batch["obs_noun"]) if "obs_verb" in batch else None
            if replayed is None and recognised is not None:  # the recognitions file's observed ids (-1: unknown)
                replayed = tuple(torch.from_numpy(ids[indices]) for ids in recognised)
            heads[0] = choose_set(draw, heads[0], replayed, gen, indices, joint=pairs is not None and len(pairs) > 0)
        if pool_noise is not None:
            heads.append(draw(pool_noise[indices], *sample))
        arrays = [x.cpu().numpy().astype(np.int32) for pair in heads for x in pair]  # verb, noun[, pool v, pool n]
        for head, arr in enumerate(arrays):
            arr[~ok] = fallback[head % 2]
        parts.append((np.asarray(indices), ok, arrays))
        if progress is not None:
            progress(len(indices) * world)
    model.train(was_training)
    gathered = [p for rank_parts in all_gather_objects(parts) for p in rank_parts]
    out = [np.zeros((n, k, Z), np.int64) for k in ((K, K, pool, pool) if pool else (K, K))]
    missing = np.zeros(n, bool)
    seen = np.zeros(n, np.int64)
    for idx, ok, arrays in gathered:
        for whole, part in zip(out, arrays, strict=True):
            whole[idx] = part
        missing[idx] = ~ok
        seen[idx] += 1
    if not (seen == 1).all():
        raise RuntimeError(f"inference covered {int((seen == 1).sum())} of {n} windows exactly once")
    return Predictions(out[0], out[1], missing, *out[2:])


def window_noise(seed: int, indices: list[int], samples: int) -> torch.Tensor:
    """(B, 2, samples, Z) uniforms for the set selection's model samples, one stream per window index: a window's
    draws do not depend on its batch, and no split-sized array is made."""
    rows = [np.random.default_rng([seed, 1, samples, i]).random((2, samples, Z), dtype=np.float32) for i in indices]
    return torch.from_numpy(np.stack(rows))


def batch_drawer(model: nn.Module, batch: dict[str, torch.Tensor], observed_bonus: float, pairs) -> Drawer:
    """The batch's sequence sampler: the forecasting model's own (either decoder), or for any other module that
    returns (verb, noun) logits, `generate` on them."""
    if isinstance(model, ForecastingModel):
        return model.drawer(batch, observed_bonus)
    verb_logits, noun_logits = model(batch)[:2]
    observed = (batch["obs_verb"], batch["obs_noun"]) if "obs_verb" in batch else None
    return heads_drawer(verb_logits, noun_logits, pairs, observed, observed_bonus)


def choose_set(
    draw: Drawer,
    drawn: tuple[torch.Tensor, torch.Tensor],
    observed: tuple[torch.Tensor, torch.Tensor] | None,
    gen: GenerateConfig,
    indices: list[int],
    joint: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """K sequences per window chosen as a set (`challenge.selection`) from the pool of the strategy's `drawn` K
    (candidates only), `gen.samples` sequences of `draw` (over the training pairs where `joint`, at
    `gen.sample_temperature`) and the replays of the `observed` ids (-1: unknown, no replay), the evidence weighted
    by `gen.observed_weight`. Distances count actions over the ids' largest noun + 1 (a bijection: any larger
    count gives the same distances)."""
    noise = window_noise(gen.seed, indices, gen.samples)
    sampled = draw(noise, "joint" if joint else "nucleus", gen.sample_temperature, gen.top_p)
    verbs = [drawn[0].cpu().numpy(), sampled[0].cpu().numpy()]
    nouns = [drawn[1].cpu().numpy(), sampled[1].cpu().numpy()]
    weights = [np.zeros(K), np.full(gen.samples, 1.0 / gen.samples)]
    weights = np.concatenate(weights)[None].repeat(len(indices), 0)
    if observed is not None and gen.candidates:
        obs_verb, obs_noun = observed_candidates(observed[0].numpy(), observed[1].numpy(), gen.candidates, Z)
        known = ((obs_verb >= 0) & (obs_noun >= 0)).all((1, 2))  # else: a copy of drawn sequence 0, no weight
        obs_verb[~known], obs_noun[~known] = verbs[0][~known, :1], nouns[0][~known, :1]
        verbs.append(obs_verb)
        nouns.append(obs_noun)
        c = obs_verb.shape[1]
        share = np.where(known, gen.observed_weight, 0.0)[:, None]
        weights = np.concatenate([weights * (1 - share), np.broadcast_to(share / c, (len(known), c))], 1)
    verb, noun = np.concatenate(verbs, 1), np.concatenate(nouns, 1)
    chosen = select_in_blocks(verb, noun, int(noun.max()) + 1, weights, K)
    rows = np.arange(len(verb))[:, None]
    return torch.from_numpy(verb[rows, chosen]), torch.from_numpy(noun[rows, chosen])


def score_predictions(preds: Predictions, labels, num_nouns: int) -> Scores:
    return score(preds.verb, preds.noun, labels.verb, labels.noun, num_nouns)


@torch.no_grad()
def recognition_scores(
    model: nn.Module,
    dataset,
    device: torch.device,
    batch_size: int,
    rank: int = 0,
    world: int = 1,
    precision: str = "auto",
) -> dict[str, float]:
    """The recognition heads over every observed segment of every window with features (a segment counts once per
    window that reads it, at that position): `loss` (mean cross-entropy, verb + noun, as trained) and top-1 `verb`
    and `noun` accuracy; summed over the processes."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64)  # loss sum, verb hits, noun hits, segments
    for indices in eval_batches(len(dataset), batch_size, rank, world):
        batch = dataset[indices]
        ok = batch["available"]
        with autocast(device, precision):
            *_, (verb, noun) = model(to_device(batch, device), recognise=True)
        verb, noun = verb[ok.to(verb.device)].cpu().float(), noun[ok.to(noun.device)].cpu().float()
        n = verb.shape[1]
        targets = {key: batch[key][ok][:, -n:] for key in SEGMENT_LABELS}
        loss = recognition_loss(verb, noun, targets, reduction="sum")
        verb_hits = (verb.argmax(-1) == targets[SEGMENT_LABELS[0]]).sum()
        noun_hits = (noun.argmax(-1) == targets[SEGMENT_LABELS[1]]).sum()
        totals += torch.tensor([float(loss), float(verb_hits), float(noun_hits), verb.shape[0] * n], dtype=totals.dtype)
    model.train(was_training)
    if torch.distributed.is_initialized():
        totals = totals.to(device)
        torch.distributed.all_reduce(totals)
        totals = totals.cpu()
    count = max(float(totals[3]), 1.0)
    return {"loss": float(totals[0]) / count, "verb": float(totals[1]) / count, "noun": float(totals[2]) / count}
