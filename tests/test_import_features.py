"""Ego4D's released per-video features: synthetic download in the official schema -> import-features -> cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.stages.synth import SynthConfig, generate
from ego4d_lta.stages.synth.features import download_dir

OFFICIAL_KEYS = {
    "clip_id",
    "clip_uid",
    "video_uid",
    "clip_parent_start_sec",
    "clip_parent_end_sec",
    "clip_parent_start_frame",
    "clip_parent_end_frame",
    "interval_start_sec",
    "interval_end_sec",
    "interval_start_frame",
    "interval_end_frame",
    "action_idx",
    "action_clip_start_sec",
    "action_clip_end_sec",
    "action_clip_start_frame",
    "action_clip_end_frame",
}


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic dataset without videos, with an Ego4D-style feature download; one test video's file
    is missing."""
    out = tmp_path_factory.mktemp("released") / "data"
    generate(out, SynthConfig(videos=False, features_like_ego4d=True, missing_features=1), workers=1)
    return out


def test_synth_writes_the_official_schema_with_clips_cut_from_videos(released: Path) -> None:
    info = json.loads((released / "synthetic.json").read_text())
    for split, name in (("train", "fho_lta_train.json"), ("test", "fho_lta_test_unannotated.json")):
        entries = json.loads((released / "annotations" / name).read_text())["clips"]
        labels = {"verb", "noun", "verb_label", "noun_label"} if split == "train" else set()
        assert all(set(e) == OFFICIAL_KEYS | labels for e in entries)
        table, _ = load_annotations(released / "annotations", split)
        per_video = table.groupby("video_uid")["clip_uid"].nunique()
        assert (per_video >= 2).all()  # several clips share each video
        assert (table.clip_parent_start_frame > 0).all()
        video_end = table.clip_parent_start_frame + table.end_frame
        assert (video_end < table.video_uid.map(lambda v: info["videos"][v]["frames"])).all()
    assert len(info["missing_features"]) == 1
    files = {p.stem for p in (download_dir(released) / "v2" / "slowfast8x8_r101_k400").glob("*.pt")}
    assert files == set(info["videos"]) - set(info["missing_features"])
    assert not any((released / "clips").glob("*.mp4"))


SET_DIR = Path("v2") / "slowfast8x8_r101_k400"

TINY_RELEASED = """
[model]
variant = "slowfast"
slowfast_dim = 64
layers = 2
heads = 4
ffn_dim = 256
position_dropout = 0.1
head_dropout = 0.2

[data]
released = "slowfast8x8_r101_k400"

[optim]
optimizer = "adamw"
lr = 2e-3
base_batch = 32
weight_decay = 0.01
warmup_steps = 20

[train]
epochs = 5
batch_size = 32
eval_batch_size = 128
"""


def _import(data: Path, split: str, *extra: str, features: Path | None = None) -> int:
    from ego4d_lta.cli import main

    args = ["import-features", "--split", split, "--data", str(data), "--ego4d-features", str(download_dir(data))]
    return main([*args, "--features", str(features or data / "features"), "-q", *extra])


def _cache(features: Path, split: str):
    from ego4d_lta.data.feature_cache import FeatureCache

    return FeatureCache.open(features / "ego4d-slowfast8x8_r101_k400" / split)


def _noun_accuracy(features: Path) -> float:
    """Nearest class centroid (train) -> val nouns: how much of its segment's action a pooled row carries."""
    tables = {s: load_annotations(features.parent / "annotations", s)[0] for s in ("train", "val")}
    x = {}
    for split, table in tables.items():
        cache = _cache(features, split)
        keys = list(zip(table.clip_uid, table.action_idx, strict=True))
        x[split] = cache.gather(cache.positions(keys), "slowfast")
    nouns = tables["train"].noun.to_numpy()
    classes = np.unique(nouns)
    centroids = np.stack([x["train"][nouns == c].mean(0) for c in classes])
    dist = ((x["val"][:, None, :] - centroids[None]) ** 2).sum(-1)
    return float((classes[dist.argmin(1)] == tables["val"].noun.to_numpy()).mean())


