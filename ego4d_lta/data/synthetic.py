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
    synthetic.json                the generator's settings, which test clips are broken, the videos' layout
    ego4d_features/v2/<set>/<video_uid>.pt   with `features_like_ego4d` (see `synthetic_features`)
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np

from ego4d_lta.challenge import SCENARIOS_FILE, SPLIT_FILES, TAXONOMY_FILE
from ego4d_lta.data.jsonio import write_json_atomic

FPS = 30

# (name in the taxonomy's style, motion pattern)
VERBS = (
    ("take_(pick,_grab,_get)", "rise"),
    ("put_(place,_leave,_drop)", "fall"),
    ("cut_(trim,_slice,_chop)", "shake"),
    ("wash_(clean,_wipe,_rinse)", "circle"),
    ("open_(unscrew,_unlock)", "grow"),
    ("close_(shut,_lock)", "shrink"),
    ("hold_(support,_grip,_grasp)", "still"),
    ("move_(transfer,_pass,_exchange)", "slide"),
    ("pour", "diagonal"),
    ("turn_on_(switch_on,_start)", "blink"),
)
SHAPES = ("disk", "square", "triangle", "ring", "cross", "bar")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 215, 40),
    "magenta": (210, 50, 200),
    "cyan": (40, 200, 210),
    "white": (240, 240, 240),
    "orange": (245, 140, 30),
}
NOUNS = (
    "knife",
    "onion",
    "plate",
    "pot",
    "cup",
    "door",
    "tap",
    "sponge",
    "bowl",
    "chopping_board",
    "bottle",
    "brush",
    "box",
    "paper",
    "spoon",
    "drawer",
)
SCENARIOS = (
    ("Cooking", (70, 60, 50)),
    ("Carpenter", (55, 70, 55)),
    ("Cleaning / laundry", (50, 55, 75)),
    ("Car mechanic", (75, 75, 75)),
    ("Baker", (80, 65, 70)),
    ("Crafting/knitting/sewing/drawing/painting", (60, 75, 80)),
)


def noun_look(noun: int) -> tuple[str, tuple[int, int, int]]:
    """The shape and colour that show noun `noun` (distinct for every noun)."""
    colours = list(COLOURS.values())
    return SHAPES[noun % len(SHAPES)], colours[noun % len(colours)]


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
    videos: bool = True
    """Render the clips' mp4 files (False: annotations only, e.g. with `features_like_ego4d`)."""
    features_like_ego4d: bool = False
    """Also write a per-video feature download in Ego4D's released layout (`synthetic_features`)."""
    missing_features: int = 0
    """Test videos whose feature file the download lacks (the last ones)."""


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
    missing_features: list[str] = field(default_factory=list)
    """Videos whose feature file was left out of the synthetic feature download."""
    bytes: int = 0


@dataclass
class ClipScript:
    """What a clip shows: its actions and their clip-relative times, over its activity's scenario."""

    uid: str
    actions: list[tuple[int, int]]
    times: list[tuple[float, float]]
    scenario: int

    @property
    def frames(self) -> int:
        """The clip's length in frames (as rendered: half a second after its last segment)."""
        return int(np.ceil((self.times[-1][1] + 0.5) * FPS))


@dataclass
class ClipPlace:
    """Where a clip was cut from: its canonical video and its first frame there."""

    video_uid: str
    start_frame: int
    frames: int


