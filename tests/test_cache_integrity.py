"""A damaged feature cache is never read as features: every file is checked against its index before use.

Opening a finished cache (train, predict) names the damaged file in one line; `extract` rerun on a damaged shard
starts it again instead of extending a truncated array with zeros and reporting it ready.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ego4d_lta.data.feature_cache import FeatureCache, FeatureCacheError, ShardWriter, shard_name
from ego4d_lta.data.feature_record import CacheManifest, ClipFeatures, FeatureRecord, SlowFastFeatures

DIMS = {"slowfast": (6,), "clip": (2, 4)}
MANIFEST = CacheManifest(
    FeatureRecord(SlowFastFeatures("tiny", "0" * 64, 6), ClipFeatures("tiny", "1" * 64, None, 4, 2, 64), {}),
    split="val",
    annotations_sha256="2" * 64,
)
CLIPS = {"clip-a": 3, "clip-b": 2, "clip-c": 4}


def _index() -> pd.DataFrame:
    rows = [(c, a, 0, float(a), a + 1.0) for c, n in CLIPS.items() for a in range(n)]
    return pd.DataFrame(rows, columns=["clip_uid", "action_idx", "view", "start_sec", "end_sec"])


def _features(rows: np.ndarray) -> dict[str, np.ndarray]:
    """Row r holds the value r + 1 everywhere: a zero row is never a written one."""
    base = (rows + 1).astype(np.float16)
    return {name: np.broadcast_to(base.reshape(-1, *[1] * len(d)), (len(rows), *d)).copy() for name, d in DIMS.items()}


def build(split_dir: Path, finish: bool = True, skip: tuple[str, ...] = ()) -> ShardWriter:
    """A one-shard cache of CLIPS; clips in `skip` get no progress line (an interrupted extraction)."""
    index = _index()
    writer = ShardWriter.open(split_dir, MANIFEST, (0, 1), index, DIMS)
    for clip in CLIPS:
        if clip in skip:
            continue
        rows = np.flatnonzero(index["clip_uid"] == clip)
        writer.write(rows, _features(rows))
        writer.clip_finished(clip)
    if finish:
        writer.finish()
    return writer


def shard(split_dir: Path) -> Path:
    return split_dir / shard_name(0, 1)


def _truncate(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


DAMAGE = {
    "slowfast.npy cut by a row": (lambda d: _truncate(d / "slowfast.npy", -12), "slowfast.npy: ", "bytes, its header"),
    "clip.npy empty": (lambda d: (d / "clip.npy").write_bytes(b""), "clip.npy: ", "not a readable .npy"),
    "clip.npy header cut": (lambda d: _truncate(d / "clip.npy", 40), "clip.npy: ", "not a readable .npy"),
    "slowfast.npy grown": (
        lambda d: (d / "slowfast.npy").write_bytes((d / "slowfast.npy").read_bytes() + b"\0" * 12),
        "slowfast.npy: ",
        "bytes, its header",
    ),
    "slowfast.npy with another row count": (
        lambda d: np.save(d / "slowfast.npy", np.zeros((4, 6), np.float16)),
        "slowfast.npy: ",
        "expected float16 with 9 rows",
    ),
    "slowfast.npy float32": (
        lambda d: np.save(d / "slowfast.npy", np.zeros((9, 6), np.float32)),
        "slowfast.npy: ",
        "expected float16",
    ),
    "index.csv cut mid-line": (lambda d: _truncate(d / "index.csv", -9), "index.csv: ", "non-number"),
    "index.csv lost its last rows": (
        lambda d: (d / "index.csv").write_text("\n".join((d / "index.csv").read_text().splitlines()[:-3]) + "\n"),
        "slowfast.npy: ",
        "expected float16 with 6 rows",
    ),
    "index.csv empty": (lambda d: (d / "index.csv").write_text(""), "index.csv: ", "unreadable index"),
    "index.csv binary": (lambda d: (d / "index.csv").write_bytes(b"\xff\xfe\x00garbage"), "index.csv: ", ""),
    "progress.jsonl garbage line": (
        lambda d: (d / "progress.jsonl").write_text('{"clip": "clip-a", "ok": true}\nnot json\n'),
        "progress.jsonl: ",
        "line 2 is not a progress record",
    ),
    "progress.jsonl record without a clip": (
        lambda d: (d / "progress.jsonl").write_text('{"ok": true}\n'),
        "progress.jsonl: ",
        "line 1 is not a progress record",
    ),
    "progress.jsonl list": (lambda d: (d / "progress.jsonl").write_text("[1, 2]\n"), "progress.jsonl: ", "line 1"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_cache_is_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    split_dir = tmp_path / "val"
    build(split_dir)
    damage, where, rule = DAMAGE[case]
    damage(shard(split_dir))
    with pytest.raises(FeatureCacheError) as info:
        FeatureCache.open(split_dir)
    message = str(info.value)
    assert where in message and rule in message and "\n" not in message, message


@pytest.mark.parametrize("case", [c for c in DAMAGE if "progress" not in c])
def test_extract_rebuilds_a_damaged_shard_instead_of_extending_it(tmp_path: Path, case: str) -> None:
    split_dir = tmp_path / "val"
    build(split_dir)
    DAMAGE[case][0](shard(split_dir))
    writer = ShardWriter.open(split_dir, MANIFEST, (0, 1), _index(), DIMS)
    assert writer.damaged and DAMAGE[case][1] in writer.damaged
    assert writer.pending_clips() == list(CLIPS)  # every clip again: none counts as extracted
    assert not (shard(split_dir) / "done.json").exists()
    assert {n: a.shape for n, a in writer.arrays.items()} == {"slowfast": (9, 6), "clip": (9, 2, 4)}


def test_garbage_progress_lines_make_extract_redo_those_clips(tmp_path: Path) -> None:
    split_dir = tmp_path / "val"
    build(split_dir, finish=False, skip=("clip-b", "clip-c"))
    progress = shard(split_dir) / "progress.jsonl"
    progress.write_text(progress.read_text() + 'garbage\n{"clip": 7, "ok": true}\n{"clip": "clip-b", "ok": "yes"}\n')
    writer = ShardWriter.open(split_dir, MANIFEST, (0, 1), _index(), DIMS)
    assert writer.damaged is None and writer.pending_clips() == ["clip-b", "clip-c"]


def test_a_torn_progress_line_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    """A kill mid-line leaves no newline; the resumed run's first record must not be glued onto it (and lost)."""
    split_dir = tmp_path / "val"
    build(split_dir, finish=False, skip=("clip-b", "clip-c"))
    progress = shard(split_dir) / "progress.jsonl"
    progress.write_text(progress.read_text() + '{"clip": "clip-b", "o')
    writer = ShardWriter.open(split_dir, MANIFEST, (0, 1), _index(), DIMS)
    assert writer.pending_clips() == ["clip-b", "clip-c"]
    for clip in ("clip-b", "clip-c"):
        rows = np.flatnonzero(_index()["clip_uid"] == clip)
        writer.write(rows, _features(rows))
        writer.clip_finished(clip)
    writer.finish()
    cache = FeatureCache.open(split_dir)
    assert cache.index["ok"].all()


