"""The challenge JSON: atomic writes, every validation rule, and a fuzz test of the validator CLI."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ego4d_lta.challenge.annotations import Taxonomy
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.submission import build_submission, check_submission, read_submission, write_submission
from ego4d_lta.cli import main

TAX = Taxonomy(verbs=tuple(f"v{i}" for i in range(4)), nouns=tuple(f"n{i}" for i in range(6)))
REQUIRED = ["clipA_7", "clipA_8", "clipB_7"]
EXTRA = ["clipA_9", "clipB_8"]


def _valid(keys: list[str] = REQUIRED, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    verb = rng.integers(4, size=(len(keys), K, Z))
    noun = rng.integers(6, size=(len(keys), K, Z))
    return json.loads(orjson.dumps(build_submission(keys, verb, noun), option=orjson.OPT_SERIALIZE_NUMPY))


def _check(obj: object) -> list[str]:
    raw = json.dumps(obj).encode()
    return check_submission(orjson.loads(raw), REQUIRED, EXTRA, TAX, raw=raw).errors


def test_write_read_round_trip_and_atomic(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    verb, noun = rng.integers(4, size=(3, K, Z)), rng.integers(6, size=(3, K, Z))
    path = write_submission(tmp_path / "out" / "sub.json", build_submission(REQUIRED, verb, noun))
    obj, raw = read_submission(path)
    result = check_submission(obj, REQUIRED, EXTRA, TAX, raw=raw)
    assert result.valid and result.keys == REQUIRED
    assert np.array_equal(result.verb, verb) and np.array_equal(result.noun, noun)
    assert sorted(os.listdir(path.parent)) == ["sub.json"]  # no temporary file left behind


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "sub.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_submission(path, {"k": {"verb": object()}})
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["sub.json"]


def test_written_files_get_the_umask_mode_like_any_other(tmp_path: Path) -> None:
    """Teammates on a cluster read each other's submissions: the mode `open` gives, not mkstemp's owner-only 0600."""
    umask = os.umask(0o022)
    os.umask(umask)
    path = write_submission(tmp_path / "sub.json", {})
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_valid_with_extra_window_key_is_a_warning() -> None:
    obj = _valid([*REQUIRED, "clipA_9"])
    result = check_submission(obj, REQUIRED, EXTRA, TAX, raw=orjson.dumps(obj))
    assert result.valid and "1 keys are the one extra window" in result.warnings[0] and "clipA_9" in result.warnings[0]


def _mutated(path: tuple, value: object) -> dict:
    obj = _valid()
    target = obj
    for step in path[:-1]:
        target = target[step]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ([], "top level is a list, expected an object"),
        (_mutated(("clipB_7",), ...), "1 of 3 expected keys are missing: clipB_7"),
        (
            {**_valid(), "clipC_7": _valid()["clipA_7"]},
            "1 unexpected keys (not windows of this split): clipC_7",
        ),
        (
            _mutated(("clipA_8",), [1, 2]),
            "key 'clipA_8': value is a list, expected an object with 'verb' and 'noun'",
        ),
        (_mutated(("clipA_8", "noun"), ...), "key 'clipA_8': missing 'noun'"),
        (_mutated(("clipA_8", "score"), 1.0), "key 'clipA_8': unexpected field 'score'"),
        (
            _mutated(("clipA_7", "verb"), "x"),
            "key 'clipA_7': 'verb' is \"x\" (string), expected a list of K=5",
        ),
        (
            _mutated(("clipA_7", "verb", 4), ...),
            "key 'clipA_7': 'verb' has 4 sequences, expected exactly K=5",
        ),
        (
            _mutated(("clipA_7", "noun", 2, 19), ...),
            "key 'clipA_7': noun[2] has 19 actions, expected exactly Z=20",
        ),
        (
            _mutated(("clipA_7", "noun", 2), None),
            "key 'clipA_7': noun[2] is null, expected a list of Z=20 ids",
        ),
        (
            _mutated(("clipB_7", "verb", 1, 3), True),
            "key 'clipB_7': verb[1][3] is true (bool), expected an integer",
        ),
        (
            _mutated(("clipB_7", "verb", 1, 3), 2.0),
            "key 'clipB_7': verb[1][3] is 2.0 (float), expected an integer",
        ),
        (_mutated(("clipB_7", "verb", 1, 3), None), "key 'clipB_7': verb[1][3] is null, expected an integer"),
        (
            _mutated(("clipB_7", "verb", 1, 3), "2"),
            "key 'clipB_7': verb[1][3] is \"2\" (string), expected an integer",
        ),
        (
            _mutated(("clipB_7", "verb", 0, 0), 4),
            "key 'clipB_7': verb[0][0] = 4 is outside the taxonomy's verb ids 0..3",
        ),
        (
            _mutated(("clipB_7", "noun", 4, 19), -1),
            "key 'clipB_7': noun[4][19] = -1 is outside the taxonomy's noun ids 0..5",
        ),
        (_mutated(("clipB_7", "noun", 4, 19), 2**70), "noun[4][19] is 1.1805916207174113e+21 (float)"),
    ],
)
def test_each_rule_names_the_key(obj: object, expected: str) -> None:
    errors = _check(obj)
    assert any(expected in e for e in errors), errors


def test_range_error_found_even_when_a_key_contains_true() -> None:
    """The fast path is bypassed by a 'true' anywhere in the text; the slow path must still check ranges."""
    obj = _mutated(("clipB_7", "noun", 0, 0), 9)
    keys = ["true_7", "clipA_8", "clipB_7"]
    obj["true_7"] = obj.pop("clipA_7")
    raw = orjson.dumps(obj)
    errors = check_submission(orjson.loads(raw), keys, [], TAX, raw=raw).errors
    assert errors == ["key 'clipB_7': noun[0][0] = 9 is outside the taxonomy's noun ids 0..5"]


def test_many_errors_are_capped_and_counted() -> None:
    obj = _valid()
    for key in obj:
        obj[key]["verb"] = [[99] * Z] * K
    errors = _check(obj)
    assert len(errors) == 26 and errors[-1] == f"... and {3 * K * Z - 25} more errors of the same kinds"


# ---- the validator CLI under fuzzing: always exit 2 with a message, never a traceback -------------------


@pytest.fixture(scope="module")
def annotations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A val split whose windows are REQUIRED (+ EXTRA)."""
    root = tmp_path_factory.mktemp("ann")
    (root / "fho_lta_taxonomy.json").write_text(json.dumps(TAX.to_json()))
    clips = []
    for uid, length in (("clipA", 30), ("clipB", 29)):
        for i in range(length):
            clips.append(
                {
                    "clip_uid": uid,
                    "action_idx": i,
                    "action_clip_start_sec": i,
                    "action_clip_end_sec": i + 1,
                    "verb_label": i % 4,
                    "noun_label": i % 6,
                }
            )
    (root / "fho_lta_val.json").write_text(json.dumps({"clips": clips}))
    return root


