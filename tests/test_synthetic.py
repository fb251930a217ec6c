"""The synthetic Ego4D dataset: official layout, deterministic, broken clips, learnable and visible."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.baselines import repeat_last_baseline
from ego4d_lta.challenge.metrics import score
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.data import synthetic_render
from ego4d_lta.data.synthetic_render import FPS, noun_look
from ego4d_lta.stages import synth as synthetic
from ego4d_lta.stages.synth import SIZES, SynthConfig


def test_layout_and_splits(synth_data: Path) -> None:
    names = sorted(p.name for p in (synth_data / "annotations").iterdir())
    assert names == [
        "fho_lta_taxonomy.json",
        "fho_lta_test_unannotated.json",
        "fho_lta_train.json",
        "fho_lta_val.json",
        "scenarios_taxonomy.json",
    ]
    scenarios = json.loads((synth_data / "annotations" / "scenarios_taxonomy.json").read_text())
    assert list(scenarios.values()) == [name for name, _ in synthetic.SCENARIOS]
    info = json.loads((synth_data / "synthetic.json").read_text())
    for split, clips in SIZES["tiny"].clips.items():
        table, _ = load_annotations(synth_data / "annotations", split)
        assert table.clip_uid.nunique() == clips
        assert len(make_windows(table).challenge()) > 0
        labelled = split != "test"
        assert ((table.verb >= 0) & (table.noun >= 0)).all() == labelled
        assert ((table.verb == -1) & (table.noun == -1)).all() == (not labelled)
    raw = (synth_data / "annotations" / "fho_lta_test_unannotated.json").read_text()
    assert "verb_label" not in raw and "noun_label" not in raw
    videos = {p.stem for p in (synth_data / "clips").glob("*.mp4")}
    assert len(info["missing_videos"]) == 1 and info["missing_videos"][0] not in videos
    assert len(info["corrupt_videos"]) == 1 and info["corrupt_videos"][0] in videos


def test_videos_are_h264_30fps_and_cover_their_segments(synth_data: Path) -> None:
    table, _ = load_annotations(synth_data / "annotations", "val")
    uid = table.clip_uid.iloc[0]
    with av.open(str(synth_data / "clips" / f"{uid}.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == FPS
        assert (stream.width, stream.height) == (SIZES["tiny"].frame_size,) * 2
        frames = sum(1 for _ in container.decode(video=0))
    assert frames / FPS >= table[table.clip_uid == uid].end_sec.max()


def test_corrupt_video_cannot_be_opened(synth_data: Path) -> None:
    uid = json.loads((synth_data / "synthetic.json").read_text())["corrupt_videos"][0]
    with pytest.raises(av.error.FFmpegError), av.open(str(synth_data / "clips" / f"{uid}.mp4")) as c:
        next(c.decode(video=0))


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # annotations: the whole generator, with rendering stubbed out (rendering is checked below)
    monkeypatch.setattr(synthetic, "_run_jobs", lambda jobs, workers: iter([0] * len(jobs)))
    a, b, c = (synthetic.generate(tmp_path / n, SynthConfig(seed=s)) for n, s in (("a", 3), ("b", 3), ("c", 4)))
    for name in ("fho_lta_train.json", "fho_lta_val.json", "fho_lta_test_unannotated.json"):
        assert (a.out / "annotations" / name).read_bytes() == (b.out / "annotations" / name).read_bytes()
        assert (a.out / "annotations" / name).read_bytes() != (c.out / "annotations" / name).read_bytes()
    # video: the same clip rendered twice is byte-identical; another seed is not
    actions, times = [(0, 1), (3, 2), (9, 5)], [(0.2, 2.6), (2.7, 5.2), (5.3, 7.9)]
    for name, seed in (("x", 1), ("y", 1), ("z", 2)):
        synthetic.render_clip(tmp_path / f"{name}.mp4", actions, times, 0, 64, seed)
    assert (tmp_path / "x.mp4").read_bytes() == (tmp_path / "y.mp4").read_bytes()
    assert (tmp_path / "x.mp4").read_bytes() != (tmp_path / "z.mp4").read_bytes()


def _script_oracle(synth_data: Path, table, windows) -> tuple[np.ndarray, np.ndarray]:
    """Knows each clip's activity script: continues its main cycle from the last observed step."""
    info = json.loads((synth_data / "synthetic.json").read_text())
    verb, noun = np.zeros((len(windows), K, Z), np.int64), np.zeros((len(windows), K, Z), np.int64)
    for i, uid in enumerate(windows.clip_uids):
        activity = info["activities"][info["clip_activity"][uid]]
        main, alt = [tuple(s) for s in activity["main"]], [tuple(s) for s in activity["alt"]]
        last = (int(table.verb.iloc[windows.observed[i, -1]]), int(table.noun.iloc[windows.observed[i, -1]]))
        phases = [j for j, (m, a) in enumerate(zip(main, alt, strict=True)) if last in (m, a)] or [0]
        for k in range(K):
            phase = phases[0] + k // 2 * (1 if k % 2 else -1)  # the matched phase, then its neighbours
            steps = [main[(phase + z + 1) % len(main)] for z in range(Z)]
            verb[i, k], noun[i, k] = zip(*steps, strict=True)
    return verb, noun


