"""`ego4d-lta import-features`: Ego4D's released per-video features -> the feature cache `extract` would build.

For users without the videos (hundreds of GB of clips, days of SlowFast): every annotated segment of a split
gets the pooled rows of its canonical video's `<video_uid>.pt` (`data/released_features.py` says which rows).
Each video file is read once (memory-mapped where torch can), for all its clips. Shards partition the videos
(`--shard I/N`); a killed run resumes at the first clip it had not finished. Each clip's progress line records its
video file's stamp (`source_stamp`: size, mtime, ctime and manifest frame count); a rerun imports again the clips whose
file has changed since, so a replaced download never leaves the old rows behind. A video whose file is missing,
and a segment past the video's rows, are reported by video and clip: those segments get no features (their windows
still get a prediction, the fallback); a file that is there but breaks a rule stops the import
(`data/released_files.py`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ego4d_lta import __version__
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.hashing import file_digest
from ego4d_lta.base.jsonio import printable
from ego4d_lta.challenge.annotations import load_split, load_taxonomy, split_path, taxonomy_path
from ego4d_lta.data.feature_cache import MANIFEST, FeatureCacheError, FinishedClip, ShardWriter
from ego4d_lta.data.feature_record import CacheManifest, FeatureRecord, ReleasedFeatures
from ego4d_lta.data.feature_sets import RELEASED_SETS, FeatureSet, released_tag
from ego4d_lta.data.released_features import (
    POOLING,
    pool_spans,
    row_windows,
    segment_spans,
    used_rows,
    value_problem,
)
from ego4d_lta.data.released_files import (
    FeatureFileError,
    InvalidFeatureFile,
    frame_counts,
    load_rows,
    source_stamp,
)
from ego4d_lta.runtime.jobs import check_split_and_shard

CACHE_DTYPES = ("float16", "float32")
"""What `import-features --dtype` writes the pooled rows as. float16 (the default, as `extract` stores its own) is
half the disk of float32; the conversion is of the pooled rows only (one per segment), after pooling in float32.
On synthetic data the val ED@20 of float16 and float32 caches differ by a tenth of the seed-to-seed spread
(benchmarks/bench_cache_dtype.py, docs/data.md)."""


@dataclass
class ImportConfig:
    data_dir: Path
    features_dir: Path
    split: str
    download: Path
    """`--ego4d-features DIR`: the Ego4D CLI's output directory (or the set's folder itself)."""
    feature_set: str = "slowfast8x8_r101_k400"
    stride: int | None = None
    """The set's stride in frames, when the download's rows say otherwise than RELEASED_SETS."""
    shard: tuple[int, int] = (0, 1)
    progress: bool = True
    dtype: str = "float16"
    """The cache's dtype (CACHE_DTYPES); a cache made with the other one is refused as stale."""


@dataclass
class ImportSummary:
    split_dir: Path
    rows: int
    videos: int
    done_now: int
    seconds: float
    failed_videos: dict[str, str] = field(default_factory=dict)
    """video_uid -> why none of its segments have features."""
    unusable: int = 0
    """Segments without features (those of failed videos included)."""
    changed_videos: list[str] = field(default_factory=list)
    """Videos imported before whose file has changed since: their clips were imported again."""

    @property
    def segments_per_second(self) -> float:
        return self.done_now / self.seconds if self.seconds else 0.0


def feature_set(cfg: ImportConfig) -> FeatureSet:
    if cfg.feature_set not in RELEASED_SETS:
        raise UserError(f"--set {cfg.feature_set}: choose one of Ego4D's released sets: {', '.join(RELEASED_SETS)}")
    fs = RELEASED_SETS[cfg.feature_set]
    if cfg.stride is not None:
        if not 1 <= cfg.stride <= fs.window:  # a stride past the window would leave frames no row sees
            raise UserError(f"--stride {cfg.stride}: must be 1..{fs.window} frames (the set's window)")
        fs = FeatureSet(fs.name, fs.array, fs.dim, fs.window, cfg.stride, fs.fps)
    return fs


def set_folder(download: Path, set_name: str) -> Path:
    """Where the set's `<video_uid>.pt` files are: DIR/v2/<set>, DIR/v1/<set>, DIR/<set>, or DIR itself."""
    candidates = [download / "v2" / set_name, download / "v1" / set_name, download / set_name, download]
    for folder in candidates:
        if folder.is_dir() and (folder.name == set_name or any(folder.glob("*.pt"))):
            return folder
    raise UserError(
        f"--ego4d-features {download}: no {set_name} features there (looked in {', '.join(map(str, candidates[:3]))}); "
        f"download them with `ego4d --output_directory {download} --datasets {set_name} --benchmarks FHO`"
    )