def test_parent_offsets_map_segments_onto_their_rows(released: Path, tmp_path: Path) -> None:
    for split in ("train", "val"):
        assert _import(released, split) == 0
    right = _noun_accuracy(released / "features")
    # the same import with every clip taken to start its video (clip frames read as video frames): other rows
    wrong = tmp_path / "data"
    (wrong / "annotations").mkdir(parents=True)
    for f in (released / "annotations").iterdir():
        doc = json.loads(f.read_text())
        for entry in doc.get("clips", []) if isinstance(doc, dict) else []:
            entry["clip_parent_start_frame"] = 0
        (wrong / "annotations" / f.name).write_text(json.dumps(doc))
    (wrong / "ego4d_features").symlink_to(download_dir(released))
    for split in ("train", "val"):
        assert _import(wrong, split) == 0
    ignored = _noun_accuracy(wrong / "features")
    chance = 1 / 16
    assert right > 0.75 and ignored < 3 * chance, (right, ignored)  # measured: 0.90 and 0.08 (chance 0.06)


def test_missing_files_and_short_tensors_are_reported_by_video_and_clip(
    released: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A missing file (Ego4D's download lacks a few) and a tensor shorter than its video: those segments are
    unusable, reported by video and clip, the others imported; nothing stops."""
    import torch

    info = json.loads((released / "synthetic.json").read_text())
    data, folder, videos = _linked_download(released, tmp_path, "train")
    (folder / f"{videos[0]}.pt").unlink()
    (folder / f"{videos[3]}.pt").unlink()
    torch.save(torch.load(download_dir(released) / SET_DIR / f"{videos[3]}.pt")[:150], folder / f"{videos[3]}.pt")
    assert _import(data, "train") == 0
    err = capsys.readouterr().err
    assert f"video {videos[0]}: feature file missing" in err
    short_clips = info["videos"][videos[3]]["clips"]
    assert f"clip {short_clips[0]} (video {videos[3]}): no features for action_idx" in err  # rows 0-149: 80 s
    cache = _cache(data / "features", "train")
    table, _ = load_annotations(released / "annotations", "train")
    ok = dict(zip(zip(cache.index.clip_uid, cache.index.action_idx, strict=True), cache.index.ok, strict=True))
    for video in videos:
        rows = table[table.video_uid == video]
        usable = np.array([ok[(c, a)] for c, a in zip(rows.clip_uid, rows.action_idx, strict=True)])
        if video == videos[0]:
            assert not usable.any()
        elif video == videos[3]:  # the first seconds still have rows: those segments are usable, the rest not
            frames = (rows.clip_parent_start_frame + rows.end_frame).to_numpy()
            assert (usable == (frames <= 16 * 149 + 32)).all() and usable.any() and not usable.all()
        else:
            assert usable.all()


def _linked_download(released: Path, tmp_path: Path, split: str) -> tuple[Path, Path, list[str]]:
    """A dataset root whose download links to the released one's files: (root, set folder, the split's videos in
    import order)."""
    data = tmp_path / "data"
    folder = data / "ego4d_features" / SET_DIR
    folder.mkdir(parents=True)
    (data / "annotations").symlink_to(released / "annotations")
    table, _ = load_annotations(released / "annotations", split)
    videos = sorted(dict.fromkeys(table.video_uid))
    for video in videos:
        (folder / f"{video}.pt").symlink_to(download_dir(released) / SET_DIR / f"{video}.pt")
    return data, folder, videos


def _corrupt_middle(path: Path) -> None:
    """4 KB in the middle of the tensor's data overwritten with 0x7f (float32 3.4e38)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        entry = next(i for i in z.infolist() if "/data/" in i.filename)
    start = entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra) + entry.file_size // 2
    raw = bytearray(path.read_bytes())
    raw[start : start + 4096] = b"\x7f" * 4096
    path.write_bytes(bytes(raw))


