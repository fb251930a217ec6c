"""A synthetic Ego4D LTA dataset in the official layout, learnable the way Ego4D is.

Each clip follows the script of one *activity*: a cycle of (verb, noun) steps where each step has
an alternative (a branch), with occasional skipped steps and stray actions. The future therefore
depends on the observed context (which activity, where in its cycle), and repeating the last
action is a poor guess. Every segment shows its action: the noun is an object's shape and colour,
the verb is how the object moves; each activity has its own background tint (its "scenario").
Noise: pixel noise, colour and size jitter, random object placement, a drifting distractor blob.

Layout written under OUT (what `--data OUT` expects everywhere):
    annotations/fho_lta_{train,val,test_unannotated}.json, annotations/fho_lta_taxonomy.json
    clips/<clip_uid>.mp4          H.264, 30 fps, keyframe every 2 s
    synthetic.json                the generator's settings and which test clips are broken
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ego4d_lta.base.jsonio import write_json_atomic
from ego4d_lta.base.output_guard import check_dataset_root
from ego4d_lta.base.progress import progress_bar
from ego4d_lta.challenge.rules import SCENARIOS_FILE, SPLIT_FILES, TAXONOMY_FILE
from ego4d_lta.data.synthetic_render import FPS, NOUNS, SCENARIOS, VERBS, corrupt, render_clip


@dataclass(frozen=True)
class SizePreset:
    frame_size: int
    clips: dict[str, int]
    segments: tuple[int, int]
    activities: int


SIZES = {
    "tiny": SizePreset(64, {"train": 16, "val": 5, "test": 5}, (34, 42), 4),
    "small": SizePreset(112, {"train": 60, "val": 15, "test": 15}, (36, 60), 6),
}


@dataclass(frozen=True)
class SynthConfig:
    """What `ego4d-lta synth` generates; the same config and seed give the same dataset."""

    seed: int = 0
    size: str = "tiny"
    missing_videos: int = 0
    """Test clips whose annotations exist but whose video file does not (like Ego4D's undownloadable one)."""
    corrupt_videos: int = 0
    """Test clips whose video file is truncated garbage."""
    p_branch: float = 0.25
    p_skip: float = 0.05
    p_stray: float = 0.04


@dataclass
class Activity:
    """One script: `main[j]` or, with probability p_branch, `alt[j]` at cycle position j."""

    scenario: int
    main: list[tuple[int, int]]
    alt: list[tuple[int, int]]


@dataclass
class SynthSummary:
    out: Path
    clips: dict[str, list[str]] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    bytes: int = 0


def make_activities(rng: np.random.Generator, count: int) -> list[Activity]:
    """Random scripts: each activity has its own noun subset and a cycle of 5-7 steps."""
    activities = []
    for a in range(count):
        nouns = rng.choice(len(NOUNS), size=5, replace=False)
        length = int(rng.integers(5, 8))
        main, alt = [], []
        for _ in range(length):
            main.append((int(rng.integers(len(VERBS))), int(rng.choice(nouns))))
            alt.append((int(rng.integers(len(VERBS))), int(rng.choice(nouns))))
        activities.append(Activity(scenario=a % len(SCENARIOS), main=main, alt=alt))
    return activities


def script_actions(
    rng: np.random.Generator, activity: Activity, length: int, cfg: SynthConfig
) -> list[tuple[int, int]]:
    """A clip's sequence of (verb, noun): walk the activity's cycle with branches, skips and strays."""
    cycle = len(activity.main)
    phase = int(rng.integers(cycle))
    actions = []
    while len(actions) < length:
        r = rng.random()
        if r < cfg.p_stray:
            pool = activity.main + activity.alt
            actions.append(pool[int(rng.integers(len(pool)))])
            continue
        phase = (phase + (2 if r < cfg.p_stray + cfg.p_skip else 1)) % cycle
        step = activity.alt[phase] if rng.random() < cfg.p_branch else activity.main[phase]
        actions.append(step)
    return actions


def generate(
    out: Path | str, cfg: SynthConfig, progress: bool = False, workers: int | None = None
) -> SynthSummary:
    """Write the whole dataset under `out` (a new folder, or an earlier synthetic dataset's: its files are replaced).

    Scripts and annotations are drawn sequentially from one seeded generator; clips are then rendered
    by `workers` processes (default: all cores), each from its own seed, so the output is the same
    for any number of workers.
    """
    if cfg.size not in SIZES:
        raise ValueError(f"unknown size {cfg.size!r}: expected one of {', '.join(SIZES)}")
    preset = SIZES[cfg.size]
    if min(cfg.missing_videos, cfg.corrupt_videos) < 0:
        raise ValueError("--missing-videos and --corrupt-videos must be >= 0")
    if cfg.missing_videos + cfg.corrupt_videos > preset.clips["test"]:
        raise ValueError(f"at most {preset.clips['test']} broken test clips in size {cfg.size!r}")
    out = check_dataset_root(out)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    activities = make_activities(rng, preset.activities)
    summary = SynthSummary(out=out)
    jobs = []
    docs = {}
    clip_activity = {}
    for split, count in preset.clips.items():
        entries = []
        for c in range(count):
            uid = str(uuid.UUID(bytes=rng.bytes(16), version=4))
            activity = activities[c % len(activities)]
            clip_activity[uid] = c % len(activities)
            length = int(rng.integers(preset.segments[0], preset.segments[1] + 1))
            actions = script_actions(rng, activity, length, cfg)
            times = segment_times(rng, length)
            clip_seed = int(rng.integers(2**31))
            entries.extend(annotation_entries(uid, actions, times, labelled=split != "test"))
            summary.clips.setdefault(split, []).append(uid)
            broken = _broken_kind(split, c, count, cfg)
            path = out / "clips" / f"{uid}.mp4"
            if broken == "missing":
                summary.missing.append(uid)
                path.unlink(missing_ok=True)
                continue
            if broken == "corrupt":
                summary.corrupt.append(uid)
            jobs.append((path, actions, times, activity.scenario, preset.frame_size, clip_seed, broken == "corrupt"))
        summary.segments[split] = len(entries)
        docs[split] = {
            "version": "synthetic-1",
            "description": f"ego4d-lta synthetic dataset, size {cfg.size}, seed {cfg.seed}",
            "split": split,
            "clips": entries,
        }
    with progress_bar(len(jobs), "synth render", "clip", disable=not progress) as bar:  # rate and ETA
        for size in _run_jobs(jobs, workers):
            summary.bytes += size
            bar.update(1)
    write_json_atomic(out / "annotations" / TAXONOMY_FILE, {"verbs": [v for v, _ in VERBS], "nouns": list(NOUNS)})
    for split, doc in docs.items():
        write_json_atomic(out / "annotations" / SPLIT_FILES[split], doc)
    write_json_atomic(out / "annotations" / SCENARIOS_FILE, {str(i): name for i, (name, _) in enumerate(SCENARIOS)})
    info = {
        "config": asdict(cfg),
        "frame_size": preset.frame_size,
        "fps": FPS,
        "missing_videos": summary.missing,
        "corrupt_videos": summary.corrupt,
        "activities": [{"scenario": SCENARIOS[a.scenario][0], "main": a.main, "alt": a.alt} for a in activities],
        "clip_activity": clip_activity,
    }
    write_json_atomic(out / "synthetic.json", info)
    return summary


def _render_job(job: tuple) -> int:
    path, actions, times, scenario, size, seed, broken = job
    render_clip(path, actions, times, scenario, size, seed)
    if broken:
        corrupt(path, seed)
    return path.stat().st_size


def _run_jobs(jobs: list[tuple], workers: int | None) -> Iterator[int]:
    """Render clips, in parallel processes when more than one core is available; yields file sizes."""
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        yield from map(_render_job, jobs)
        return
    # spawn, not fork: the caller may hold threads (torch) or open PyAV containers.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_render_job, jobs)


def segment_times(rng: np.random.Generator, length: int) -> list[tuple[float, float]]:
    """Consecutive segments of 2.3-3.2 s (each longer than the 2.133 s SlowFast window), small gaps."""
    t = float(rng.uniform(0.2, 1.0))
    times = []
    for _ in range(length):
        duration = float(rng.uniform(2.3, 3.2))
        times.append((round(t, 3), round(t + duration, 3)))
        t += duration + float(rng.uniform(0.0, 0.4))
    return times


def annotation_entries(
    uid: str, actions: list[tuple[int, int]], times: list[tuple[float, float]], labelled: bool
) -> list[dict]:
    entries = []
    for idx, ((verb, noun), (start, end)) in enumerate(zip(actions, times, strict=True)):
        entry = {
            "clip_uid": uid,
            "video_uid": uid,
            "action_idx": idx,
            "action_clip_start_sec": start,
            "action_clip_end_sec": end,
            "action_clip_start_frame": round(start * FPS),
            "action_clip_end_frame": round(end * FPS),
        }
        if labelled:
            entry |= {"verb": VERBS[verb][0], "noun": NOUNS[noun], "verb_label": verb, "noun_label": noun}
        entries.append(entry)
    return entries


def _broken_kind(split: str, index: int, count: int, cfg: SynthConfig) -> str | None:
    """The last test clips are the broken ones: first the missing, then the corrupt."""
    if split != "test":
        return None
    from_end = count - 1 - index
    if from_end < cfg.missing_videos:
        return "missing"
    if from_end < cfg.missing_videos + cfg.corrupt_videos:
        return "corrupt"
    return None
