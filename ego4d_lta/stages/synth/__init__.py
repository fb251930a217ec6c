"""A synthetic Ego4D LTA dataset in the official layout, learnable the way Ego4D is.

Each clip follows the script of one *activity*: a cycle of (verb, noun) steps where each step has
an alternative (a branch), with occasional skipped steps and stray actions. The future therefore
depends on the observed context (which activity, where in its cycle), and repeating the last
action is a poor guess. Every segment shows its action: the noun is an object's shape and colour,
the verb is how the object moves; each activity has its own background tint (its "scenario").
Noise: pixel noise, colour and size jitter, random object placement, a drifting distractor blob.

Clips are cut from longer canonical videos, as in Ego4D: two or three clips of a split share one video, each at
its own non-zero offset in it, and the annotations carry the full official schema (`video_uid`,
`clip_parent_*`, `interval_*`, clip-relative seconds and frames).

Layout written under OUT (what `--data OUT` expects everywhere):
    annotations/fho_lta_{train,val,test_unannotated}.json, annotations/fho_lta_taxonomy.json
    clips/<clip_uid>.mp4          H.264, 30 fps, keyframe every 2 s (not with `videos=False`)
    synthetic.json                the generator's settings, which test clips are broken, the videos' layout (written
                                  first as {"status": "in progress"}: an interrupted synth is recognised)
    ego4d_features/v2/<set>/<video_uid>.pt   with `features_like_ego4d` (see `synth/features.py`)
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ego4d_lta.base.durable import sweep_leftovers
from ego4d_lta.base.jsonio import write_json_atomic
from ego4d_lta.base.output_guard import check_dataset_root
from ego4d_lta.base.progress import progress_bar
from ego4d_lta.challenge.rules import SCENARIOS_FILE, SPLIT_FILES, TAXONOMY_FILE
from ego4d_lta.data.synthetic_render import FPS, NOUNS, SCENARIOS, VERBS, corrupt, render_clip
from ego4d_lta.stages.synth.features import write_feature_download
from ego4d_lta.stages.synth.records import (
    EGO4D_V2,
    SIZES,
    Activity,
    ClipPlace,
    ClipScript,
    SynthConfig,
    SynthSummary,
    VideoLayout,
)


def place_in_videos(clip_scripts: dict[str, list[ClipScript]], rng: np.random.Generator) -> VideoLayout:
    """Two or three consecutive clips of a split per video (four at a split's end rather than one alone), 1-20 s
    apart, the first 5-30 s in, the video ending 3-10 s after the last. A video never spans two splits.
    """
    layout = VideoLayout({}, {}, {})
    for scripts in clip_scripts.values():
        i = 0
        while i < len(scripts):
            take = min(int(rng.integers(2, 4)), len(scripts) - i)
            if len(scripts) - i - take == 1:  # no video of one clip at the end
                take += 1
            video = str(uuid.UUID(bytes=rng.bytes(16), version=4))
            frame = int(rng.integers(5 * FPS, 30 * FPS))
            layout.clips[video] = []
            for n, script in enumerate(scripts[i : i + take]):
                if n:
                    frame += int(rng.integers(1 * FPS, 20 * FPS))
                layout.place[script.uid] = ClipPlace(video, frame, script.frames)
                layout.clips[video].append(script.uid)
                frame += script.frames
            layout.frames[video] = frame + int(rng.integers(3 * FPS, 10 * FPS))
            i += take
    return layout


def ego4d_clip_times(rng: np.random.Generator, scale: float) -> dict[str, list[list[tuple[float, float]]]]:
    """Per split, its clips' segment times in Ego4D v2's shape (`EGO4D_V2`), clips of `clip_seconds` filled with
    actions until the split holds `scale` times Ego4D's action count (the last clip cut short there)."""
    shape, plans = EGO4D_V2, {}
    for split, full in shape.actions:
        left, clips = max(1, round(full * scale)), []
        while left > 0:
            times, t = [], float(rng.uniform(*shape.gap_seconds))
            while left > len(times):
                end = t + float(rng.uniform(*shape.action_seconds))
                if end > shape.clip_seconds - 0.5:
                    break
                times.append((round(t, 3), round(end, 3)))
                t = end + float(rng.uniform(*shape.gap_seconds))
            clips.append(times)
            left -= len(times)
        plans[split] = clips
    return plans


def place_ego4d_like(clip_scripts: dict[str, list[ClipScript]], rng: np.random.Generator) -> VideoLayout:
    """`EGO4D_V2.clips_per_video` consecutive clips of a split per video (one more at a split's end rather than one
    alone), at random non-overlapping places in a video of `video_seconds` (longer if they need it)."""
    layout, per = VideoLayout({}, {}, {}), EGO4D_V2.clips_per_video
    for scripts in clip_scripts.values():
        i = 0
        while i < len(scripts):
            take = min(per, len(scripts) - i)
            if len(scripts) - i - take == 1:
                take += 1
            group = scripts[i : i + take]
            video = str(uuid.UUID(bytes=rng.bytes(16), version=4))
            used = sum(s.frames for s in group)
            frames = max(round(EGO4D_V2.video_seconds * FPS), used + 2 * FPS)
            gaps = np.sort(rng.integers(0, frames - used, take))  # the free frames before each clip
            layout.clips[video], before = [], 0
            for gap, script in zip(gaps, group, strict=True):
                layout.place[script.uid] = ClipPlace(video, int(gap) + before, script.frames)
                layout.clips[video].append(script.uid)
                before += script.frames
            layout.frames[video] = frames
            i += take
    return layout


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


def generate(out: Path | str, cfg: SynthConfig, progress: bool = False, workers: int | None = None) -> SynthSummary:
    """Write the whole dataset under `out` (a new folder, or an earlier synthetic dataset's: its files are replaced).

    Scripts and annotations are drawn sequentially from one seeded generator; clips are then rendered
    by `workers` processes (default: all cores), each from its own seed, so the output is the same
    for any number of workers.
    """
    from ego4d_lta.data.feature_sets import RELEASED_SETS

    if cfg.features_set not in RELEASED_SETS:
        raise ValueError(f"unknown feature set {cfg.features_set!r}: expected one of {', '.join(RELEASED_SETS)}")
    if cfg.size not in SIZES:
        raise ValueError(f"unknown size {cfg.size!r}: expected one of {', '.join(SIZES)}")
    preset = SIZES[cfg.size]
    if min(cfg.missing_videos, cfg.corrupt_videos) < 0:
        raise ValueError("--missing-videos and --corrupt-videos must be >= 0")
    if cfg.missing_videos + cfg.corrupt_videos > preset.clips["test"]:
        raise ValueError(f"at most {preset.clips['test']} broken test clips in size {cfg.size!r}")
    if cfg.scale < 0 or (cfg.scale and cfg.videos) or cfg.scale > 4:
        raise ValueError(f"--scale {cfg.scale}: needs --no-videos and 0 < F <= 4")
    out = check_dataset_root(out)
    # The marker first, saying the dataset is unfinished: a synth stopped half-way (a full disk, a kill) leaves a
    # folder that the next synth recognises as its own and writes again; the finished marker replaces it last.
    write_json_atomic(out / "synthetic.json", {"status": "in progress", "config": None})
    sweep_leftovers(out / "annotations")  # temporary files of an earlier, interrupted synth
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    activities = make_activities(rng, preset.activities)
    summary = SynthSummary(out=out)
    jobs = []
    docs = {}
    clip_activity = {}
    clip_scripts: dict[str, list[ClipScript]] = {}
    plans = ego4d_clip_times(rng, cfg.scale) if cfg.scale else None
    for split, count in ((s, len(t)) for s, t in plans.items()) if plans else preset.clips.items():
        scripts = clip_scripts.setdefault(split, [])
        for c in range(count):
            uid = str(uuid.UUID(bytes=rng.bytes(16), version=4))
            activity = activities[c % len(activities)]
            clip_activity[uid] = c % len(activities)
            if plans:
                times = plans[split][c]
                length = len(times)
            else:
                length = int(rng.integers(preset.segments[0], preset.segments[1] + 1))
            actions = script_actions(rng, activity, length, cfg)
            if not plans:
                times = segment_times(rng, length)
            clip_seed = int(rng.integers(2**31))
            scripts.append(ClipScript(uid, actions, times, activity.scenario))
            summary.clips.setdefault(split, []).append(uid)
            broken = _broken_kind(split, c, count, cfg)
            path = out / "clips" / f"{uid}.mp4"
            if broken == "missing":
                summary.missing.append(uid)
                path.unlink(missing_ok=True)
                continue
            if broken == "corrupt":
                summary.corrupt.append(uid)
            if cfg.videos:
                corrupt = broken == "corrupt"
                jobs.append((path, actions, times, activity.scenario, preset.frame_size, clip_seed, corrupt))
    # Drawn from their own generator: the clips, scripts and videos are those of the same seed before videos existed.
    place = place_ego4d_like if cfg.scale else place_in_videos
    videos = place(clip_scripts, np.random.default_rng([cfg.seed, 13]))
    clip_id = 0
    for split, scripts in clip_scripts.items():
        entries = []
        for script in scripts:
            labelled, place = split != "test", videos.place[script.uid]
            entries.extend(annotation_entries(script.uid, script.actions, script.times, labelled, place, clip_id))
            clip_id += 1
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
    verbs, nouns = [v for v, _ in VERBS], list(NOUNS)
    if cfg.scale:  # Ego4D's taxonomy size: the heads and the sampling are as large as on the real data
        verbs += [f"unused_verb_{i}" for i in range(len(verbs), EGO4D_V2.verbs)]
        nouns += [f"unused_noun_{i}" for i in range(len(nouns), EGO4D_V2.nouns)]
    write_json_atomic(out / "annotations" / TAXONOMY_FILE, {"verbs": verbs, "nouns": nouns})
    for split, doc in docs.items():
        write_json_atomic(out / "annotations" / SPLIT_FILES[split], doc)
    write_json_atomic(out / "annotations" / SCENARIOS_FILE, {str(i): name for i, (name, _) in enumerate(SCENARIOS)})
    if cfg.features_like_ego4d:
        summary.missing_features = write_feature_download(out, clip_scripts, videos, cfg)
    info = {
        "status": "complete",
        "config": asdict(cfg),
        "frame_size": preset.frame_size,
        "fps": FPS,
        "missing_videos": summary.missing,
        "corrupt_videos": summary.corrupt,
        "activities": [{"scenario": SCENARIOS[a.scenario][0], "main": a.main, "alt": a.alt} for a in activities],
        "clip_activity": clip_activity,
        "videos": {v: {"frames": n, "clips": videos.clips[v]} for v, n in videos.frames.items()},
        "missing_features": summary.missing_features,
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
    uid: str,
    actions: list[tuple[int, int]],
    times: list[tuple[float, float]],
    labelled: bool,
    place: ClipPlace | None = None,
    clip_id: int = 0,
) -> list[dict]:
    """The official schema's entries of one clip (`place`: where it lies in its video; default: alone at 0)."""
    place = place or ClipPlace(uid, 0, int(np.ceil((times[-1][1] + 0.5) * FPS)))
    parent = {
        "clip_parent_start_sec": place.start_frame / FPS,
        "clip_parent_end_sec": (place.start_frame + place.frames) / FPS,
        "clip_parent_start_frame": place.start_frame,
        "clip_parent_end_frame": place.start_frame + place.frames,
        "interval_start_sec": 0.0,
        "interval_end_sec": place.frames / FPS,
        "interval_start_frame": 0,
        "interval_end_frame": place.frames,
    }
    entries = []
    for idx, ((verb, noun), (start, end)) in enumerate(zip(actions, times, strict=True)):
        entry = {
            "clip_id": clip_id,
            "clip_uid": uid,
            "video_uid": place.video_uid,
            **parent,
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