def _flip_middle(path: Path) -> None:
    """The lowest bit of one byte in the middle of the tensor's data flipped: a value off by one unit in its last
    place, which no rule on values can see."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))


def _hostile_tensor(kind: str, path: Path, rows: int) -> None:
    import torch

    ok = torch.load(path).clone()
    path.unlink()
    write = {
        "sparse": lambda: torch.save(ok.to_sparse(), path),
        "parameter": lambda: torch.save(torch.nn.Parameter(ok), path),
        "meta": lambda: torch.save(torch.zeros(rows, 2304, device="meta"), path),
        "text": lambda: path.write_text("hello world"),
        "not a zip": lambda: path.write_bytes(b"PK\x03\x04 not a zip"),
        "dict": lambda: torch.save({"features": ok}, path),
        "symlink": lambda: path.symlink_to("/etc/passwd"),
        "device file": lambda: path.symlink_to("/dev/zero"),
        "width": lambda: torch.save(torch.zeros(rows, 1536), path),
        "integers": lambda: torch.save(ok.int(), path),
        "strided": lambda: torch.save(torch.zeros(2304).as_strided((300_000_000, 2304), (0, 1)), path),
        "overlapping": lambda: torch.save(ok.flatten().repeat(2).as_strided((rows, 2304), (1, 1)), path),
        "bit flip": lambda: (torch.save(ok, path), _flip_middle(path)),
        "nan": lambda: torch.save(torch.where(torch.arange(rows)[:, None] == rows // 3, float("nan"), ok), path),
        "fp16 inf": lambda: torch.save(ok.half().index_fill(0, torch.tensor([rows // 2]), float("inf")), path),
        "huge": lambda: torch.save(ok * 1e5, path),
        "0x7f": lambda: (torch.save(ok, path), _corrupt_middle(path)),
    }
    write[kind]()


HOSTILE_TENSORS = {
    "sparse": "sparse_coo tensor, expected a dense one",
    "parameter": "holds a Parameter, expected a plain (T, 2304) tensor",
    "meta": "on the meta device",
    "text": "not a torch tensor file",
    "not a zip": "not a torch tensor file",
    "dict": "holds a dict, expected a plain (T, 2304) tensor",
    "symlink": "not a torch tensor file",
    "device file": "not a regular file",
    "width": "expected (T, 2304) for this set",
    "integers": "torch.int32 tensor, expected floating-point features",
    "strided": "strides (0, 1) over 9216 stored bytes, expected real strides",
    "overlapping": "strides (1, 1) over",
    "bit flip": "damaged (Bad CRC-32 for file",
    "nan": "nan (values must be finite)",
    "fp16 inf": "inf (values must be finite)",
    "huge": "above 10000",
    "0x7f": "damaged (Bad CRC-32 for file",
}


@pytest.mark.parametrize("kind", HOSTILE_TENSORS)
def test_a_file_that_is_not_a_released_tensor_stops_the_import_in_one_line(
    kind: str, released: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A present file breaking a rule (dense, CPU-loadable, plain floating (T, D) tensor with real strides, finite,
    |x| <= the set's bound): exit 2, one line naming the file and the rule; the videos before it are kept, none of
    its rows written, and a rerun with the file replaced finishes the same cache a clean import makes."""
    data, folder, videos = _linked_download(released, tmp_path, "val")
    broken, original = folder / f"{videos[-1]}.pt", download_dir(released) / SET_DIR / f"{videos[-1]}.pt"
    broken.unlink()
    broken.write_bytes(original.read_bytes())
    _hostile_tensor(kind, broken, rows=len(__import__("torch").load(original)))
    before = broken.read_bytes() if broken.is_file() and not broken.is_symlink() else None
    assert _import(data, "val") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"{broken}: " in err and HOSTILE_TENSORS[kind] in err, err
    shard = data / "features" / "ego4d-slowfast8x8_r101_k400" / "val" / "shard-000-of-001"
    assert not (shard / "done.json").exists()
    table, _ = load_annotations(released / "annotations", "val")
    written = {json.loads(line)["clip"] for line in (shard / "progress.jsonl").read_text().splitlines()}
    assert written == set(table.clip_uid[table.video_uid.isin(videos[:-1])])  # the others kept, not its clips
    assert before is None or broken.read_bytes() == before  # the input is left as it was
    broken.unlink()
    broken.symlink_to(original)
    assert _import(data, "val") == 0
    clean = tmp_path / "clean"
    assert _import(released, "val", features=clean) == 0
    assert (
        np.load(shard / "slowfast.npy")
        == np.load(str(shard / "slowfast.npy").replace(str(data / "features"), str(clean)))
    ).all()


