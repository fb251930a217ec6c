"""The CLIP text prompt bank: every verb, noun, scenario and place as a unit-norm text embedding.

The fork re-encoded its prompts on every forward pass; here they are encoded once per (CLIP model, weights,
vocabulary) and cached on disk as an `.npz` (no pickle). Verb and noun names come from the dataset's taxonomy,
places from the Places365 list the package ships, and scenarios from a file the user points to (Ego4D's
scenario list is not ours to ship; `ego4d-lta synth` writes one for its own scenarios).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ego4d_lta.base.durable import atomic_target
from ego4d_lta.base.errors import UserError

GROUPS = ("verb", "noun", "scenario", "place")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "verb": ("a photo of a person who is about to {}.", "a first-person photo of hands that {} something."),
    "noun": ("There is a {} in the scene.", "The person is using {}."),  # the CLIP fork's two noun templates
    "scenario": ("a first-person photo of {}.",),
    "place": ("a photo of a {}.",),
}
"""Each name's embedding is the normalised mean over its templates (CLIP's prompt ensembling)."""

PLACES_FILE = Path(__file__).with_name("vocab") / "places365.txt"


def clean_name(name: str) -> str:
    """A taxonomy or Places365 name as words: `take_(pick,_grab)` -> `take`, `bat_(sports)` -> `bat (sports)`.

    A single word in parentheses qualifies the name and is kept; a list of synonyms is dropped.
    """
    name = re.sub(r"^/[a-z]/", "", name.strip())
    m = re.match(r"^(.*?)_?\((.*)\)[,]?$", name)
    if m:
        head, inner = m.group(1), m.group(2)
        items = [i for i in inner.replace("_", " ").split(",") if i.strip()]
        name = f"{head} ({items[0].strip()})" if len(items) == 1 else head
    return " ".join(name.replace("_", " ").replace("/", " ").split())


def load_places(path: Path = PLACES_FILE) -> list[str]:
    """Places365 category names (one per line; `#` comments and an `id` column are ignored)."""
    lines = [line.split()[0] for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return lines


def load_scenarios(path: Path | str | None) -> list[str]:
    """Scenario names from `{"id": name}` JSON (Ego4D's scenario taxonomy), a JSON list, or one per line."""
    if path is None:
        return []
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: scenario list not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if isinstance(doc, dict):
            try:
                return [str(doc[k]) for k in sorted(doc, key=int)]
            except ValueError:
                raise UserError(f"{path}: keys must be scenario ids (integers as strings)") from None
        if isinstance(doc, list) and all(isinstance(x, str) for x in doc):
            return list(doc)
        raise UserError(f'{path}: expected {{"id": name}} or a list of names')
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@dataclass
class PromptBank:
    """Names and (n, D) unit-norm float32 embeddings for each group."""

    names: dict[str, list[str]]
    embeddings: dict[str, np.ndarray]
    key: str

    def save(self, path: Path) -> None:
        arrays = {f"emb_{g}": self.embeddings[g] for g in GROUPS}
        with atomic_target(path, suffix=".npz") as tmp:  # per process: shards of an array job race here
            np.savez(tmp, names=np.array(json.dumps(self.names)), key=np.array(self.key), **arrays)

    @classmethod
    def load(cls, path: Path) -> PromptBank:
        with np.load(path, allow_pickle=False) as z:
            names = json.loads(str(z["names"]))
            return cls(names=names, embeddings={g: z[f"emb_{g}"] for g in GROUPS}, key=str(z["key"]))


def vocabulary(verbs: list[str], nouns: list[str], scenarios: list[str], places: list[str]) -> dict[str, list[str]]:
    """The raw names of each group, in class-id order."""
    return {"verb": list(verbs), "noun": list(nouns), "scenario": list(scenarios), "place": list(places)}


def bank_key(model_name: str, weights_id: str, vocab: dict[str, list[str]]) -> str:
    """What a bank depends on: the model, its weights and every name and template."""
    h = hashlib.sha256(json.dumps([model_name, weights_id, vocab, TEMPLATES], sort_keys=True).encode())
    return h.hexdigest()[:16]


def build_bank(encoder, vocab: dict[str, list[str]], key: str) -> PromptBank:  # encoder: ClipEncoder
    """Encode every name with every template of its group (one batched pass per group)."""
    embeddings = {}
    for group in GROUPS:
        names = [clean_name(n) for n in vocab[group]]
        templates = TEMPLATES[group]
        if not names:
            embeddings[group] = np.zeros((0, encoder.embed_dim), np.float32)
            continue
        texts = [t.format(n) for n in names for t in templates]
        emb = encoder.encode_texts(texts).view(len(names), len(templates), -1).mean(1)
        embeddings[group] = (emb / emb.norm(dim=-1, keepdim=True)).cpu().numpy().astype(np.float32)
    return PromptBank(names=vocab, embeddings=embeddings, key=key)


def cached_bank(cache_dir: Path, encoder, weights_id: str, vocab: dict[str, list[str]]) -> tuple[PromptBank, Path]:
    """The bank for this model, weights and vocabulary: read from `cache_dir` if there, else built and stored."""
    key = bank_key(encoder.model_name, weights_id, vocab)
    path = cache_dir / f"prompts-{encoder.model_name}-{key}.npz"
    if path.is_file():
        bank = PromptBank.load(path)
        if bank.key == key and bank.names == vocab:
            return bank, path
    bank = build_bank(encoder, vocab, key)
    bank.save(path)
    return bank, path