def test_future_depends_on_context_and_repeat_last_is_poor(synth_data: Path) -> None:
    table, taxonomy = load_annotations(synth_data / "annotations", "val")
    windows = make_windows(table, include_extra=False)
    truth = table.verb.to_numpy()[windows.future], table.noun.to_numpy()[windows.future]
    repeat = score(*repeat_last_baseline(windows, table), *truth, taxonomy.num_nouns).ed20
    oracle = score(*_script_oracle(synth_data, table, windows), *truth, taxonomy.num_nouns).ed20
    assert repeat["verb"] > 0.7 and repeat["noun"] > 0.55
    assert oracle["verb"] < repeat["verb"] - 0.25 and oracle["noun"] < repeat["noun"] - 0.2


def _segment_features(path: Path, table, uid: str) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Per segment of a clip: the object's mean colour, motion statistics, and the segment's row."""
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    ys, xs = np.mgrid[: frames.shape[1], : frames.shape[2]]
    colours, motions, rows = [], [], []
    for row in np.flatnonzero(table.clip_uid.to_numpy() == uid):
        start = round(table.start_sec.iloc[row] * FPS)
        window = frames[start : start + 64].astype(np.int16)
        saturated = (window.max(axis=-1) - window.min(axis=-1)) > 60  # the object is saturated, the rest grey
        area = saturated.sum(axis=(1, 2))
        v = np.flatnonzero(area > 3)
        if len(v) < 3:
            continue
        cx = (saturated * xs).sum(axis=(1, 2))[v] / area[v]
        cy = (saturated * ys).sum(axis=(1, 2))[v] / area[v]
        colours.append(window[saturated].mean(axis=0))
        motions.append(
            np.array(
                [
                    cx.std(),
                    cy.std(),
                    np.corrcoef(cx, cy)[0, 1],
                    area[v].std() / area[v].mean(),
                    1 - len(v) / len(window),
                    np.abs(np.diff(cx)).mean(),
                ]
            )
        )
        rows.append(row)
    return colours, motions, rows


def test_segments_show_their_noun_and_verb(synth_data: Path) -> None:
    """Noun: the object's colour; verb: a nearest-centroid classifier on motion statistics."""
    info = json.loads((synth_data / "synthetic.json").read_text())
    splits = {}
    for split in ("train", "val"):
        table, _ = load_annotations(synth_data / "annotations", split)
        # one clip per split, both following activity 0's script (so the same verbs occur in both)
        uid = next(u for u in table.clip_uid.unique() if info["clip_activity"][u] == 0)
        colours, motions, rows = _segment_features(synth_data / "clips" / f"{uid}.mp4", table, uid)
        splits[split] = (
            np.array(colours),
            np.nan_to_num(np.array(motions)),
            table.verb.to_numpy()[rows],
            table.noun.to_numpy()[rows],
        )
    colours, _, _, nouns = splits["val"]
    palette = np.array([noun_look(n)[1] for n in range(len(synthetic.NOUNS))], np.float32)
    nearest_colour = np.argmin(((colours[:, None] - palette[None]) ** 2).sum(-1), axis=1)
    assert (nearest_colour == nouns % len(synthetic_render.COLOURS)).mean() > 0.9

    train_motion, train_verbs = splits["train"][1], splits["train"][2]
    scale = train_motion.std(axis=0) + 1e-6
    centroids = {v: (train_motion[train_verbs == v] / scale).mean(axis=0) for v in np.unique(train_verbs)}
    val_motion, val_verbs = splits["val"][1] / scale, splits["val"][2]
    labels = np.array(list(centroids))
    dist = np.stack([((val_motion - centroids[v]) ** 2).sum(-1) for v in labels], axis=1)
    accuracy = (labels[dist.argmin(axis=1)] == val_verbs).mean()
    assert accuracy > 0.5, accuracy  # chance is 0.1


def test_scale_gives_ego4d_counts_clip_lengths_and_taxonomy(tmp_path: Path) -> None:
    from ego4d_lta.challenge.annotations import load_taxonomy
    from ego4d_lta.stages.synth import generate
    from ego4d_lta.stages.synth.records import EGO4D_V2

    scale = 1 / 512
    generate(tmp_path / "d", SynthConfig(videos=False, scale=scale), workers=1)
    taxonomy = load_taxonomy(tmp_path / "d" / "annotations" / "fho_lta_taxonomy.json")
    assert (len(taxonomy.verbs), len(taxonomy.nouns)) == (EGO4D_V2.verbs, EGO4D_V2.nouns)
    for split, full in EGO4D_V2.actions:
        table, _ = load_annotations(tmp_path / "d" / "annotations", split)
        assert len(table) == round(full * scale)
        per_clip = table.groupby("clip_uid")
        assert (per_clip.end_frame.max() <= EGO4D_V2.clip_seconds * FPS).all()
        assert per_clip.size().max() > 40  # ~6 actions a minute over 8 minutes
        assert (table.groupby("video_uid").clip_uid.nunique() >= 2).all()
    with pytest.raises(ValueError, match="--no-videos"):
        generate(tmp_path / "e", SynthConfig(scale=scale), workers=1)
