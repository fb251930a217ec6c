"""open_clip encoders from local weight files, and the cached text prompt bank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ego4d_lta.base.errors import UserError
from ego4d_lta.models.clip import TINY_CLIP, ClipEncoder, random_clip, save_weights
from ego4d_lta.models.prompts import (
    GROUPS,
    TEMPLATES,
    cached_bank,
    clean_name,
    load_places,
    load_scenarios,
    vocabulary,
)


@pytest.fixture(scope="module")
def encoder(tiny_weights: dict[str, Path]) -> ClipEncoder:
    return ClipEncoder(TINY_CLIP, weights=tiny_weights["clip"])


def test_weights_file_round_trip_and_unit_norm_embeddings(encoder: ClipEncoder, tmp_path: Path) -> None:
    assert (encoder.image_size, encoder.embed_dim) == (32, 64)
    assert encoder.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))  # CLIP's, not SlowFast's 0.45
    x = torch.randn(2, 8, 3, 32, 32)
    emb = encoder.encode_frames(x)
    assert emb.shape == (2, 8, 64)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2, 8))
    save_weights(encoder, tmp_path / "copy.pt")
    torch.testing.assert_close(ClipEncoder(TINY_CLIP, weights=tmp_path / "copy.pt").encode_frames(x), emb)
    other = random_clip(TINY_CLIP, seed=5)
    assert not torch.allclose(other.encode_frames(x), emb), "weights must change the embeddings"
    encoder.train()
    assert not encoder.model.training, "a frozen encoder stays in eval mode"


def test_clear_errors_for_bad_names_and_files(tmp_path: Path, tiny_weights: dict[str, Path]) -> None:
    with pytest.raises(UserError, match="'ViT-X-99' is not an open_clip model name"):
        ClipEncoder("ViT-X-99", weights=tiny_weights["clip"])
    with pytest.raises(UserError, match=r"nope\.pt: CLIP weights file not found"):
        ClipEncoder(TINY_CLIP, weights=tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match=f"junk.pt: cannot load {TINY_CLIP} weights"):
        ClipEncoder(TINY_CLIP, weights=tmp_path / "junk.pt")
    with pytest.raises(UserError, match=r"clip_tiny\.pt: (not|cannot load) RN50 weights"):
        ClipEncoder("RN50", weights=tiny_weights["clip"])


def test_names_become_words(shared_data: Path) -> None:
    taxonomy = json.loads((shared_data / "fho_lta_taxonomy_v1.json").read_text())
    assert clean_name("take_(pick,_grab,_get)") == "take"
    assert clean_name("bat_(sports)") == "bat (sports)"
    assert clean_name("chopping_board") == "chopping board"
    assert clean_name("/a/arena/hockey") == "arena hockey"
    cleaned = [clean_name(n) for n in taxonomy["verbs"] + taxonomy["nouns"]]
    assert all(c and "_" not in c and "," not in c for c in cleaned)
    assert len(set(clean_name(n) for n in taxonomy["nouns"])) == len(taxonomy["nouns"])  # nouns stay distinct
    places = load_places()
    assert len(places) == 365 and places[0] == "airfield"
    assert load_scenarios(shared_data / "ego4d_scenarios.json")[:2] == [
        "Reading books",
        "Gaming arcade / pool / billiards",
    ]


def test_prompt_bank_is_encoded_once_and_keyed_by_vocabulary(encoder: ClipEncoder, tmp_path: Path) -> None:
    vocab = vocabulary(["take_(pick)", "cut"], ["knife", "bat_(sports)", "apple"], ["Cooking"], ["kitchen"])
    bank, path = cached_bank(tmp_path, encoder, "sha-a", vocab)
    assert {g: bank.embeddings[g].shape for g in GROUPS} == {
        "verb": (2, 64),
        "noun": (3, 64),
        "scenario": (1, 64),
        "place": (1, 64),
    }
    expected = encoder.encode_texts([t.format("bat (sports)") for t in TEMPLATES["noun"]]).mean(0)
    np.testing.assert_allclose(bank.embeddings["noun"][1], (expected / expected.norm()).numpy(), atol=1e-5)

    class Refuses:  # a second request must come from disk, not the encoder
        model_name, embed_dim = encoder.model_name, encoder.embed_dim

        def encode_texts(self, texts: list[str]) -> torch.Tensor:
            raise AssertionError("re-encoded a cached bank")

    again, path2 = cached_bank(tmp_path, Refuses(), "sha-a", vocab)
    assert path2 == path and again.names == vocab
    np.testing.assert_array_equal(again.embeddings["verb"], bank.embeddings["verb"])
    _, other = cached_bank(tmp_path, encoder, "sha-a", {**vocab, "place": ["kitchen", "garage"]})
    _, other_weights = cached_bank(tmp_path, encoder, "sha-b", vocab)
    assert len({path, other, other_weights}) == 3