def test_a_clip_without_a_progress_record_is_not_extracted(tmp_path: Path) -> None:
    """A partial cache: clip-b's rows were never written. Its windows must read as unavailable, never as zeros."""
    split_dir = tmp_path / "val"
    build(split_dir, finish=False, skip=("clip-b",))
    lines = (shard(split_dir) / "progress.jsonl").read_text().splitlines()
    assert [json.loads(line)["clip"] for line in lines] == ["clip-a", "clip-c"]
    ShardWriter.open(split_dir, MANIFEST, (0, 1), _index(), DIMS).finish()
    cache = FeatureCache.open(split_dir)
    ok = dict(zip(cache.index["clip_uid"], cache.index["ok"], strict=False))
    assert ok == {"clip-a": True, "clip-b": False, "clip-c": True}
    positions = cache.positions([("clip-c", 1)])
    assert cache.gather(positions, "slowfast")[0, 0] == 3 + 2 + 1 + 1  # row 6: clip-c's second action, value r + 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_features_are_never_written_nor_read(tmp_path: Path, bad: float) -> None:
    split_dir = tmp_path / "val"
    writer = build(split_dir, finish=False, skip=("clip-c",))
    rows = np.flatnonzero(_index()["clip_uid"] == "clip-c")
    feats = _features(rows)
    feats["clip"][1, 0, 2] = bad
    with pytest.raises(FeatureCacheError, match=r"clip\.npy: the features hold NaN or inf"):
        writer.write(rows, feats)
    writer.finish()
    arr = np.load(shard(split_dir) / "slowfast.npy", mmap_mode="r+")  # damage on disk after extraction
    arr[4, 3] = bad
    arr.flush()
    del arr
    cache = FeatureCache.open(split_dir)
    with pytest.raises(FeatureCacheError, match=r"slowfast features of clip clip-b action 1 are NaN or inf"):
        cache.gather(np.arange(len(cache)), "slowfast")
    assert cache.gather(np.array([0, 1]), "slowfast").shape == (2, 6)  # the sound rows still read


def test_blocks_are_on_disk_at_their_rows_when_their_clips_are_recorded(tmp_path: Path) -> None:
    """`write_block` (the import's writes): each clip's rows at its offset, on disk once the clip is recorded (read
    back by a fresh reader, not through the writer), and a resumed writer adds the rest; a block that does not fit
    is refused with nothing written."""
    split_dir, index = tmp_path / "val", _index()
    writer = ShardWriter.open(split_dir, MANIFEST, (0, 1), index, DIMS)
    for clip in ("clip-c", "clip-a"):  # out of index order
        rows = np.flatnonzero(index["clip_uid"] == clip)
        writer.write_block(int(rows[0]), _features(rows))
    writer.clips_finished([("clip-c", None, None), ("clip-a", None, None)])
    on_disk = np.load(shard(split_dir) / "clip.npy")
    assert on_disk[:, 0, 0].tolist() == [1, 2, 3, 0, 0, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="do not fit"):
        writer.write_block(7, _features(np.array([3, 4, 5])))  # past the last row
    with pytest.raises(ValueError, match="do not fit"):
        writer.write_block(3, {"slowfast": np.ones((2, 5), np.float16), "clip": np.ones((2, 2, 4), np.float16)})
    del writer  # killed before clip-b: the next run resumes it
    writer = ShardWriter.open(split_dir, MANIFEST, (0, 1), index, DIMS)
    assert writer.pending_clips() == ["clip-b"]
    writer.write_block(3, _features(np.array([3, 4])))
    writer.clip_finished("clip-b")
    writer.finish()
    cache = FeatureCache.open(split_dir)
    assert cache.gather(np.arange(len(cache)), "slowfast")[:, 0].tolist() == list(range(1, 10))