@pytest.mark.parametrize("form", ["transposed", "float64", "offset view"])
def test_the_same_values_stored_otherwise_give_the_same_rows(form: str, released: Path, tmp_path: Path) -> None:
    """A file's strides, storage offset and float dtype do not change what is imported: the rows equal, bit for bit,
    those of the released contiguous float32 file (column-major rows were summed pairwise, which rounds otherwise)."""
    import torch

    data, folder, videos = _linked_download(released, tmp_path, "val")
    for video in videos:
        path = folder / f"{video}.pt"
        x = torch.load(path)
        path.unlink()
        stored = {"transposed": lambda x: x.t().contiguous().t(), "float64": lambda x: x.double(),
                  "offset view": lambda x: torch.cat([x[:7], x])[7:]}[form](x)  # fmt: skip
        assert torch.equal(stored.float(), x)
        torch.save(stored, path)
    assert _import(released, "val", "--dtype", "float32", features=tmp_path / "clean") == 0
    assert _import(data, "val", "--dtype", "float32", features=tmp_path / "stored") == 0
    assert np.array_equal(_rows(tmp_path / "stored"), _rows(tmp_path / "clean"))


def test_hostile_manifests_paths_and_strides_are_one_line(
    released: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data, folder, _ = _linked_download(released, tmp_path, "val")
    (folder / "manifest.csv").write_bytes(b"video_uid,num_frames\n\xffx,3\n")
    assert _import(data, "val") == 2
    assert "manifest.csv: line 2: byte 0xff is not UTF-8" in capsys.readouterr().err
    (folder / "manifest.csv").unlink()
    (tmp_path / "a-file").write_text("")
    assert _import(data, "val", features=tmp_path / "a-file") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'a-file'}/ego4d-slowfast8x8_r101_k400/val: Not a directory" in err
    for stride in (str(2**62), "0", "33"):
        assert _import(data, "val", "--stride", stride, features=tmp_path / "f") == 2
        assert f"--stride {stride}: must be 1..32 frames" in capsys.readouterr().err
    from ego4d_lta.cli import main

    omnivore = ["import-features", "--split", "val", "--data", str(data), "--set", "omnivore_video_swinl", "-q"]
    assert main([*omnivore, "--ego4d-features", str(folder), "--features", str(tmp_path / "f")]) == 2
    assert "expected (T, 1536) for this set" in capsys.readouterr().err  # a SlowFast download is not Omnivore's