@dataclass
class VideoLayout:
    place: dict[str, ClipPlace]
    frames: dict[str, int]
    """video_uid -> its frame count N"""
    clips: dict[str, list[str]]
    """video_uid -> its clips, in order"""


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
    out: Path | str, cfg: SynthConfig, progress: Callable[[str], None] | None = None, workers: int | None = None
) -> SynthSummary:
    """Write the whole dataset under `out` (existing files of the same names are replaced).

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
    out = Path(out)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    activities = make_activities(rng, preset.activities)
    summary = SynthSummary(out=out)
    jobs = []
    docs = {}
    clip_activity = {}
    clip_scripts: dict[str, list[ClipScript]] = {}
    for split, count in preset.clips.items():
        scripts = clip_scripts.setdefault(split, [])
        for c in range(count):
            uid = str(uuid.UUID(bytes=rng.bytes(16), version=4))
            activity = activities[c % len(activities)]
            clip_activity[uid] = c % len(activities)
            length = int(rng.integers(preset.segments[0], preset.segments[1] + 1))
            actions = script_actions(rng, activity, length, cfg)
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
    videos = place_in_videos(clip_scripts, np.random.default_rng([cfg.seed, 13]))
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
    for done, size in enumerate(_run_jobs(jobs, workers), start=1):
        summary.bytes += size
        if progress:
            progress(f"rendered {done}/{len(jobs)} clips")
    write_json_atomic(out / "annotations" / TAXONOMY_FILE, {"verbs": [v for v, _ in VERBS], "nouns": list(NOUNS)})
    for split, doc in docs.items():
        write_json_atomic(out / "annotations" / SPLIT_FILES[split], doc)
    write_json_atomic(out / "annotations" / SCENARIOS_FILE, {str(i): name for i, (name, _) in enumerate(SCENARIOS)})
    if cfg.features_like_ego4d:
        from ego4d_lta.data.synthetic_features import write_feature_download

        summary.missing_features = write_feature_download(out, clip_scripts, videos, cfg)
    info = {
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
    path, actions, times, scenario, size, seed, corrupt = job
    render_clip(path, actions, times, scenario, size, seed)
    if corrupt:
        _corrupt(path, seed)
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


def render_clip(
    path: Path,
    actions: list[tuple[int, int]],
    times: list[tuple[float, float]],
    scenario: int,
    size: int,
    seed: int,
) -> None:
    """Render and encode one clip (H.264, yuv420p, 30 fps, keyframe every 2 s) to `path` atomically."""
    rng = np.random.default_rng(seed)
    total = int(np.ceil((times[-1][1] + 0.5) * FPS))
    backgrounds = _noisy_backgrounds(rng, scenario, size)
    distractor = _distractor_path(rng, total, size)
    looks = [_segment_look(rng, size) for _ in times]
    noise_index = rng.integers(len(backgrounds), size=total)
    objects = _object_tracks(actions, times, looks, total, size)
    blob = _sprite("disk", 0.07 * size)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        # The same bytes for the same seed: one encoder thread, and no macroblock-tree rate control (with it, x264
        # 0.165's output varied now and then between identical encodes in one process: ~2 in 60, seen here).
        options = {"preset": "veryfast", "crf": "26", "g": str(2 * FPS), "x264-params": "mbtree=0"}
        stream.codec_context.options = options
        stream.codec_context.thread_count = 1
        for f in range(total):
            frame = backgrounds[noise_index[f]].copy()
            _paste(frame, blob, distractor[f, 0], distractor[f, 1], (110, 110, 110))
            track = objects.get(f)
            if track is not None:
                sprite, cx, cy, colour = track
                _paste(frame, sprite, cx, cy, colour)
            # PyAV's own conversion to YUV would use a multi-threaded swscale: one thread, the same bytes.
            yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p", threads=1)
            for packet in stream.encode(yuv):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def _object_tracks(
    actions: list[tuple[int, int]], times: list[tuple[float, float]], looks: list[dict], total: int, size: int
) -> dict[int, tuple[np.ndarray, float, float, np.ndarray]]:
    """frame -> (sprite mask, centre x, centre y, colour) of the acting object, for frames inside a segment."""
    tracks = {}
    for seg, ((verb, noun), (start, end)) in enumerate(zip(actions, times, strict=True)):
        frames = np.arange(round(start * FPS), min(round(end * FPS), total))
        shape, colour = noun_look(noun)
        colour = np.clip(np.array(colour) + looks[seg]["colour_jitter"], 0, 255).astype(np.uint8)
        cx, cy, scale, visible = _motion(VERBS[verb][1], frames / FPS - start, looks[seg], size)
        for i, f in enumerate(frames):
            if visible[i]:
                radius = round(looks[seg]["radius"] * scale[i] * 4) / 4  # quantised: sprites are reused
                tracks[int(f)] = (_sprite(shape, radius), float(cx[i]), float(cy[i]), colour)
    return tracks


@functools.lru_cache(maxsize=1024)
def _sprite(shape: str, radius: float) -> np.ndarray:
    """The boolean mask of `shape` with `radius` pixels, centred in a (2R+1)^2 box."""
    half = int(np.ceil(radius * 1.2))
    grid = np.arange(-half, half + 1, dtype=np.float32) / radius
    return _shape_mask(shape, grid[None, :], grid[:, None])


def _paste(frame: np.ndarray, sprite: np.ndarray, cx: float, cy: float, colour: object) -> None:
    """Draw `sprite` centred at (cx, cy) into `frame`, clipped at the borders."""
    half = sprite.shape[0] // 2
    x0, y0 = round(cx) - half, round(cy) - half
    h, w = frame.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    sx1, sy1 = min(sprite.shape[1], w - x0), min(sprite.shape[0], h - y0)
    if sx1 <= sx0 or sy1 <= sy0:
        return
    region = frame[y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1]
    region[sprite[sy0:sy1, sx0:sx1]] = colour


def _segment_look(rng: np.random.Generator, size: int) -> dict:
    """A segment's random placement, size, speed, phase and colour jitter."""
    return {
        "cx": float(rng.uniform(0.35, 0.65) * size),
        "cy": float(rng.uniform(0.35, 0.65) * size),
        "radius": float(rng.uniform(0.13, 0.17) * size),
        "amplitude": float(rng.uniform(0.16, 0.22) * size),
        "freq": float(rng.uniform(0.8, 1.2)),
        "phase": float(rng.uniform(0, 1)),
        "colour_jitter": rng.integers(-20, 21, size=3),
    }


