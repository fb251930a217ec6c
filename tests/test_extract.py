"""`ego4d-lta extract`: the feature cache, built from one decoding pass per clip, resumable and checked."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import hold_env, subset_dataset

from ego4d_lta.base.hashing import file_digest
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.cli import main
from ego4d_lta.data.feature_cache import FeatureCache, FeatureCacheError
from ego4d_lta.data.feature_record import CacheManifest
from ego4d_lta.data.video import clip_input, decode_frames, frame_indices, probe, slowfast_input, window_start
from ego4d_lta.models.clip import TINY_CLIP, ClipEncoder
from ego4d_lta.models.slowfast import SLOWFAST_PRESETS, SlowFastEncoder, freeze, load_weights
from ego4d_lta.runtime.encoder_config import ENCODER_PRESETS
from ego4d_lta.stages.extract import ExtractConfig, extract

TINY = ENCODER_PRESETS["tiny"]


def config(data: Path, features: Path, weights: dict[str, Path], **kw: object) -> ExtractConfig:
    base = ExtractConfig(
        data_dir=data,
        features_dir=features,
        split="val",
        encoders=TINY,
        slowfast_weights=weights["slowfast"],
        clip_weights=weights["clip"],
        workers=2,
        limit=2,
        progress=False,
    )
    return replace(base, **kw)


@pytest.fixture(scope="module")
def val_subset(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first two val clips: the first cut to 4 segments, the second whole (so a kill can land inside it)."""
    table, _ = load_annotations(synth_data / "annotations", "val")
    first, second = sorted(table["clip_uid"].unique())[:2]
    return subset_dataset(synth_data, tmp_path_factory.mktemp("val_subset"), "val", {first: 4, second: None})