def test_import_resumes_and_refuses_a_stale_cache(released: Path, tmp_path: Path) -> None:
    features = tmp_path / "features"
    assert _import(released, "val", features=features) == 0
    shard = features / "ego4d-slowfast8x8_r101_k400" / "val" / "shard-000-of-001"
    before = np.load(shard / "slowfast.npy").copy()
    lines = (shard / "progress.jsonl").read_text().splitlines()
    (shard / "progress.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # killed before the last clip's line
    (shard / "done.json").unlink()
    np.lib.format.open_memmap(shard / "slowfast.npy", mode="r+")[:] = 0
    assert _import(released, "val", features=features) == 0
    after = np.load(shard / "slowfast.npy")
    last_clip = json.loads(lines[-1])["clip"]
    redone = (_cache(features, "val").index.clip_uid == last_clip).to_numpy()
    assert (after[redone] == before[redone]).all() and (after[~redone] == 0).all()  # only that clip was redone
    assert _import(released, "val", "--stride", "8", features=features) == 2  # other settings: refused


def test_imported_rows_are_float16_by_default_within_rounding_of_float32(
    released: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    half, full = tmp_path / "half", tmp_path / "full"
    assert _import(released, "val", features=half) == 0
    assert _import(released, "val", "--dtype", "float32", features=full) == 0
    a, b = _cache(half, "val"), _cache(full, "val")
    assert (a.manifest.dtype, b.manifest.dtype) == ("float16", "float32")
    shard = Path("ego4d-slowfast8x8_r101_k400") / "val" / "shard-000-of-001" / "slowfast.npy"
    rows16, rows32 = np.load(half / shard), np.load(full / shard)
    assert rows16.dtype == np.float16 and rows32.dtype == np.float32
    assert (half / shard).stat().st_size < 0.51 * (full / shard).stat().st_size
    assert np.array_equal(rows16, rows32.astype(np.float16))  # the float32 means, rounded once
    np.testing.assert_allclose(rows16.astype(np.float32), rows32, rtol=2**-11, atol=2**-24)
    assert np.abs(rows32).max() > 0.1  # real values, not zeros
    # the other dtype's cache is stale: refused, naming the option that keeps it; that option resumes it
    assert _import(released, "val", features=full) == 2
    err = capsys.readouterr().err
    assert "stale feature cache of float32 rows" in err and "--dtype float32" in err
    assert _import(released, "val", "--dtype", "float32", features=full) == 0
    assert _import(released, "val", "--dtype", "float32", features=half) == 2
    assert "--dtype float16" in capsys.readouterr().err


def test_released_slowfast_trains_predicts_and_beats_the_baselines(released: Path, tmp_path: Path) -> None:
    """synth -> import-features -> train --config slowfast -> predict --split test -> validate (a video's feature
    file missing): key-complete and valid, and better than every baseline on val."""
    from ego4d_lta.cli import main
    from ego4d_lta.workflow.demo import score_baselines

    for split in ("train", "val", "test"):
        assert _import(released, split) == 0
    config = tmp_path / "released_tiny.toml"
    config.write_text(TINY_RELEASED)
    run = tmp_path / "run"
    common = ["--data", str(released), "--device", "cpu"]
    assert main(["train", "--config", str(config), "--run", str(run), *common]) == 0
    for split in ("val", "test"):
        out = tmp_path / f"{split}.json"
        assert main(["predict", "--run", str(run), "--split", split, "--out", str(out), *common]) == 0
    assert main(["validate", str(tmp_path / "test.json"), "--split", "test", "--data", str(released)]) == 0
    from ego4d_lta.challenge.validate import validate_file

    report = validate_file(tmp_path / "val.json", released / "annotations", "val")
    assert report.valid
    baselines = score_baselines(tmp_path / "baselines", released, 0)
    for head in ("verb", "noun", "action"):
        assert report.scores.ed20[head] < min(b[head] for b in baselines.values()), (head, report.scores, baselines)
    test = json.loads((tmp_path / "test.json").read_text())
    table, _ = load_annotations(released / "annotations", "test")
    missing = json.loads((released / "synthetic.json").read_text())["missing_features"]
    assert set(table[table.video_uid.isin(missing)].clip_uid) <= {k.rsplit("_", 1)[0] for k in test}


def test_variants_the_cache_cannot_feed_are_refused(released: Path, tmp_path: Path, capsys) -> None:
    from ego4d_lta.cli import main

    for split in ("train", "val"):
        assert _import(released, split) == 0
    args = ["train", "--config", "slowfast_clip", "--set", "data.released=slowfast8x8_r101_k400"]
    assert main([*args, "--data", str(released), "--run", str(tmp_path / "r"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "needs clip features" in err and "slowfast8x8_r101_k400" in err and "ego4d-lta extract" in err
    assert main(["train", "--config", "omnivore", "--data", str(released), "--run", str(tmp_path / "o")]) == 2
    assert "import-features --split train" in capsys.readouterr().err


def test_shards_split_the_videos_and_read_back_as_one_cache(released: Path, tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert _import(released, "train", features=whole) == 0
    assert _import(released, "train", "--shard", "1/2", features=parts) == 0
    from ego4d_lta.data.feature_cache import FeatureCacheError

    with pytest.raises(FeatureCacheError, match=r"shard 0/2 is not finished.*import-features --split train"):
        _cache(parts, "train")
    assert _import(released, "train", "--shard", "0/2", features=parts) == 0
    a, b = _cache(whole, "train"), _cache(parts, "train")
    keys = list(zip(a.index.clip_uid, a.index.action_idx, strict=True))
    assert (b.positions(keys) >= 0).all()
    assert np.array_equal(a.gather(a.positions(keys), "slowfast"), b.gather(b.positions(keys), "slowfast"))
    table, _ = load_annotations(released / "annotations", "train")
    shard_videos = [set(table[table.clip_uid.isin(b.index.clip_uid[b.index.shard == s])].video_uid) for s in (0, 1)]
    assert not shard_videos[0] & shard_videos[1]  # a video is read by one shard only


def test_imported_slowfast_rows_join_extracted_clip_features(demo_report: dict, demo_dir: Path, tmp_path: Path):
    """slowfast_clip without extracting SlowFast: the released rows + the CLIP part of an `extract` cache."""
    from dataclasses import replace

    from ego4d_lta.cli import main
    from ego4d_lta.config import load_config
    from ego4d_lta.data.combined_cache import CombinedCache
    from ego4d_lta.runtime.encoder_config import encoder_preset
    from ego4d_lta.runtime.inputs import RunInputs
    from ego4d_lta.workflow.demo import DEMO_SYNTH

    data = demo_dir / "data"  # the demo's clips and its `extract` cache (tiny encoders)
    download = tmp_path / "download"  # the same dataset's per-video features (same seed: same clips and videos)
    generate(download, replace(DEMO_SYNTH, videos=False, features_like_ego4d=True), workers=1)
    for name in ("fho_lta_train.json", "fho_lta_val.json"):
        assert (download / "annotations" / name).read_bytes() == (data / "annotations" / name).read_bytes()
    cfg = load_config("tiny", ["data.released=slowfast8x8_r101_k400", "train.epochs=1"])
    cfg.data.data_dir, cfg.data.features_dir = str(data), str(tmp_path / "features")
    tag = encoder_preset(cfg.data.encoders, None).tag
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / tag).symlink_to(data / "features" / tag)
    for split in ("train", "val"):
        args = ["--data", str(data), "--ego4d-features", str(download_dir(download)), "-q"]
        assert main(["import-features", "--split", split, *args, "--features", str(tmp_path / "features")]) == 0
    cache = RunInputs(cfg).open("val", training=False).dataset.cache
    assert isinstance(cache, CombinedCache) and cache.arrays == ("slowfast", "clip")
    extracted = _cache_at(data / "features" / tag / "val")
    keys = list(zip(extracted.index.clip_uid, extracted.index.action_idx, strict=True))
    imported = _cache(tmp_path / "features", "val")
    here = cache.positions(keys)
    assert np.array_equal(cache.gather(here, "clip"), extracted.gather(extracted.positions(keys), "clip"))
    assert np.array_equal(cache.gather(here, "slowfast"), imported.gather(imported.positions(keys), "slowfast"))
    from ego4d_lta.stages.train import train

    result = train(cfg, tmp_path / "run", device="cpu", progress=False)
    assert result.epochs_done == 1 and result.history[0]["val"] is not None


def _cache_at(split_dir: Path):
    from ego4d_lta.data.feature_cache import FeatureCache

    return FeatureCache.open(split_dir)


def test_frame_counts_from_the_manifest_place_the_last_row(released: Path, tmp_path: Path, capsys) -> None:
    """manifest.csv with num_frames: the back-shifted last row is placed exactly; a count the rows contradict
    makes that video unusable, reported by name."""
    info = json.loads((released / "synthetic.json").read_text())
    table, _ = load_annotations(released / "annotations", "val")
    videos = list(dict.fromkeys(table.video_uid))
    data = tmp_path / "data"
    (data / "ego4d_features" / SET_DIR).mkdir(parents=True)
    (data / "annotations").symlink_to(released / "annotations")
    for video in videos:
        (data / "ego4d_features" / SET_DIR / f"{video}.pt").symlink_to(download_dir(released) / SET_DIR / f"{video}.pt")
    counts = [info["videos"][videos[0]]["frames"], 10]
    lines = ["video_uid,num_frames", *(f"{v},{n}" for v, n in zip(videos, counts, strict=True))]
    (data / "ego4d_features" / SET_DIR / "manifest.csv").write_text("\n".join(lines) + "\n")
    assert _import(data, "val") == 0
    assert f"video {videos[1]}: " in capsys.readouterr().err
    cache = _cache(data / "features", "val")
    assert "manifest.csv" in cache.manifest.record.released.last_row
    ok = cache.index.groupby(cache.index.clip_uid.map(dict(zip(table.clip_uid, table.video_uid, strict=False))))["ok"]
    assert ok.all()[videos[0]] and not ok.any()[videos[1]]
    (data / "ego4d_features" / SET_DIR / "manifest.csv").write_text("video_uid,num_frames\nx,many\n")
    assert _import(data, "val", features=tmp_path / "other") == 2
    assert "num_frames 'many' is not an integer" in capsys.readouterr().err


def test_released_omnivore_features_train_the_omnivore_preset(tmp_path: Path) -> None:
    """The omnivore preset on an imported 1536-d set: built, trained, and predicting on the test split."""
    from ego4d_lta.cli import main

    data = tmp_path / "data"
    cfg = SynthConfig(videos=False, features_like_ego4d=True, features_set="omnivore_video_swinl")
    generate(data, cfg, workers=1)
    for split in ("train", "val", "test"):
        assert _import(data, split, "--set", "omnivore_video_swinl") == 0
    tiny = ["model.slowfast_dim=64", "model.layers=1", "model.heads=4", "model.ffn_dim=128", "train.epochs=1"]
    sets = [x for item in [*tiny, "train.batch_size=32", "optim.warmup_steps=5"] for x in ("--set", item)]
    run = ["--data", str(data), "--run", str(tmp_path / "run"), "--device", "cpu"]
    assert main(["train", "--config", "omnivore", *sets, *run]) == 0
    out = tmp_path / "test.json"
    assert main(["predict", *run, "--split", "test", "--out", str(out)]) == 0
    assert main(["validate", str(out), "--split", "test", "--data", str(data)]) == 0
    from ego4d_lta.runtime.checkpoint import RunCheckpoint

    features = RunCheckpoint.load(tmp_path / "run" / "best.pt").features
    assert features.released.set == "omnivore_video_swinl" and features.released.dim == 1536


def test_a_clean_import_points_to_no_warnings(released: Path, tmp_path: Path, capsys) -> None:
    """Issue 23.7: "0 videos unusable: see the warnings above" where there were none."""
    assert _import(released, "val", features=tmp_path / "features") == 0
    out = capsys.readouterr().out
    assert "0 videos unusable)" in out and "see the warnings above" not in out, out


def _rows(features: Path, split: str = "val") -> np.ndarray:
    return np.load(features / "ego4d-slowfast8x8_r101_k400" / split / "shard-000-of-001" / "slowfast.npy")


def _replace(path: Path, change) -> None:
    """`path` (a link into the released download) replaced by a file of the same size holding `change(rows)`,
    its mtime put back: only the ctime tells it apart."""
    import os

    import torch

    before = path.stat()
    rows = torch.load(path)
    path.unlink()
    torch.save(change(rows), path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns


def test_a_rerun_imports_again_the_clips_of_a_changed_file(
    released: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 25: an import rerun after a video's file was replaced kept the old rows. Now the rerun imports that
    video's clips again (the others not), so the cache equals a fresh import of the download as it is now; a file
    that appears later is imported, one deleted since its import keeps its rows, and while the rerun is refused
    halfway (another changed file that is corrupt) no reader takes the shard for finished."""
    data, folder, videos = _linked_download(released, tmp_path, "val")
    late = folder / f"{videos[1]}.pt"
    late.unlink()  # missing at the first import: its clips get no features
    assert _import(data, "val") == 0
    first = _rows(data / "features")
    late.symlink_to(download_dir(released) / SET_DIR / late.name)
    _replace(folder / f"{videos[0]}.pt", lambda x: x.flip(0) * 0.5)
    capsys.readouterr()
    assert _import(data, "val") == 0
    err = capsys.readouterr().err
    assert _import(data, "val", features=tmp_path / "fresh") == 0
    fresh = _rows(tmp_path / "fresh")
    assert np.array_equal(_rows(data / "features"), fresh) and not np.array_equal(first, fresh)
    assert f"2 video files ({videos[0]}, {videos[1]}) changed since imported" in err, err
    assert _cache(data / "features", "val").index.ok.all()
    capsys.readouterr()
    assert _import(data, "val") == 0  # nothing changed: nothing imported
    assert "(0 imported now" in capsys.readouterr().out

    (folder / f"{videos[1]}.pt").unlink()  # deleted once imported: its rows stay
    assert _import(data, "val") == 0 and np.array_equal(_rows(data / "features"), fresh)
    assert _cache(data / "features", "val").index.ok.all()

    late.symlink_to(download_dir(released) / SET_DIR / late.name)
    _replace(folder / f"{videos[0]}.pt", lambda x: x * 2)
    _replace(late, lambda x: x * float("nan"))  # corrupt: stops the import there
    assert _import(data, "val") == 2
    assert f"{late}: " in capsys.readouterr().err
    from ego4d_lta.data.feature_cache import FeatureCacheError

    with pytest.raises(FeatureCacheError, match="is not finished"):
        _cache(data / "features", "val")
