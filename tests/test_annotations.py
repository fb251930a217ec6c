"""Annotation loading: the real taxonomies, and a one-line error naming file, entry and rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.annotations import Taxonomy, load_annotations, load_split, load_taxonomy


def test_real_taxonomies_load(shared_data: Path) -> None:
    v1 = load_taxonomy(shared_data / "fho_lta_taxonomy_v1.json")
    v2 = load_taxonomy(shared_data / "fho_lta_taxonomy_v2_reconstructed.json")
    assert (v1.num_verbs, v1.num_nouns, v1.version) == (115, 478, "v1")
    assert (v2.num_verbs, v2.num_nouns, v2.version) == (117, 521, "v2")
    assert v1.nouns[85] == "chip_(wood'_metal),"  # the taxonomy's odd name survives as is
    assert v2.verbs[:115] == v1.verbs and v2.nouns[:478] == v1.nouns


TAXONOMY = Taxonomy(verbs=("take", "put", "cut"), nouns=("knife", "cup"))


def _entry(**override: object) -> dict:
    entry = {
        "clip_uid": "c1",
        "action_idx": 0,
        "action_clip_start_sec": 1.0,
        "action_clip_end_sec": 2.5,
        "verb_label": 1,
        "noun_label": 0,
    }
    entry.update(override)
    return {k: v for k, v in entry.items() if v is not ...}


def _write(tmp_path: Path, doc: object, raw: str | None = None) -> Path:
    path = tmp_path / "fho_lta_val.json"
    path.write_text(raw if raw is not None else json.dumps(doc))
    return path


def test_split_loads_sorted_with_test_labels_minus_one(tmp_path: Path) -> None:
    clips = [_entry(clip_uid="b", action_idx=1), _entry(clip_uid="b", action_idx=0), _entry(clip_uid="a")]
    table = load_split(_write(tmp_path, {"clips": clips}), TAXONOMY, require_labels=True)
    assert list(zip(table.clip_uid, table.action_idx, strict=True)) == [("a", 0), ("b", 0), ("b", 1)]
    test = [_entry(verb_label=..., noun_label=...)]
    table = load_split(_write(tmp_path, {"clips": test}), TAXONOMY, require_labels=False)
    assert table.verb.tolist() == [-1] and table.noun.tolist() == [-1]


@pytest.mark.parametrize(
    ("doc", "raw", "expected"),
    [
        (None, "{not json", "not valid JSON"),
        ([], None, "no 'clips' list"),
        ({"videos": []}, None, "no 'clips' list"),
        ({"clips": {}}, None, "'clips' is an object, expected a list"),
        (
            {"clips": [_entry(action_clip_end_sec=...)]},
            None,
            "clips[0] (clip_uid=c1, action_idx=0): missing field 'action_clip_end_sec'",
        ),
        ({"clips": [_entry(noun_label=...)]}, None, "missing field 'noun_label' (required on train and val)"),
        (
            {"clips": [_entry(), _entry(action_idx=1, verb_label=3)]},
            None,
            "clips[1] (clip_uid=c1, action_idx=1): verb_label 3 is outside the taxonomy's verb ids 0..2",
        ),
        ({"clips": [_entry(noun_label=-2)]}, None, "'noun_label' is -2, must be a class id >= 0"),
        # hostile: the test sentinel, huge integers, an empty list, uids that are paths or terminal escapes
        ({"clips": [_entry(verb_label=-1)]}, None, "'verb_label' is -1, must be a class id >= 0"),
        ({"clips": [_entry(noun_label=2**64)]}, None, "'noun_label' is an integer beyond 64 bits, out of range"),
        ({"clips": [_entry(action_idx=2**63)]}, None, "'action_idx' is 9223372036854775808, must be in 0..2**62"),
        ({"clips": [_entry(action_idx=-1)]}, None, "'action_idx' is -1, must be in 0..2**62"),
        ({"clips": []}, None, "'clips' is empty, expected at least one action entry"),
        ({"clips": [_entry(clip_uid="../../etc/x")]}, None, "'clip_uid' \"../../etc/x\" must be a plain file name"),
        ({"clips": [_entry(clip_uid="..")]}, None, "'clip_uid' \"..\" must be a plain file name"),
        ({"clips": [_entry(clip_uid="/abs/clip")]}, None, "'clip_uid' \"/abs/clip\" must be a plain file name"),
        ({"clips": [_entry(clip_uid="a\\b")]}, None, "must be a plain file name"),
        ({"clips": [_entry(clip_uid="a\u0000b")]}, None, "'clip_uid' \"a\\x00b\" holds a control character"),
        ({"clips": [_entry(clip_uid="x\u001b]0;pwned\u0007")]}, None, "holds a control character"),
        ({"clips": [_entry(clip_uid="a\nb")]}, None, "holds a control character"),
        ({"clips": [_entry(video_uid="../v")]}, None, "'video_uid' \"../v\" must be a plain file name"),
        (
            {"clips": [_entry(), _entry(action_clip_start_sec=9.0, action_clip_end_sec=9.5)]},
            None,
            "clips[1]: duplicate (clip_uid, action_idx) = (c1, 0)",
        ),
        (
            {"clips": [_entry(action_clip_start_sec=3.0)]},
            None,
            "action_clip_end_sec 2.5 is before action_clip_start_sec 3.0",
        ),
        ({"clips": [_entry(action_idx="3")]}, None, "'action_idx' is \"3\" (string), expected an integer"),
        ({"clips": [_entry(verb_label=1.0)]}, None, "'verb_label' is 1.0 (float), expected an integer"),
        ({"clips": [_entry(clip_uid=None)]}, None, "'clip_uid' must be a non-empty string, got null"),
        (
            {"clips": [_entry(action_clip_start_sec=None)]},
            None,
            "'action_clip_start_sec' is null, expected a finite number",
        ),
        ({"clips": [7]}, None, "clips[0] is 7 (integer), expected an object"),
    ],
)
def test_bad_split_is_one_line_naming_file_entry_and_rule(
    tmp_path: Path, doc: object, raw: str | None, expected: str
) -> None:
    path = _write(tmp_path, doc, raw)
    with pytest.raises(UserError) as info:
        load_split(path, TAXONOMY, require_labels=True)
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message
    assert all(c == " " or c.isprintable() for c in message) and "\x1b" not in message  # nothing raw reaches a terminal


def test_val_with_some_entries_unlabelled_is_refused_even_where_labels_are_optional(tmp_path: Path) -> None:
    path = _write(tmp_path, {"clips": [_entry(), _entry(action_idx=1, verb_label=..., noun_label=...)]})
    with pytest.raises(UserError, match=r"clips\[1\] \(clip_uid=c1, action_idx=1\): no verb_label"):
        load_split(path, TAXONOMY, require_labels=False)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ([], "top level is a list"),
        ({"verbs": ["a"]}, "missing field 'nouns'"),
        ({"verbs": [], "nouns": ["x"]}, "'verbs' must be a non-empty list"),
        ({"verbs": ["a", 3], "nouns": ["x"]}, "verbs[1] is 3 (integer), expected a string name"),
    ],
)
def test_bad_taxonomy(tmp_path: Path, doc: object, expected: str) -> None:
    path = tmp_path / "fho_lta_taxonomy.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"fho_lta_taxonomy\.json: ") as info:
        load_taxonomy(path)
    assert expected in str(info.value)


def test_missing_annotation_file_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "fho_lta_taxonomy.json").write_text(json.dumps(TAXONOMY.to_json()))
    with pytest.raises(UserError, match=r"fho_lta_test_unannotated\.json: no such file"):
        load_annotations(tmp_path, "test")
    with pytest.raises(UserError, match="unknown split 'dev'"):
        load_annotations(tmp_path, "dev")


def test_video_fields_are_kept_and_map_segments_to_video_frames(tmp_path: Path) -> None:
    parent = {"video_uid": "v1", "clip_parent_start_sec": 100.0, "clip_parent_start_frame": 3000}
    clips = [
        _entry(action_idx=0, action_clip_start_frame=30, action_clip_end_frame=75, **parent),
        _entry(action_idx=1, action_clip_start_sec=4.0, action_clip_end_sec=5.5, **parent),  # frames from seconds
        _entry(clip_uid="c2"),  # an entry without the video fields (older or hand-made files)
    ]
    table = load_split(_write(tmp_path, {"clips": clips}), TAXONOMY, require_labels=True)
    c1 = table[table.clip_uid == "c1"]
    assert c1.video_uid.tolist() == ["v1", "v1"] and c1.clip_parent_start_sec.tolist() == [100.0, 100.0]
    video_frames = (c1.clip_parent_start_frame + c1.start_frame).tolist(), (c1.clip_parent_start_frame + c1.end_frame)
    assert video_frames[0] == [3030, 3120] and video_frames[1].tolist() == [3075, 3165]
    c2 = table[table.clip_uid == "c2"].iloc[0]
    assert (c2.video_uid, c2.clip_parent_start_frame, c2.start_frame, c2.end_frame) == ("", -1, 30, 75)


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ({"video_uid": "v2"}, "disagree on 'video_uid' (v1, v2)"),
        ({"clip_parent_start_frame": 10}, "disagree on 'clip_parent_start_frame' (0, 10)"),
        ({"clip_parent_start_frame": -3}, "'clip_parent_start_frame' is -3, must be >= 0"),
        ({"action_clip_end_frame": 1}, "action_clip_end_frame 1 is before action_clip_start_frame 30"),
        ({"video_uid": 7}, "'video_uid' must be a non-empty string, got 7 (integer)"),
    ],
)
def test_video_fields_are_checked(tmp_path: Path, second: dict, expected: str) -> None:
    base = {"video_uid": "v1", "clip_parent_start_frame": 0}
    clips = [_entry(**base), _entry(action_idx=1, **{**base, **second})]
    with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_split(_write(tmp_path, {"clips": clips}), TAXONOMY, require_labels=True)
