"""Ego4D's released feature sets by name (no numpy: the CLI's `--set` choices come from here at start-up).

Which rows of a video's tensor a segment pools is `released_features.py`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

FPS = 30
"""Ego4D's canonical videos are all 30 fps."""


@dataclass(frozen=True)
class FeatureSet:
    """One set of Ego4D's released features, as the Ego4D CLI names it (`--datasets NAME`)."""

    name: str
    array: str
    """The feature cache array it fills (`slowfast`, `omnivore`), i.e. the model part that reads it."""
    dim: int
    window: int = 32
    stride: int = 16
    fps: int = FPS
    max_abs: float = 1e4
    """The largest |value| a row may hold: a generous bound (Ego4D's released rows are pooled activations of
    order 1-10; the synthetic ones stay below 20) that a corrupted file (bytes overwritten, float32 read as
    something else: values of 1e30 and more) exceeds."""


RELEASED_SETS = {
    s.name: s
    for s in (
        FeatureSet("slowfast8x8_r101_k400", "slowfast", 2304),
        FeatureSet("omnivore_video_swinl", "omnivore", 1536),
        FeatureSet("omnivore_video_swinl_fp16", "omnivore", 1536),
    )
}
"""Window and stride from the Ego4D docs' features table (ego4d-data.org/docs/data/features): 32 / 16 for all
three (features re-extracted 2022-06-07). The stride 6 of older docs and of `omnivore_video.yaml` belongs to the
deprecated `omnivore_video` (Swin-B) set; `import-features --stride` covers a download made otherwise."""


def released_tag(set_name: str) -> str:
    """The cache folder of an imported set under FEATURES_DIR (beside `extract`'s `slowfast_r101+ViT-B-16`)."""
    return f"ego4d-{set_name}"


SET_NAMES = tuple(RELEASED_SETS)
"""The sets' names, the first one the default of `import-features --set` and `synth --features-set`."""