def _motion(
    pattern: str, seconds: np.ndarray, look: dict, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre x, y, scale and visibility of the object at `seconds` into its segment, per frame."""
    u = seconds * look["freq"] + look["phase"]
    saw = u - np.floor(u)
    wave = np.sin(2 * np.pi * u)
    a = look["amplitude"]
    cx = np.full_like(u, look["cx"])
    cy = np.full_like(u, look["cy"])
    scale = np.ones_like(u)
    visible = np.ones(u.shape, bool)
    if pattern == "rise":
        cy += a * (0.5 - saw) * 1.6
    elif pattern == "fall":
        cy -= a * (0.5 - saw) * 1.6
    elif pattern == "shake":
        cx += 0.4 * a * np.sin(2 * np.pi * 3 * u)
    elif pattern == "circle":
        cx += a * np.cos(2 * np.pi * u)
        cy += a * wave
    elif pattern == "grow":
        scale = 0.6 + 0.8 * saw
    elif pattern == "shrink":
        scale = 1.4 - 0.8 * saw
    elif pattern == "still":
        cx += 0.03 * size * np.sin(2 * np.pi * 0.3 * u)
    elif pattern == "slide":
        cx += a * wave
    elif pattern == "diagonal":
        cx += a * wave
        cy += a * wave
    elif pattern == "blink":
        visible = np.sin(2 * np.pi * 2 * u) > -0.2
    return cx, cy, scale, visible


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "disk":
        return dx * dx + dy * dy <= 1.0
    if shape == "square":
        return np.maximum(ax, ay) <= 0.85
    if shape == "triangle":
        return (dy >= -0.9) & (dy <= 0.9) & (ax <= (dy + 0.9) * 0.55)
    if shape == "ring":
        r2 = dx * dx + dy * dy
        return (r2 <= 1.0) & (r2 >= 0.3)
    if shape == "cross":
        return ((ax <= 0.3) & (ay <= 1.0)) | ((ay <= 0.3) & (ax <= 1.0))
    if shape == "bar":
        return (ax <= 1.1) & (ay <= 0.35)
    raise ValueError(shape)


def _noisy_backgrounds(rng: np.random.Generator, scenario: int, size: int, count: int = 16) -> np.ndarray:
    """`count` noisy copies of the clip's background: the scenario's tint, a per-clip offset, a soft gradient."""
    base = np.array(SCENARIOS[scenario][1], np.float32) + rng.integers(-12, 13, size=3)
    ramp = np.linspace(-15, 15, size, dtype=np.float32)
    grad = ramp[None, :, None] * rng.uniform(-1, 1) + ramp[:, None, None] * rng.uniform(-1, 1)
    noise = rng.normal(0, 3, size=(count, size, size, 3))
    return np.clip(base + grad + noise, 0, 255).round().astype(np.uint8)


def _distractor_path(rng: np.random.Generator, total: int, size: int) -> np.ndarray:
    """A grey blob drifting smoothly over the whole clip, unrelated to the actions."""
    steps = rng.normal(0, 0.01 * size, size=(total, 2)).cumsum(axis=0)
    start = rng.uniform(0.1, 0.9, size=2) * size
    return np.mod(start + steps, size)


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


def _corrupt(path: Path, seed: int) -> None:
    """Keep a few header bytes and replace the rest with noise: the container cannot be opened."""
    data = path.read_bytes()
    noise = np.random.default_rng(seed).integers(0, 256, size=max(len(data) // 4, 512), dtype=np.uint8)
    path.write_bytes(data[:64] + noise.tobytes())
