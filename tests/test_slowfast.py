"""SlowFast R101 8x8: the official Ego4D checkpoint keys map onto pytorchvideo's create_slowfast exactly."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from ego4d_lta.base.errors import UserError
from ego4d_lta.models.slowfast import (
    SLOWFAST_PRESETS,
    SlowFastConfig,
    SlowFastEncoder,
    freeze,
    load_weights,
    official_to_pytorchvideo,
    save_weights,
)


def table(shared_data: Path) -> list[dict[str, str]]:
    with open(shared_data / "slowfast_r101_8x8_keys.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def official_state(rows: list[dict[str, str]], prefix: str) -> dict[str, torch.Tensor]:
    """A tensor under every official key of one checkpoint, each filled with its own value (its row number).

    Distinct values catch any two tensors of one shape swapped by the mapping; expanded scalars keep the
    checkpoint file a few kilobytes instead of 250 MB.
    """
    state = {}
    for n, row in enumerate(rows, start=1):
        if not row["official_key"].startswith(prefix):
            continue
        shape = json.loads(row["shape"])
        if row["official_key"].endswith("num_batches_tracked"):
            state[row["official_key"]] = torch.tensor(n)
        else:
            state[row["official_key"]] = torch.tensor(n / 7, dtype=torch.float32).expand(shape)
    return state


@pytest.fixture(scope="module")
def rows(shared_data: Path) -> list[dict[str, str]]:
    return table(shared_data)


def expected_tensor(row: dict[str, str], mapped: dict[str, torch.Tensor]) -> torch.Tensor:
    """The mapped tensor the table row names (a `[a:b]` suffix is a row slice of the concatenated head)."""
    m = re.match(r"^(.*)\[(\d+):(\d+)\]$", row["pytorchvideo_key"])
    return mapped[m.group(1)][int(m.group(2)) : int(m.group(3))] if m else mapped[row["pytorchvideo_key"]]


def test_lta_checkpoint_file_loads_tensor_for_tensor(rows: list[dict[str, str]], tmp_path: Path) -> None:
    """Every row of the key table for lta_slowfast_trf.ckpt lands on its pytorchvideo tensor, through the file."""
    state = official_state(rows, "model.")
    path = tmp_path / "lta_slowfast_trf.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"cfg": "fvcore CfgNode"}, "epoch": 3}, path)
    encoder = SlowFastEncoder(SlowFastConfig())
    assert load_weights(encoder, path) == "official"
    ours = encoder.net.state_dict()
    lta = [r for r in rows if r["official_key"].startswith("model.backbone.") and r["pytorchvideo_key"] != "-"]
    for row in lta:
        assert torch.equal(expected_tensor(row, ours), state[row["official_key"]]), row["official_key"]
    assert len(lta) == 1272 + 2 == len(ours), "every backbone tensor and the 2304->2048 projection"
    assert encoder.feature_dim == 2304


def test_recognition_checkpoint_keys_map_and_heads_stack(rows: list[dict[str, str]]) -> None:
    """ego4d_slowfast8x8.ckpt: prefix `model.`, verb and noun Linears concatenated into one 593-row head."""
    state = official_state(rows, "model.")
    recognition = {k: v for k, v in state.items() if not k.startswith(("model.backbone.", "model.clip_", "model.dec"))}
    backbone, head = official_to_pytorchvideo(recognition)
    mapped = {**backbone, **head}
    own = [r for r in rows if r["official_key"] in recognition and r["pytorchvideo_key"] != "-"]
    for row in own:
        assert torch.equal(expected_tensor(row, mapped), state[row["official_key"]]), row["official_key"]
    assert len(backbone) == 1272 and head["blocks.6.proj.weight"].shape == (593, 2304) and len(own) == 1276


def test_features_are_the_pooled_vector_before_the_heads_linear() -> None:
    torch.manual_seed(0)
    encoder = freeze(SlowFastEncoder(SLOWFAST_PRESETS["tiny"], num_frames=32, crop_size=64))
    x = [torch.randn(2, 3, 8, 64, 64), torch.randn(2, 3, 32, 64, 64)]
    with torch.no_grad():
        features = encoder(x)
        logits = encoder.net([t.clone() for t in x])
    proj = encoder.net.blocks[6].proj
    assert features.shape == (2, SLOWFAST_PRESETS["tiny"].feature_dim) == (2, 288)
    torch.testing.assert_close(proj(features), logits, atol=1e-5, rtol=1e-4)
    assert x[0].shape == (2, 3, 8, 64, 64), "the caller's list must not be overwritten"


def test_frozen_means_eval_batchnorm_statistics_do_not_move() -> None:
    encoder = freeze(SlowFastEncoder(SLOWFAST_PRESETS["tiny"], num_frames=32, crop_size=64))
    before = {k: v.clone() for k, v in encoder.state_dict().items() if "running_mean" in k}
    encoder([torch.randn(2, 3, 8, 64, 64) * 5 + 3, torch.randn(2, 3, 32, 64, 64) * 5 + 3])
    after = encoder.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert not any(p.requires_grad for p in encoder.parameters())


def test_own_checkpoint_round_trip_and_clear_errors(tmp_path: Path, tiny_weights: dict[str, Path]) -> None:
    a = SlowFastEncoder(SLOWFAST_PRESETS["tiny"], 32, 64)
    assert load_weights(a, tiny_weights["slowfast"]) == "ego4d-lta"
    save_weights(a, tmp_path / "again.pt")
    b = SlowFastEncoder(SLOWFAST_PRESETS["tiny"], 32, 64)
    load_weights(b, tmp_path / "again.pt")
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())

    with pytest.raises(UserError, match=r"missing.pt: SlowFast weights file not found"):
        load_weights(a, tmp_path / "missing.pt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"junk.ckpt: not a torch checkpoint"):
        load_weights(a, tmp_path / "junk.ckpt")
    torch.save({"state_dict": {"model.s1.pathway0_stem.conv.weight": torch.zeros(64, 3, 1, 7, 7)}}, tmp_path / "p.ckpt")
    with pytest.raises(UserError, match=r"p.ckpt: \d+ SlowFast tensors missing, first 'blocks"):
        load_weights(a, tmp_path / "p.ckpt")
    torch.save({"state_dict": {"model.foo": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(UserError, match=r"other.ckpt: key 'state_dict': no SlowFast backbone keys"):
        load_weights(a, tmp_path / "other.ckpt")
    wide_cfg = SlowFastConfig(depth=18)  # same classes and depth, other widths: every shape differs from tiny
    save_weights(SlowFastEncoder(wide_cfg, 32, 64), tmp_path / "wide.pt")
    with pytest.raises(UserError, match=r"wide.pt: tensor 'blocks.0.*' has shape \[64, 3, 1, 7, 7\], the model needs"):
        load_weights(a, tmp_path / "wide.pt")


class _RunsCode:
    """What a crafted checkpoint pickles: unpickling it would run `touch`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_slowfast_file_cannot_run_code(tmp_path: Path) -> None:
    """Official .ckpt files pickle a config beside the tensors: it is read as an inert stand-in, never run."""
    from ego4d_lta.models.inert_unpickle import Inert, load_tensors

    marker = tmp_path / "ran"
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {"model.foo": torch.ones(2)}, "hyper_parameters": _RunsCode(marker)}, path)
    payload = load_tensors(path)
    assert isinstance(payload["hyper_parameters"], Inert) and not marker.exists()
    assert torch.equal(payload["state_dict"]["model.foo"], torch.ones(2))
    with pytest.raises(UserError):  # and the loader refuses it as SlowFast weights, still without running it
        load_weights(SlowFastEncoder(SLOWFAST_PRESETS["tiny"], 32, 64), path)
    assert not marker.exists()