@pytest.fixture(scope="module")
def reference(val_subset: Path, tiny_weights: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """Those two clips, extracted in one uninterrupted run with two decoding workers."""
    cfg = config(val_subset, tmp_path_factory.mktemp("features"), tiny_weights)
    return cfg, extract(cfg)


def test_cache_holds_every_segment_with_the_random_access_features(
    reference, val_subset: Path, tiny_weights: dict[str, Path]
) -> None:
    _cfg, summary = reference
    mine, _ = load_annotations(val_subset / "annotations", "val")
    cache = FeatureCache.open(summary.split_dir)
    assert summary.rows == len(mine) == len(cache) and summary.done_now == len(mine) and not summary.failed
    assert sorted(zip(cache.index["clip_uid"], cache.index["action_idx"], strict=False)) == sorted(
        zip(mine["clip_uid"], mine["action_idx"], strict=False)
    )
    assert cache.index["ok"].all()
    sf_dim, clip_dim = SLOWFAST_PRESETS["tiny"].feature_dim, 64
    assert cache.manifest.record.slowfast.dim == sf_dim and cache.manifest.record.clip.dim == clip_dim

    # recompute three segments through the per-segment random-access path: the one-pass cache must agree
    slowfast = SlowFastEncoder(SLOWFAST_PRESETS["tiny"], 32, 64)
    load_weights(slowfast, tiny_weights["slowfast"])
    freeze(slowfast)
    clip = ClipEncoder(TINY_CLIP, weights=tiny_weights["clip"])
    picks = mine.iloc[[0, len(mine) // 2, len(mine) - 1]]
    keys = list(zip(picks["clip_uid"], picks["action_idx"], strict=False))
    positions = cache.positions(keys)
    assert (positions >= 0).all() and cache.positions([("no-such-clip", 0)])[0] == -1
    got_sf, got_clip = cache.gather(positions, "slowfast"), cache.gather(positions, "clip")
    assert got_sf.shape == (3, sf_dim) and got_clip.shape == (3, 8, clip_dim)
    for n, (_, seg) in enumerate(picks.iterrows()):
        path = val_subset / "clips" / f"{seg.clip_uid}.mp4"
        info = probe(path)
        start = window_start((seg.start_sec, seg.end_sec), info.duration, TINY.sampling)
        frames = decode_frames(path, frame_indices(start, info.frames, TINY.sampling))
        with torch.no_grad():
            sf = slowfast([t[None] for t in slowfast_input(frames, TINY.sampling)])[0]
            cl = clip.encode_frames(clip_input(frames, clip.image_size, clip.mean, clip.std)[None])[0]
        np.testing.assert_allclose(got_sf[n], sf.numpy(), atol=2e-2, rtol=1e-2)
        np.testing.assert_allclose(got_clip[n], cl.numpy(), atol=2e-3)
    assert np.abs(got_sf[0] - got_sf[1]).max() > 1e-3, "different segments, different features"
    assert summary.bank.is_file() and summary.bank.parent == summary.split_dir.parent


def test_resume_after_a_kill(reference, val_subset: Path, tiny_weights: dict[str, Path], tmp_path: Path) -> None:
    ref_cfg, _ = reference
    features = tmp_path / "features"
    cmd = [
        sys.executable, "-m", "ego4d_lta", "extract", "--split", "val", "--data", str(val_subset),
        "--features", str(features), "--encoders", "tiny", "--slowfast-weights", str(tiny_weights["slowfast"]),
        "--clip-weights", str(tiny_weights["clip"]), "--limit", "2", "--workers", "0", "--batch-size", "4", "-q",
    ]  # fmt: skip
    progress = features / TINY.tag / "val" / "shard-000-of-001" / "progress.jsonl"
    # The extraction waits after its first clip (tests/hold/sitecustomize.py): the kill lands mid-run on any machine.
    env = os.environ | hold_env("extract")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 600
    while not (progress.is_file() and progress.read_text().count("\n") >= 1):
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "extraction made no progress"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    assert "[hold] extract: waiting" in proc.communicate()[1].decode()
    split_dir = features / TINY.tag / "val"
    with pytest.raises(FeatureCacheError, match=r"shard 0/1 is not finished \(1 clips done\)"):
        FeatureCache.open(split_dir)
    first_clip = json.loads(progress.read_text().splitlines()[0])["clip"]

    summary = extract(config(val_subset, features, tiny_weights, workers=0))
    resumed, ref = FeatureCache.open(split_dir), FeatureCache.open(ref_cfg.features_dir / TINY.tag / "val")
    assert summary.done_now == int((resumed.index["clip_uid"] != first_clip).sum()) < len(resumed)
    for name in ("slowfast", "clip"):
        np.testing.assert_allclose(
            resumed.gather(np.arange(len(resumed)), name), ref.gather(np.arange(len(ref)), name), atol=2e-2
        )


def test_stale_cache_is_refused(reference, val_subset: Path, tiny_weights: dict[str, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    cfg, summary = reference
    manifest = json.loads((summary.split_dir / "manifest.json").read_text())
    changed = {**manifest, "sampling": {**manifest["sampling"], "crop_size": 224}}
    with pytest.raises(FeatureCacheError, match=r"stale feature cache.*sampling.crop_size: 64 in the cache, 224 now"):
        FeatureCache.open(summary.split_dir, CacheManifest.from_json(changed, "test"))
    newer_release = CacheManifest.from_json({**manifest, "package": "9.9"}, "test")
    assert FeatureCache.open(summary.split_dir, newer_release).manifest.to_json() == manifest

    other = tmp_path / "other_clip.pt"
    other.write_bytes(tiny_weights["clip"].read_bytes() + b"")  # same bytes: same hash, accepted
    torch.save(torch.load(tiny_weights["slowfast"], weights_only=False) | {"extra": 1}, tmp_path / "sf2.pt")
    code = main([
        "extract", "--split", "val", "--data", str(val_subset), "--features", str(cfg.features_dir),
        "--encoders", "tiny", "--slowfast-weights", str(tmp_path / "sf2.pt"), "--clip-weights", str(other),
        "--limit", "2", "-q",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "slowfast.weights_sha256" in err and "Traceback" not in err


def test_tiny_encoders_without_weight_files(reference, val_subset: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`extract --encoders tiny` on synthetic data needs no files: seeded random weights, saved beside the cache
    and named in its manifest; the same seeds as the demo's and the tests' files, so the very same features."""
    summary = reference[1]
    args = ["extract", "--data", str(val_subset), "--features", str(tmp_path), "--encoders", "tiny", "-q"]
    assert main([*args, "--split", "val", "--limit", "2"]) == 0
    weights = tmp_path / TINY.tag / "weights"
    assert "--encoders tiny without weight files: random init" in capsys.readouterr().err
    manifest = json.loads((tmp_path / TINY.tag / "val" / "manifest.json").read_text())
    assert manifest["weights_origin"].startswith("random init (seeds: slowfast 0, clip 1), saved as ../weights/")
    made = {p.name: file_digest(p) for p in weights.iterdir()}
    assert made == {
        "slowfast_tiny.pt": manifest["slowfast"]["weights_sha256"],
        "clip_tiny.pt": manifest["clip"]["weights_sha256"],
    }
    expected = json.loads((summary.split_dir / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("slowfast", "clip")} == {k: expected[k] for k in ("slowfast", "clip")}
    ours, theirs = FeatureCache.open(tmp_path / TINY.tag / "val"), FeatureCache.open(summary.split_dir)
    for name in ("slowfast", "clip"):
        rows = np.arange(len(theirs))
        np.testing.assert_array_equal(ours.gather(rows, name), theirs.gather(rows, name))
    stamp = {p.name: p.stat().st_mtime_ns for p in weights.iterdir()}
    assert main([*args, "--split", "val", "--limit", "2"]) == 0  # a rerun (or another split) reuses the files
    assert {p.name: p.stat().st_mtime_ns for p in weights.iterdir()} == stamp


def test_missing_and_corrupt_videos_are_reported_not_fatal(
    synth_data: Path, tiny_weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = json.loads((synth_data / "synthetic.json").read_text())
    table, _ = load_annotations(synth_data / "annotations", "test")
    broken = info["missing_videos"] + info["corrupt_videos"]
    good = next(c for c in sorted(table["clip_uid"].unique()) if c not in broken)
    data = subset_dataset(synth_data, tmp_path / "data", "test", dict.fromkeys([*broken, good], 3))
    code = main([
        "extract", "--split", "test", "--data", str(data), "--features", str(tmp_path / "f"), "--encoders", "tiny",
        "--slowfast-weights", str(tiny_weights["slowfast"]), "--clip-weights", str(tiny_weights["clip"]), "-q",
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and "9 segment windows from 3 clips ready" in out
    missing, corrupt = info["missing_videos"][0], info["corrupt_videos"][0]
    assert f"clip {missing}: video file is missing" in err
    assert re.search(f"clip {corrupt}: (cannot open|corrupt) video", err)
    cache = FeatureCache.open(tmp_path / "f" / TINY.tag / "test")
    ok = cache.index.groupby("clip_uid")["ok"].all().to_dict()
    assert ok == {missing: False, corrupt: False, good: True}


def test_train_views_and_bad_flags(synth_data: Path, tiny_weights: dict[str, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    table, _ = load_annotations(synth_data / "annotations", "train")
    clip_uid = sorted(table["clip_uid"].unique())[0]
    data = subset_dataset(synth_data, tmp_path / "data2", "train", {clip_uid: 4})
    summary = extract(config(data, tmp_path / "f", tiny_weights, split="train", views=3, workers=0, limit=None))
    cache = FeatureCache.open(summary.split_dir)
    assert len(cache) == 12 and sorted(set(cache.index["view"])) == [0, 1, 2]
    keys = list(zip(cache.index["clip_uid"][:4], cache.index["action_idx"][:4], strict=False))
    views = [cache.gather(cache.positions(keys, view=v), "slowfast") for v in range(3)]
    assert np.abs(views[0] - views[1]).max() > 1e-3 and np.abs(views[1] - views[2]).max() > 1e-3

    base = ["extract", "--data", str(data), "--features", str(tmp_path / "g"), "--encoders", "tiny", "-q"]
    weights = ["--slowfast-weights", str(tiny_weights["slowfast"]), "--clip-weights", str(tiny_weights["clip"])]
    assert main([*base, "--split", "val", "--views", "2", *weights]) == 2
    assert "extra random views are for the train split only" in capsys.readouterr().err
    assert main([*base, "--split", "train", "--encoders", "full"]) == 2
    assert "no SlowFast weights: pass --slowfast-weights FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--split", "train", "--shard", "4/4", *weights])
    assert "needs 0 <= i < n" in capsys.readouterr().err


def test_rerun_on_a_truncated_array_extracts_again(
    reference, val_subset: Path, tiny_weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: numpy's r+ memmap grew the cut file back with zeros, and extract said "ready (0 extracted now)"."""
    import shutil

    ref_cfg, ref_summary = reference
    shutil.copytree(ref_cfg.features_dir, tmp_path / "features")
    split_dir = tmp_path / "features" / TINY.tag / "val"
    npy = split_dir / "shard-000-of-001" / "slowfast.npy"
    npy.write_bytes(npy.read_bytes()[: -2304 // 8])
    with pytest.raises(FeatureCacheError, match=r"slowfast\.npy: \d+ bytes, its header promises \d+"):
        FeatureCache.open(split_dir)
    summary = extract(config(val_subset, tmp_path / "features", tiny_weights, workers=0))
    assert summary.done_now == ref_summary.rows  # every segment again
    assert "extracting the shard again from scratch" in capsys.readouterr().err
    cache, ref = FeatureCache.open(split_dir), FeatureCache.open(ref_summary.split_dir)
    every = np.arange(len(ref))
    np.testing.assert_allclose(cache.gather(every, "slowfast"), ref.gather(every, "slowfast"), atol=2e-2)


def _ramp_video(path: Path, seconds: float = 3.0, fps: int = 30) -> Path:
    """64 x 112 frames whose red rises from 0 at the left edge to 255 at the right: its sign tells a mirrored crop,
    its slope the scale, its mean the crop's position."""
    import av

    img = np.zeros((64, 112, 3), np.uint8)
    img[..., 0] = np.round(np.linspace(0, 255, 112))[None, :]
    img[..., 2] = 100
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 112, 64, "yuv444p"
        stream.codec_context.options = {"crf": "4"}
        for _ in range(int(seconds * fps)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _ramp_pass(folder: Path, views: int, seed: int, augment: bool) -> dict:
    import pandas as pd

    from ego4d_lta.data.segment_dataset import ClipImageSpec, ClipPassDataset
    from ego4d_lta.data.video import SamplingConfig

    rows = pd.DataFrame({"clip_uid": "ramp", "action_idx": 0, "view": range(views), "start_sec": 0.0, "end_sec": 3.0})
    cfg = SamplingConfig(crop_size=32, short_side=32, train_jitter=(32, 48))
    spec = ClipImageSpec(32, (0.5,) * 3, (0.5,) * 3)
    dataset = ClipPassDataset(folder, rows, ["ramp"], cfg, spec, views, seed=seed, augment=augment)
    batch = next(iter(dataset))  # in the order of the windows' start times
    order = torch.argsort(batch["rows"])
    assert batch["rows"][order].tolist() == list(range(views))
    batch = {key: batch[key][order] for key in ("slow", "fast", "images")}
    red = batch["fast"][:, 0] * cfg.std[0] + cfg.mean[0]  # (views, T, S, S), back to [0, 1]
    slope = (red[..., 1:] - red[..., :-1]).mean(dim=(1, 2, 3)).numpy()  # per pixel, left to right
    short = 64 / (112 * np.abs(slope))  # the ramp spans the resized width 112 / 64 * short side
    return {"batch": batch, "slope": slope, "short": short, "mean": red.mean(dim=(1, 2, 3)).numpy()}


def test_augmented_views_are_rescaled_cropped_and_mirrored(tmp_path: Path) -> None:
    """The pixels the encoders see: view 0 is the centre crop at the fixed short side, unmirrored; views 1.. take
    short sides across train_jitter, off-centre crops, and about half of them are mirrored (the ramp runs right to
    left). Deterministic for a seed; another seed gives other views, never another view 0."""
    _ramp_video(tmp_path / "ramp.mp4")
    plain = _ramp_pass(tmp_path, 12, seed=0, augment=False)
    aug = _ramp_pass(tmp_path, 12, seed=0, augment=True)

    assert (plain["slope"] > 0).all() and np.allclose(plain["short"], 32, atol=1.5)  # no option: all centre
    assert np.allclose(plain["mean"], 0.5, atol=0.02)
    for key in ("slow", "fast", "images"):
        torch.testing.assert_close(aug["batch"][key][0], plain["batch"][key][0], rtol=0, atol=0)
    torch.testing.assert_close(aug["batch"]["images"], plain["batch"]["images"], rtol=0, atol=0)  # CLIP: centre

    flipped = aug["slope"][1:] < 0
    assert 0 < flipped.sum() < 11, aug["slope"]  # some views mirrored, some not
    assert ((aug["short"][1:] > 30.5) & (aug["short"][1:] < 49.5)).all(), aug["short"]
    assert len(np.unique(np.round(aug["short"][1:]))) >= 4, aug["short"]  # random scales
    assert np.abs(aug["mean"][1:] - 0.5).max() > 0.05, aug["mean"]  # off-centre crops
    mirrored = aug["batch"]["fast"][1:][torch.from_numpy(flipped)].flip(-1)[:, 0]  # flipped back: ramp rises again
    assert ((mirrored[..., 1:] - mirrored[..., :-1]).mean(dim=(1, 2, 3)) > 0).all()

    again = _ramp_pass(tmp_path, 12, seed=0, augment=True)
    torch.testing.assert_close(again["batch"]["fast"], aug["batch"]["fast"], rtol=0, atol=0)
    other = _ramp_pass(tmp_path, 12, seed=1, augment=True)
    torch.testing.assert_close(other["batch"]["fast"][0], plain["batch"]["fast"][0], rtol=0, atol=0)
    assert not np.allclose(other["short"][1:], aug["short"][1:], atol=0.5)


def test_train_views_with_augmentation(synth_data: Path, tiny_weights: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`extract --views 3 --augment`: view 0 and the CLIP features are those of the cache made without it; the
    SlowFast features of views 1.. differ, the same in every run (and with other worker counts); the manifest
    says so, and a cache made the other way is refused as stale."""
    table, _ = load_annotations(synth_data / "annotations", "train")
    clip_uid = sorted(table["clip_uid"].unique())[0]
    data = subset_dataset(synth_data, tmp_path / "data", "train", {clip_uid: 4})
    runs = {}
    for name, augment, workers in (("plain", False, 0), ("aug", True, 0), ("again", True, 2)):
        cfg = config(data, tmp_path / name, tiny_weights, split="train", views=3, augment=augment, workers=workers)
        runs[name] = FeatureCache.open(extract(replace(cfg, limit=None)).split_dir)
    keys = list(zip(runs["plain"].index["clip_uid"][:4], runs["plain"].index["action_idx"][:4], strict=False))

    def feats(name: str, view: int, array: str = "slowfast") -> np.ndarray:
        cache = runs[name]
        return cache.gather(cache.positions(keys, view=view), array).astype(np.float32)

    np.testing.assert_array_equal(feats("aug", 0), feats("plain", 0))
    for view in (1, 2):
        assert np.abs(feats("aug", view) - feats("plain", view)).max() > 1e-3
        np.testing.assert_array_equal(feats("aug", view, "clip"), feats("plain", view, "clip"))
        np.testing.assert_array_equal(feats("again", view), feats("aug", view))
    assert runs["aug"].manifest.augment and not runs["plain"].manifest.augment
    assert json.loads((tmp_path / "aug" / TINY.tag / "train" / "manifest.json").read_text())["augment"] is True

    weights = ["--slowfast-weights", str(tiny_weights["slowfast"]), "--clip-weights", str(tiny_weights["clip"])]
    base = ["extract", "--split", "train", "--data", str(data), "--encoders", "tiny", "-q", *weights]
    assert main([*base, "--features", str(tmp_path / "plain"), "--views", "3", "--augment"]) == 2
    err = capsys.readouterr().err
    assert "stale feature cache" in err and "augment: false in the cache, true now" in err, err
    assert main([*base, "--features", str(tmp_path / "g"), "--augment"]) == 2
    assert "--augment: augments views 1.." in capsys.readouterr().err


def test_a_scenario_list_added_later_keeps_the_features(
    val_subset: Path, tiny_weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 23.1: without a scenario list `extract` says so, and adding one later rebuilds only the prompt bank
    (the bank does not depend on the features; before, `--scenarios` on the cache was refused as stale)."""
    from ego4d_lta.models.prompts import PromptBank

    features = tmp_path / "features"
    weights = ["--slowfast-weights", str(tiny_weights["slowfast"]), "--clip-weights", str(tiny_weights["clip"])]
    base = ["extract", "--split", "val", "--data", str(val_subset), "--features", str(features)]
    base += ["--encoders", "tiny", "--limit", "1", "--workers", "0", "-q", *weights]
    assert main(base) == 0
    assert "warning: link Ego4D's scenarios_taxonomy.json into" in capsys.readouterr().err
    split_dir = features / TINY.tag / "val"

    def bank() -> PromptBank:
        return PromptBank.load(split_dir.parent / FeatureCache.open(split_dir).manifest.prompt_bank)

    assert bank().names["scenario"] == []
    clip_npy = split_dir / "shard-000-of-001" / "clip.npy"
    stored = clip_npy.read_bytes()
    scenarios = tmp_path / "scenarios_taxonomy.json"
    scenarios.write_text(json.dumps({"0": "Cooking", "1": "Carpenter"}))
    assert main([*base, "--prompts-only", "--scenarios", str(scenarios)]) == 0
    assert "used by the val caches (features unchanged)" in capsys.readouterr().out
    assert bank().names["scenario"] == ["Cooking", "Carpenter"] and clip_npy.read_bytes() == stored
    assert main([*base, "--scenarios", str(scenarios)]) == 0, "the plain command with --scenarios is not refused"
    assert main(base) == 0 and bank().names["scenario"], "a run without the list keeps the bank that has one"


def test_a_tiny_cache_is_found_by_read_cache_and_named_by_train(reference, val_subset: Path) -> None:
    """Issue 23.3: `read_cache(FEATURES, "val")` said there was no cache when the one there was the tiny encoders';
    a config of the full encoders on it said to extract, never that `--config tiny` reads the cache there."""
    import ego4d_lta
    from ego4d_lta.base.errors import UserError
    from ego4d_lta.config import load_config
    from ego4d_lta.runtime.inputs import RunInputs

    cfg, summary = reference
    assert len(ego4d_lta.read_cache(cfg.features_dir, "val")) == summary.rows
    with pytest.raises(UserError, match=r"^pass encoders='tiny': .* holds the tiny cache of val, not the full one"):
        ego4d_lta.read_cache(cfg.features_dir, "val", encoders="full")
    with pytest.raises(UserError, match=r"^pass encoders='full' or 'tiny': .* holds no extract cache of train"):
        ego4d_lta.read_cache(cfg.features_dir, "train")
    run = load_config("slowfast_clip", [f"data.data_dir={val_subset}", f"data.features_dir={cfg.features_dir}"])
    with pytest.raises(UserError, match=r"^--config tiny reads the tiny encoders' cache that is there, or run `ego"):
        RunInputs(run).open("val", training=False)
