"""How fast `validate` checks a submission, against a bare `orjson.loads` of the same file.

Builds a val-sized key set (6,687 windows, the v1 val count) and one 10x larger, with a v1-sized
taxonomy, writes a valid submission for each and times (best of several runs):
  parse    orjson.loads of the file (the floor: any checker must parse it)
  check    read + parse + every rule against the split's key set (what the server does)
  score    ED@1..20 and AUED for verb, noun and action (val only)
  full     the whole `validate_file` call on val, including loading the annotation file
The last line is `ratio=<check / parse>` for the val-sized file (target <= 3).

    python benchmarks/bench_validate.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from ego4d_lta.base.jsonio import write_json_atomic
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.submission import build_submission, check_submission, read_submission, write_submission
from ego4d_lta.challenge.validate import score_against, validate_file
from ego4d_lta.challenge.windows import make_windows

SEGMENTS_PER_CLIP = 37  # 9 challenge windows per clip


def make_split(root: Path, windows: int, seed: int = 0) -> Path:
    """An annotations folder whose val split has exactly `windows` challenge windows."""
    rng = np.random.default_rng(seed)
    ann = root / "annotations"
    write_json_atomic(
        ann / "fho_lta_taxonomy.json", {"verbs": [f"v{i}" for i in range(115)], "nouns": [f"n{i}" for i in range(478)]}
    )
    per_clip = SEGMENTS_PER_CLIP - 28
    clips = []
    for c in range(-(-windows // per_clip)):
        length = SEGMENTS_PER_CLIP if (c + 1) * per_clip <= windows else 28 + windows - c * per_clip
        for i in range(length):
            clips.append(
                {
                    "clip_uid": f"{c:08x}-0000-4000-8000-{c:012x}",
                    "action_idx": i,
                    "action_clip_start_sec": 8.0 * i,
                    "action_clip_end_sec": 8.0 * i + 6.0,
                    "verb_label": int(rng.integers(115)),
                    "noun_label": int(rng.integers(478)),
                }
            )
    write_json_atomic(ann / "fho_lta_val.json", {"clips": clips})
    return ann


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench(windows: int, repeat: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ann = make_split(Path(tmp), windows)
        table, taxonomy = load_annotations(ann, "val")
        all_windows = make_windows(table)
        challenge = all_windows.challenge()
        assert len(challenge) == windows
        required, extra = challenge.keys, [k for k, e in zip(all_windows.keys, all_windows.extra, strict=True) if e]
        rng = np.random.default_rng(1)
        verb, noun = rng.integers(115, size=(windows, K, Z)), rng.integers(478, size=(windows, K, Z))
        path = write_submission(Path(tmp) / "sub.json", build_submission(required, verb, noun))
        size = path.stat().st_size / 1e6

        def check():
            obj, raw = read_submission(path)
            result = check_submission(obj, required, extra, taxonomy, raw=raw)
            assert result.valid
            return result

        result = check()
        parse = best_of(repeat, lambda: orjson.loads(path.read_bytes()))
        checked = best_of(repeat, check)
        scored = best_of(
            repeat, lambda: score_against(all_windows, table, result.keys, result.verb, result.noun, taxonomy)
        )
        full = best_of(max(1, repeat // 2), lambda: validate_file(path, ann, "val"))
        ratio = checked / parse
        print(
            f"{windows:>6} windows  {size:6.1f} MB  parse {parse * 1e3:7.1f} ms  check {checked * 1e3:7.1f} ms "
            f"(x{ratio:.2f})  score {scored * 1e3:7.1f} ms  full validate {full * 1e3:7.1f} ms"
        )
        return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bench(66870, max(1, args.repeat // 2))
    ratio = bench(6687, args.repeat)
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
