"""What a feature cache holds, as typed records: the one reader and writer of `manifest.json`.

`FeatureRecord` says which encoders, weights and sampling made the features (it must agree between the splits
of a run and with its checkpoint); `CacheManifest` adds what one split's cache is (its annotations, views,
shards, prompt bank).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ego4d_lta.base.errors import UserError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class SlowFastFeatures:
    preset: str
    """A SLOWFAST_PRESETS name (r101, tiny, ...)."""
    weights_sha256: str
    dim: int
    weights_kind: str = ""
    """How the weights file was read (ego4d / lta / ego4d-lta)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The SlowFast architecture, as built."""


@dataclass(frozen=True)
class ClipFeatures:
    model: str
    """The open_clip model name."""
    weights_sha256: str | None
    pretrained: str | None
    """The open_clip tag, when no weights file was given."""
    dim: int
    frames: int
    """CLIP images per segment."""
    image_size: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


@dataclass(frozen=True)
class ReleasedFeatures:
    """Rows of one of Ego4D's released per-video feature sets, pooled per segment by `import-features`."""

    set: str
    """The set as the Ego4D CLI names it (slowfast8x8_r101_k400, omnivore_video_swinl, ...)."""
    array: str
    """The cache array it fills: slowfast or omnivore."""
    dim: int
    fps: int
    window: int
    stride: int
    pooling: str
    last_row: str
    """Where the back-shifted last row was placed: at the video's end (frame counts known) or its regular place."""


IDENTITY = {
    "slowfast": ("preset", "weights_sha256", "dim"),
    "clip": ("model", "weights_sha256", "pretrained", "dim", "frames", "image_size"),
    "released": ("set", "array", "dim", "fps", "window", "stride", "pooling", "last_row"),
}
"""The fields that make two caches (or a cache and a checkpoint) interchangeable; sampling counts too."""


@dataclass(frozen=True)
class FeatureRecord:
    """`extract` records slowfast + clip + sampling; `import-features` records `released` alone, or with the clip
    and sampling of an `extract` cache whose CLIP part joins it (`data/combined_cache.py`)."""

    slowfast: SlowFastFeatures | None
    clip: ClipFeatures | None
    sampling: dict[str, Any]
    """The SamplingConfig the segments were cut with (JSON form)."""
    released: ReleasedFeatures | None = None

    @property
    def arrays(self) -> tuple[str, ...]:
        """The feature cache arrays these features fill."""
        names = ("slowfast",) if self.slowfast else ()
        names += (self.released.array,) if self.released else ()
        return names + (("clip",) if self.clip else ())

    def to_json(self) -> dict[str, Any]:
        doc = {
            "slowfast": asdict(self.slowfast) if self.slowfast else None,
            "clip": asdict(self.clip) if self.clip else None,
            "sampling": dict(self.sampling),
        }
        if self.released:  # only then: the records of `extract` caches and checkpoints stay as they were
            doc["released"] = asdict(self.released)
        return json.loads(json.dumps(doc))  # tuples as lists: equal to what a reader of the file gets

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str) -> FeatureRecord:
        try:
            sf, cl, rel = doc["slowfast"], doc["clip"], doc.get("released")
            if cl is not None:
                cl = dict(cl)
                cl["mean"], cl["std"] = tuple(cl.get("mean", ())), tuple(cl.get("std", ()))
            return cls(
                SlowFastFeatures(**sf) if sf is not None else None,
                ClipFeatures(**cl) if cl is not None else None,
                dict(doc["sampling"]),
                ReleasedFeatures(**rel) if rel is not None else None,
            )
        except (KeyError, TypeError) as e:
            raise UserError(f"{where}: not a feature record of this ego4d-lta ({type(e).__name__}: {e})") from None

    def check_same(self, other: FeatureRecord, where: str) -> None:
        """One line naming the first difference (e.g. other SlowFast weights between train and val)."""
        mine, theirs = self.to_json(), other.to_json()
        for section, keys in IDENTITY.items():
            if (mine.get(section) is None) != (theirs.get(section) is None):
                there = "absent" if theirs.get(section) is None else "present"
                raise UserError(
                    f"{where}: features of another kind ({section} features {there} there); use features made the "
                    "same way for every split and the checkpoint"
                )
            if mine.get(section) is None:
                continue
            for key in keys:
                if theirs[section].get(key) != mine[section].get(key):
                    raise UserError(
                        f"{where}: features made with {section}.{key}={theirs[section].get(key)!r}, "
                        f"expected {mine[section].get(key)!r}; re-extract with the same encoders"
                    )
        for key, value in self.sampling.items():
            if other.sampling.get(key) != value:
                raise UserError(
                    f"{where}: features made with sampling.{key}={other.sampling.get(key)!r}, expected {value!r}; "
                    "re-extract with the same encoders"
                )


@dataclass(frozen=True)
class CacheManifest:
    """`<split>/manifest.json`: the record, and what this split's cache is."""

    record: FeatureRecord
    split: str
    annotations_sha256: str
    views: int = 1
    """Windows per segment: the centre, then random positions (train only)."""
    augment: bool = False
    """Views 1.. were also randomly scaled, cropped and flipped (`extract --augment`); view 0 is the centre crop."""
    seed: int = 0
    shards: int = 1
    limit: int | None = None
    """Only the first clips of each shard were asked for (a smoke run)."""
    prompt_bank: str = ""
    """File name of the CLIP prompt bank beside the split folders."""
    package: str = ""
    """The ego4d-lta release that wrote it: recorded, never compared."""
    weights_origin: str = ""
    """How the encoder weights were made when ego4d-lta made them (`extract --encoders tiny` without files: seeded
    random init, saved beside the cache); empty for weights the user passed. The record's sha256s identify them."""
    format: int = FORMAT_VERSION
    dtype: str = "float16"
    clip_embeddings: str = "unit-norm"
    made_by: str = "extract"
    """The command that writes this cache (`extract`, `import-features`): what to rerun for a missing shard."""

    def to_json(self) -> dict[str, Any]:
        doc = {k: v for k, v in asdict(self).items() if k != "record"}
        return {**doc, **self.record.to_json()}

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str) -> CacheManifest:
        if not isinstance(doc, dict):
            raise UserError(f"{where}: not a feature cache manifest (a JSON object)")
        if doc.get("format", 0) > FORMAT_VERSION:
            raise UserError(f"{where}: cache format {doc['format']} is newer than this ego4d-lta ({FORMAT_VERSION})")
        record = FeatureRecord.from_json(doc, where)
        rest = {k: doc[k] for k in doc if k not in ("slowfast", "clip", "sampling", "released")}
        try:
            return cls(record=record, **rest)
        except TypeError as e:
            raise UserError(f"{where}: not a feature cache manifest of this ego4d-lta ({e})") from None

    @classmethod
    def read(cls, path: Path) -> CacheManifest:
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not valid JSON ({e.msg})") from None
        return cls.from_json(doc, str(path))
