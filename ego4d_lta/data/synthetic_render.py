"""Drawing a synthetic Ego4D clip: each segment's object shows its action (noun = shape and colour, verb = motion).

The look of the synthetic taxonomy lives here (what `ego4d-lta synth` names, and how each name is drawn), so the
generator in `stages/synth.py` only scripts which actions happen when.
"""

from __future__ import annotations

import functools
from pathlib import Path

import av
import numpy as np

from ego4d_lta.base.durable import atomic_target

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
    with atomic_target(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
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


def corrupt(path: Path, seed: int) -> None:
    """Keep a few header bytes and replace the rest with noise: the container cannot be opened."""
    data = path.read_bytes()
    noise = np.random.default_rng(seed).integers(0, 256, size=max(len(data) // 4, 512), dtype=np.uint8)
    path.write_bytes(data[:64] + noise.tobytes())