def _levenshtein(a: list[int], b: list[int]) -> int:
    """Plain dynamic programme, written out: the oracle does not share code with ego4d_lta.metrics."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def _scores_by_hand(sub: dict) -> dict[str, list[float]]:
    """ED@z per head for the fixture's val split: window `clipX_i` is followed by actions i+1..i+20 whose labels
    are (a % 4, a % 6); the score is the mean over windows of min over k of lev(prefixes) / z."""
    out = {}
    for head in ("verb", "noun", "action"):
        curve = []
        for z in range(1, Z + 1):
            per_window = []
            for key in REQUIRED:
                last = int(key.rsplit("_", 1)[1])
                truth = {"verb": [a % 4 for a in range(last + 1, last + 21)],
                         "noun": [a % 6 for a in range(last + 1, last + 21)]}  # fmt: skip
                truth["action"] = [v * 6 + n for v, n in zip(truth["verb"], truth["noun"], strict=True)]
                seqs = sub[key]
                pairs = zip(seqs["verb"], seqs["noun"], strict=True)
                actions = [[v * 6 + n for v, n in zip(vs, ns, strict=True)] for vs, ns in pairs]
                preds = actions if head == "action" else seqs[head]
                per_window.append(min(_levenshtein(p[:z], truth[head][:z]) for p in preds) / z)
            curve.append(sum(per_window) / len(per_window))
        out[head] = curve
    return out


def _run(capsys: pytest.CaptureFixture, args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_scores_a_valid_val_file(tmp_path: Path, annotations: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(orjson.dumps(_valid()))
    code, out, err = _run(
        capsys,
        [
            "validate",
            str(path),
            "--annotations",
            str(annotations),
            "--split",
            "val",
            "--json",
            "--plot",
            str(tmp_path / "ed.png"),
        ],
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["valid"] and report["windows"] == 3 and report["errors"] == []
    assert set(report["scores"]) == {"verb", "noun", "action", "aued", "ed_at_z"}
    expected = _scores_by_hand(_valid())
    for head in ("verb", "noun", "action"):
        assert report["scores"]["ed_at_z"][head] == pytest.approx(expected[head], abs=1e-12)
        assert report["scores"][head] == pytest.approx(expected[head][-1], abs=1e-12)
        assert report["scores"]["aued"][head] == pytest.approx(
            sum((expected[head][z] + expected[head][z + 1]) / 2 for z in range(Z - 1)) / (Z - 1), abs=1e-12
        )
    assert (tmp_path / "ed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**65) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@st.composite
def malformed(draw: st.DrawFn) -> bytes:
    """A valid submission with one random part replaced, dropped or truncated, or random bytes."""
    obj = _valid(seed=draw(st.integers(0, 3)))
    choice = draw(st.sampled_from(["replace", "delete", "truncate", "garbage", "top"]))
    if choice == "top":
        return json.dumps(draw(json_values)).encode()  # json, not orjson: it writes ints beyond 64 bits
    if choice == "garbage":
        return draw(st.binary(max_size=40))
    raw = orjson.dumps(obj)
    if choice == "truncate":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    path = [draw(st.sampled_from(REQUIRED))]
    depth = draw(st.integers(0, 3))
    if depth >= 1:
        path.append(draw(st.sampled_from(["verb", "noun"])))
    if depth >= 2:
        path.append(draw(st.integers(0, K - 1)))
    if depth >= 3:
        path.append(draw(st.integers(0, Z - 1)))
    mutated = copy.deepcopy(obj)
    target = mutated
    for step in path[:-1]:
        target = target[step]
    if choice == "delete":
        del target[path[-1]]
    else:
        value = draw(json_values)
        ids = len(TAX.verbs) if path[1:2] == ["verb"] else len(TAX.nouns)
        in_range = type(value) is int and 0 <= value < ids  # another valid id leaves the submission valid
        if target[path[-1]] == value or (depth == 3 and in_range):
            value = [value]
        target[path[-1]] = value
    return json.dumps(mutated).encode()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(malformed())
def test_fuzzed_submissions_exit_2_with_a_message(
    tmp_path: Path, annotations: Path, capsys: pytest.CaptureFixture, raw: bytes
) -> None:
    path = tmp_path / "fuzz.json"
    path.write_bytes(raw)
    code, out, err = _run(capsys, ["validate", str(path), "--annotations", str(annotations), "--split", "val"])
    assert code == 2, (raw[:200], out, err)
    assert "Traceback" not in err and err.strip()
    assert all(line.startswith(("error: ", "ego4d-lta validate: error: ", str(path))) for line in err.splitlines())


def test_structure_and_element_errors_of_different_keys_are_all_reported() -> None:
    obj = _mutated(("clipA_7", "noun"), ...)
    obj["clipA_8"]["verb"][0][0] = None
    obj["clipB_7"]["noun"][1][2] = 6
    assert _check(obj) == [
        "key 'clipA_7': missing 'noun'",
        "key 'clipA_8': verb[0][0] is null, expected an integer class id",
        "key 'clipB_7': noun[1][2] = 6 is outside the taxonomy's noun ids 0..5",
    ]


def test_validate_on_a_pool_says_first_that_it_is_for_ensemble(
    tmp_path: Path, annotations: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 23.6: a pool file got 25 key errors and "... and 85 more" before the one useful line."""
    rng = np.random.default_rng(0)
    verb, noun = rng.integers(4, size=(3, 20, Z)), rng.integers(6, size=(3, 20, Z))
    path = tmp_path / "run-val.pool20.json"
    write_submission(path, build_submission(REQUIRED, verb, noun, k=20))
    code, out, err = _run(capsys, ["validate", str(path), "--annotations", str(annotations), "--split", "val"])
    assert code == 2 and not out
    assert err.startswith(f"use `ego4d-lta ensemble {path} -o OUT.json`"), err
    assert "is a pool of 20 samples per window" in err and len(err.strip().splitlines()) == 1, err


def test_read_submission_is_read_json_with_the_raw_bytes(tmp_path: Path) -> None:
    """Issue 23.10: read_submission re-implemented base/jsonio.read_json; it is that reader now, bytes kept."""
    from ego4d_lta.base.errors import UserError
    from ego4d_lta.base.hashing import file_digest

    path = tmp_path / "s.json"
    path.write_bytes(orjson.dumps(_valid()))
    obj, raw = read_submission(path)
    assert obj == _valid() and raw == path.read_bytes()
    assert file_digest(path) == hashlib.sha256(raw).hexdigest()
    with pytest.raises(UserError, match=r"is a directory, expected a JSON file$"):
        read_submission(tmp_path)
    with pytest.raises(UserError, match=r"no such file$"):
        read_submission(tmp_path / "nope.json")
