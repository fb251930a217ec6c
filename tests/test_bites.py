"""Tests that compare with values computed here by hand, not with the code under test: each one failed with a
one-line bug of its kind planted (issue 25, item 6; see each docstring)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_labels import CYCLE, write_dataset

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.config import load_config
from ego4d_lta.data.label_windows import LabelWindows, load_recognitions
from ego4d_lta.data.released_features import row_count, row_windows, segment_spans
from ego4d_lta.models.decoder import sample_sequences
from ego4d_lta.runtime.checkpoint import restore_rng
from ego4d_lta.runtime.distributed import world_info_from_env
from ego4d_lta.runtime.training import make_optimizer, warmup_cosine

DRAWS = 40_000


def _rows_by_hand(n: int, window: int, stride: int) -> list[tuple[int, int]]:
    """Every regular window [t*S, t*S + W) inside the video, then one ending at N if the last regular one does not."""
    if n < window:
        return [(0, n)]
    rows = [(s, s + window) for s in range(0, n - window + 1, stride)]
    return rows if rows[-1][1] == n else [*rows, (n - window, n)]


@pytest.mark.parametrize("stride", [5, 7, 16, 24])
def test_released_rows_match_windows_enumerated_by_hand(stride: int) -> None:
    """Planted: the last-row rule with `num_frames % stride` (right only when the stride divides 32)."""
    for n in range(1, 200):
        expected = _rows_by_hand(n, 32, stride)
        assert row_count(n, 32, stride) == len(expected), (n, stride)
        starts, ends = row_windows(len(expected), n, 32, stride)
        assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == expected, (n, stride)


def test_short_segments_take_the_row_whose_centre_is_nearest() -> None:
    """Planted: the nearest-row rule for short segments written with `window // 2` (segments of 16-31 frames)."""
    starts, ends = row_windows(row_count(300), 300)
    centres = (starts + ends) / 2
    for length in range(1, 40):
        a = np.arange(0, 300 - length, 3)
        first, last, nearest, _ = segment_spans(a, a + length, starts, ends)
        for i, s in enumerate(a.tolist()):
            if length < 32:
                pick = int(np.argmin(np.abs(centres - (s + s + length) / 2)))  # ties: argmin takes the earlier
                assert nearest[i] and first[i] == last[i] == pick, (s, length)
            else:
                overlapping = [r for r in range(len(starts)) if starts[r] < s + length and ends[r] > s]
                assert not nearest[i] and (first[i], last[i]) == (overlapping[0], overlapping[-1]), (s, length)


def test_a_label_window_is_known_only_when_all_its_observed_segments_are(tmp_path: Path) -> None:
    """Planted: a window counted as known when *any* observed segment is recognised."""
    data = write_dataset(tmp_path, {"train": {"t": 0}, "val": {"v": 0}, "test": {}})
    table, tax = load_annotations(data / "annotations", "val")
    windows = make_windows(table, include_extra=False)
    known = {10, 11, 12, 13, 14, 15, 16, 17, 20}  # action indices the recognitions file covers
    path = tmp_path / "r.json"
    path.write_text(json.dumps({f"v_{i}": {"verb": 0, "noun": 0} for i in known}))
    data_set = LabelWindows(table, windows, None, load_recognitions(path, tax), annotations=False)
    idx = table["action_idx"].to_numpy()
    expected = [all(int(idx[r]) in known for r in obs) for obs in windows.observed]
    assert data_set.available.tolist() == expected and any(expected) and not all(expected)


def _softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    e = np.exp((logits - logits.max()) / temperature)
    return e / e.sum()


def _draws(logits: torch.Tensor, strategy: str, temperature: float, top_p: float) -> np.ndarray:
    noise = torch.from_numpy(np.random.default_rng(0).random((1, DRAWS, 1)))  # (B, K, Z) uniforms
    ids = sample_sequences(logits.view(1, 1, -1), noise, strategy, temperature, top_p)
    return np.bincount(ids.flatten().numpy(), minlength=logits.numel()) / DRAWS


LOGITS = torch.tensor([2.0, 1.5, 1.0, 0.2, -0.5, -1.0])


def test_iid_ignores_temperature_and_top_p() -> None:
    """Planted: the iid strategy honouring the temperature and top-p it must ignore."""
    freq = _draws(LOGITS, "iid", temperature=0.3, top_p=0.5)
    np.testing.assert_allclose(freq, _softmax(LOGITS.numpy()), atol=0.01)


def test_nucleus_draws_follow_the_renormalised_kept_mass() -> None:
    """Planted: nucleus sampling without rescaling the noise to the kept mass (the last kept class too often)."""
    p = _softmax(LOGITS.numpy(), 0.8)
    order = np.argsort(-p)
    before = np.cumsum(p[order]) - p[order]
    kept = order[before < 0.7]  # by hand: classes whose higher-ranked mass is below top-p
    expected = np.zeros_like(p)
    expected[kept] = p[kept] / p[kept].sum()
    np.testing.assert_allclose(_draws(LOGITS, "nucleus", 0.8, 0.7), expected, atol=0.01)


def test_warmup_then_cosine_by_hand() -> None:
    """Planted: the warm-up learning rate off by one step (step 0 must already train: 1/W of the peak)."""
    f = warmup_cosine(4, 12)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    for s in range(4, 13):
        assert f(s) == pytest.approx(0.5 * (1 + math.cos(math.pi * (s - 4) / 8)), abs=1e-9), s


def test_weight_decay_only_on_weight_matrices() -> None:
    """Planted: weight decay applied to biases and norms."""
    from ego4d_lta.models.forecaster import FeatureDims, build_forecaster

    cfg = load_config("labels")
    model = build_forecaster(cfg.model, FeatureDims(), 6, 5)
    model = torch.nn.Sequential(model, torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))  # a norm for sure
    opt = make_optimizer(model, cfg, 1e-3)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    norms = (torch.nn.LayerNorm, torch.nn.BatchNorm1d, torch.nn.GroupNorm)
    no_decay = {id(p) for m in model.modules() if isinstance(m, norms) for p in m.parameters(recurse=False)}
    no_decay |= {id(p) for name, p in model.named_parameters() if name.endswith("bias") or p.ndim < 2}
    everything = {id(p) for p in model.parameters() if p.requires_grad}
    assert decayed == everything - no_decay and decayed
    assert cfg.optim.weight_decay > 0


def test_every_rank_resumes_with_its_own_rng_state() -> None:
    """Planted: every rank resuming with rank 0's RNG state (dropout masks then repeat across ranks)."""
    states = []
    for seed in range(3):
        torch.manual_seed(100 + seed)
        states.append({"torch": torch.get_rng_state()})
    for rank in range(3):
        assert restore_rng(SimpleNamespace(rng=states), rank, 3, torch.device("cpu"))
        got = torch.rand(4)
        torch.manual_seed(100 + rank)
        assert torch.equal(got, torch.rand(4)), rank