def build_manifest(cfg: ImportConfig, fs: FeatureSet, annotations: Path, exact_last_row: bool) -> CacheManifest:
    """What the cache holds and how it was made; a cache made otherwise is refused (`feature_cache.check_manifest`)."""
    released = ReleasedFeatures(
        set=fs.name,
        array=fs.array,
        dim=fs.dim,
        fps=fs.fps,
        window=fs.window,
        stride=fs.stride,
        pooling=POOLING,
        last_row="at the video's end (manifest.csv num_frames)" if exact_last_row else "at its regular place",
    )
    return CacheManifest(
        record=FeatureRecord(slowfast=None, clip=None, sampling={}, released=released),
        split=cfg.split,
        annotations_sha256=file_digest(annotations),
        shards=cfg.shard[1],
        package=__version__,
        dtype=cfg.dtype,
        made_by="import-features",
    )


def refuse_other_dtype(split_dir: Path, dtype: str) -> None:
    """A cache there of the other dtype is stale (as any other setting): the error says how to keep it."""
    path = split_dir / MANIFEST
    if path.is_file() and (found := CacheManifest.read(path).dtype) != dtype:
        raise FeatureCacheError(
            f"{path}: stale feature cache of {found} rows, --dtype {dtype} now; pass --dtype {found} to keep "
            "using it, or delete the folder (or use another --features dir) to import again"
        )


def segment_table(table: pd.DataFrame, where: Path) -> pd.DataFrame:
    """The split's segments with their video frames; every entry must name its video and offset."""
    lacking = table[(table["video_uid"] == "") | (table["clip_parent_start_frame"] < 0)]
    if len(lacking):
        row = lacking.iloc[0]
        raise UserError(
            f"{where}: clip_uid={row.clip_uid}: no video_uid / clip_parent_start_frame; importing per-video "
            "features needs the official annotation files, which carry both"
        )
    rows = table.assign(view=0, video_start=table["clip_parent_start_frame"] + table["start_frame"])
    rows["video_end"] = table["clip_parent_start_frame"] + table["end_frame"]
    return rows.sort_values(["clip_uid", "action_idx"], kind="stable").reset_index(drop=True)


def import_features(cfg: ImportConfig) -> ImportSummary:
    """Import (or finish importing) one shard of one split into FEATURES_DIR/ego4d-<set>/<split>/."""
    check_split_and_shard(cfg.split, cfg.shard)
    if cfg.dtype not in CACHE_DTYPES:
        raise UserError(f"--dtype {printable(str(cfg.dtype), 40)}: choose {' or '.join(CACHE_DTYPES)}")
    i, n = cfg.shard
    fs = feature_set(cfg)
    annotations = cfg.data_dir / "annotations"
    split_file = split_path(annotations, cfg.split)
    table = load_split(split_file, load_taxonomy(taxonomy_path(annotations)), require_labels=False)
    rows = segment_table(table, split_file)
    folder = set_folder(cfg.download, fs.name)
    counts = frame_counts(folder)

    videos = sorted(rows["video_uid"].unique())[i::n]
    if n > 1:  # (a boolean selection copies every column: skipped when there is nothing to leave out)
        rows = rows[rows["video_uid"].isin(set(videos))].reset_index(drop=True)
    split_dir = cfg.features_dir / released_tag(fs.name) / cfg.split
    manifest = build_manifest(cfg, fs, split_file, exact_last_row=bool(counts))
    refuse_other_dtype(split_dir, cfg.dtype)
    writer = ShardWriter.open(split_dir, manifest, cfg.shard, rows, {fs.array: (fs.dim,)}, cfg.dtype)
    stamps = {video: source_stamp(folder / f"{video}.pt", counts.get(video)) for video in videos}
    summary = ImportSummary(split_dir, len(rows), len(videos), 0, 0.0)
    summary.changed_videos = redo_changed(writer, rows, stamps)
    pending = set(writer.pending_clips())
    todo = rows[rows["clip_uid"].isin(pending)] if writer.finished else rows  # a fresh shard: every clip
    started = time.perf_counter()
    from tqdm import tqdm

    desc = f"import {fs.name} {cfg.split} {i}/{n}"
    bar = tqdm(total=len(todo), desc=desc, unit="seg", file=sys.stderr, dynamic_ncols=True, disable=not cfg.progress)
    commit = _Batch(writer)
    with bar:
        try:
            for video, segments in todo.groupby("video_uid", sort=True):
                path = folder / f"{video}.pt"
                source = Source(path, counts.get(video), stamps[video])
                done = import_video(source, video, segments, fs, writer, commit, summary)
                bar.update(len(segments))
                for warning in done:
                    bar.write(f"warning: {warning}", file=sys.stderr)
        finally:  # the clips finished so far are kept (a rerun resumes after them), the refused video's not begun
            commit.flush()
    summary.seconds = time.perf_counter() - started
    writer.finish()
    return summary


def redo_changed(writer: ShardWriter, rows: pd.DataFrame, stamps: dict[str, list[int] | None]) -> list[str]:
    """The videos whose finished clips were imported from a file other than the one there now (another stamp, or
    none recorded), their clips made pending again (`ShardWriter.redo`). A file gone since is not a change: its
    rows stay (the download may be deleted once imported)."""
    recorded = {}
    for clip, video in zip(rows["clip_uid"], rows["video_uid"], strict=True):
        if clip in writer.finished:
            recorded.setdefault(video, {})[clip] = writer.finished[clip].get("source")
    changed = sorted(
        video
        for video, clips in recorded.items()
        if stamps[video] is not None and any(source != stamps[video] for source in clips.values())
    )
    writer.redo([clip for video in changed for clip in recorded[video]])
    return changed


@dataclass(frozen=True)
class Source:
    """A video's feature file as this run reads it."""

    path: Path
    frames: int | None
    """Its frame count in manifest.csv (None: not listed)."""
    stamp: list[int] | None
    """`source_stamp`, taken before the file is read (a file changed while read differs on the next run)."""


class _Batch:
    """Finished clips recorded together at most every COMMIT_SECONDS: one flush + fsync, not one per clip (a
    killed run redoes at most those seconds)."""

    COMMIT_SECONDS = 2.0

    def __init__(self, writer: ShardWriter) -> None:
        self.writer, self.clips, self.last = writer, [], time.monotonic()

    def add(self, clip: FinishedClip) -> None:
        self.clips.append(clip)
        if time.monotonic() - self.last >= self.COMMIT_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.writer.clips_finished(self.clips)
        self.clips, self.last = [], time.monotonic()


def import_video(
    source: Source,
    video: str,
    segments: pd.DataFrame,
    fs: FeatureSet,
    writer: ShardWriter,
    commit: _Batch,
    summary: ImportSummary,
) -> list[str]:
    """Pool one video's rows for its pending segments (one read of its file) into the cache; the warnings."""
    clips = list(dict.fromkeys(segments["clip_uid"]))
    path = source.path
    try:
        features = load_rows(path, fs.dim)
        starts, ends = row_windows(len(features), source.frames, fs.window, fs.stride)
    except (FeatureFileError, ValueError) as e:
        reason = f"video {video}: {e}"
        summary.failed_videos[video] = str(e)
        summary.unusable += len(segments)
        for clip in clips:
            commit.add(FinishedClip(clip, error=reason, source=source.stamp))
        return [f"{reason}; no features for its {len(segments)} segments (clips {', '.join(clips)})"]
    first, last, _, fits = segment_spans(segments["video_start"], segments["video_end"], starts, ends, fs.window)
    problem = value_problem(features, used_rows(len(features), first[fits], last[fits]), fs.max_abs)
    if problem:
        raise InvalidFeatureFile(path, f"the feature tensor's {problem}")
    pooled = np.zeros((len(segments), fs.dim), np.float32)
    pooled[fits] = pool_spans(features, first[fits], last[fits])
    bad = ~fits
    warnings = []
    rows, actions = segments.index.to_numpy(), segments["action_idx"].to_numpy()
    clip_of = segments["clip_uid"].to_numpy()
    for clip in clips:
        mine = np.flatnonzero(clip_of == clip)  # a clip's segments are consecutive rows of the shard
        writer.write_block(int(rows[mine[0]]), {fs.array: pooled[mine[0] : mine[-1] + 1]})
        unusable = {}
        for k in mine[bad[mine]]:
            a, b = segments["video_start"].iat[k], segments["video_end"].iat[k]
            unusable[int(actions[k])] = (
                f"video {video} has {len(features)} rows; frames [{a}, {b}) run past the last row's window "
                f"(ends at {ends[-1]})"
            )
        commit.add(FinishedClip(clip, unusable=unusable, source=source.stamp))
        if unusable:
            summary.unusable += len(unusable)
            listed, why = ", ".join(map(str, sorted(unusable))), unusable[min(unusable)]
            warnings.append(f"clip {clip} (video {video}): no features for action_idx {listed}: {why}")
    summary.done_now += int((~bad).sum())
    return warnings