def test_master_addr_from_the_environment_is_used() -> None:
    """Planted: MASTER_ADDR from the environment ignored."""
    torchrun = {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "1234"}
    assert world_info_from_env(torchrun).master_addr == "10.1.2.3"
    slurm = {"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_JOB_NODELIST": "gpu[1-2]"}
    assert world_info_from_env(slurm).master_addr == "gpu1"
    assert world_info_from_env(slurm | {"MASTER_ADDR": "10.9.9.9"}).master_addr == "10.9.9.9"


def test_set_wins_over_the_recipe() -> None:
    """Planted: `--set` applied before `--recipe` (the recipe then silently undoes it)."""
    cfg = load_config("tiny", ["optim.warmup_steps=7", "train.batch_size=32"], recipe="report")
    assert (cfg.optim.warmup_steps, cfg.train.batch_size) == (7, 32)
    assert load_config("tiny", recipe="report").optim.warmup_steps == 1000  # what the recipe alone gives


def _labels_run(data: Path, run: Path, clip: float) -> dict[str, torch.Tensor]:
    from ego4d_lta.stages.train import train

    sets = ["train.epochs=1", "train.batch_size=16", "optim.base_batch=16", "optim.warmup_steps=0",
            "train.stop_after=1", f"optim.grad_clip={clip}", "model.dropout=0"]  # fmt: skip
    cfg = load_config("labels", sets)
    cfg.data.data_dir = str(data)
    train(cfg, run, device="cpu", progress=False, log=())
    return torch.load(run / "last.pt", weights_only=False)["model"]


def test_training_pairs_and_clipping(tmp_path: Path) -> None:
    """Planted: the joint-decoding pairs taken from the val windows; gradient clipping after `optimizer.step()`.

    The pairs are those of the train annotation file, counted here (val holds one pair train never has). Adam's
    first step moves every parameter with a gradient by lr * g / (|g| + eps): clipping the gradient norm to 1e-12
    first makes that ~1e-4 lr, so the clipped and unclipped runs (same seed) differ by about lr."""
    data = write_dataset(tmp_path / "d", {"train": {f"t{c}": c for c in range(6)}, "val": {"v0": 0}, "test": {}})
    val_file = data / "annotations" / "fho_lta_val.json"
    doc = json.loads(val_file.read_text())
    doc["clips"][5] |= {"verb_label": 5, "noun_label": 4}
    val_file.write_text(json.dumps(doc))
    train_doc = json.loads((data / "annotations" / "fho_lta_train.json").read_text())
    pairs = sorted({(c["verb_label"], c["noun_label"]) for c in train_doc["clips"]})
    assert pairs == sorted(CYCLE)
    free = _labels_run(data, tmp_path / "free", 0.0)
    clipped = _labels_run(data, tmp_path / "clipped", 1e-12)
    assert free["decoder.pairs"].tolist() == [list(p) for p in pairs]
    lr = load_config("labels").optim.lr
    moved = [(free[k] - clipped[k]).abs().max().item() for k in free if free[k].is_floating_point() and free[k].numel()]
    assert max(moved) == pytest.approx(lr, rel=0.05), moved
