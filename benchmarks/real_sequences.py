"""Learning on real action sequences, through the product's own path: the `labels` forecaster against the past.

    python benchmarks/real_sequences.py [--quick] [--out DIR] [--sets ego4d,ek55] [--seeds 3]
                                        [--decoders heads,sequence]

Each real set in ../shared/data (or $EGO4D_LTA_SHARED_DATA) is cut into three disjoint parts, **train / dev /
report**, and written in the official annotation layout twice (under --out or a temporary folder, never the
repository): `dev/` (train + dev as its val split) and `report/` (the same train + report as val). A user's path:
`ego4d-lta train --config labels --data dev/` (best.pt chosen on dev), `predict --split val` on `dev/` for every
choice, then once per row on `report/`, scored by `validate --json`. No choice sees the report part.

Sets:
- **ek55**: EPIC-Kitchens-55, EGO-TOPO S1 split: train = S1 train videos less every 5th, dev = every 5th S1 train
  video, report = S1 val (CC BY-NC 4.0 annotations; EPIC-Kitchens, EGO-TOPO).
- **ego4d**: the Ego4D v1 val action chains (antgpt_v1_val/val_chains.json, 208 clips), by clip: chain index % 4
  in {0, 1} -> train, 2 -> dev, 3 -> report. These are challenge *val* clips, used only to measure learning, never
  to tune a challenge model. **ego4d_recog** is the realistic setting: the same parts with the observed actions
  as a recognition model saw them (val_nseg8_recog.jsonl, as a `--recognitions` file): a model trained on ground
  truth, and one trained on the recognised inputs (`data.recognitions`).

Rows (report part, val ED@20 verb / noun / action, lower is better):
- repeat last (K = 1); a first-order Markov chain over training actions, K = 5 samples;
- observed replay, rotations 0-4 (the 8 observed actions cycled, starting at each of the first 5);
- observed replay, 5 chosen on dev from the 8 rotations and repeat-last (greedy, by dev action ED);
- for each `model.decoder` (`--decoders`: the report's 20 heads, the sequence decoder), the `labels` preset, mean
  ± sd over --seeds training seeds: with the report's sampling (iid, T = 1, no
  observed prior, no set selection), with the strategy alone (no set selection), and with the set selection
  (`generate.samples`), its observed_weight and sample temperature chosen on dev with seed 0.

Last line: `ratio=<labels (set selection) action ED / best heuristic action ED>` on the EK-55 report part
(below 1: the model wins).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.metrics import score
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.selection import observed_candidates
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main as cli
from ego4d_lta.config import load_config

SHARED = Path(os.environ.get("EGO4D_LTA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
HEADS = ("verb", "noun", "action")
REPORT_SAMPLING = [
    "generate.strategy='iid'",
    "generate.temperature=1.0",
    "generate.observed_bonus=0.0",
    "generate.samples=0",
]
"""The report's decoding: K i.i.d. samples at T = 1, no observed-action prior, no set selection."""
NO_SET = ["generate.samples=0"]
"""The preset's strategy, its K as drawn (also what picks best.pt on dev: cheaper than the set selection)."""
DECODERS = {
    "heads": ["model.decoder='heads'"],
    "sequence": ["model.decoder='sequence'", "model.sequence_dim=128"],
}
"""`model.decoder` rows: the report's 20 independent heads and the pointer-generator sequence decoder."""
SET_GRID = {
    "heads": [(w, t) for t in (1.0, 0.7) for w in (0.0, 0.2, 0.4, 0.6, 0.8)],
    "sequence": [(w, 1.0) for w in (0.2, 0.4, 0.6, 0.8)],
}
"""(generate.observed_weight, generate.sample_temperature) tried on dev for the set selection, per decoder (the
sequence decoder's draws cost ~5x the heads': a smaller grid, around the heads' best)."""
SET_SAMPLES = 50
"""Model samples per window in the set selection's pool (generate.samples)."""
DEV_SWEEPS: dict[tuple[str, float, float], list[dict[str, float]]] = {}
"""Every dev sweep's scores per (decoder, observed_weight, sample_temperature): the `labels` preset's choice is
their mean."""
TRAINED: set[Path] = set()
"""The runs this process has trained."""
PREDICTIONS = itertools.count()
"""Numbers each prediction's file."""


# -- conversion into the official layout ------------------------------------------------------------------------


@dataclass
class Parts:
    """One set: its dev and report data roots (same train part) and, where there is one, a recognitions file."""

    name: str
    dev: Path
    report: Path
    recognitions: Path | None = None


def _entries(clip_uid: str, actions: list[tuple[int, int]], starts: list[float] | None = None) -> list[dict]:
    starts = starts or [2.0 * i for i in range(len(actions))]
    return [
        {
            "clip_uid": clip_uid,
            "action_idx": i,
            "action_clip_start_sec": start,
            "action_clip_end_sec": start + 1.5,
            "verb_label": v,
            "noun_label": n,
        }
        for i, ((v, n), start) in enumerate(zip(actions, starts, strict=True))
    ]


def _write(root: Path, taxonomy: dict, train: list[dict], held_out: dict[str, list[dict]]) -> tuple[Path, Path]:
    """root/dev and root/report, each train + its held-out part as val."""
    roots = []
    for part in ("dev", "report"):
        ann = root / part / "annotations"
        ann.mkdir(parents=True, exist_ok=True)
        (ann / "fho_lta_taxonomy.json").write_text(json.dumps(taxonomy))
        (ann / "fho_lta_train.json").write_text(json.dumps({"clips": train}))
        (ann / "fho_lta_val.json").write_text(json.dumps({"clips": held_out[part]}))
        roots.append(root / part)
    return roots[0], roots[1]


def convert_ego4d(root: Path) -> Parts:
    """Ego4D val chains by clip (index % 4: 0, 1 train; 2 dev; 3 report) + a recognitions file for every segment."""
    base = SHARED / "antgpt_v1_val"
    dicts = json.loads((base / "dicts.json").read_text())
    chains = json.loads((base / "val_chains.json").read_text())["chains"]

    def ids(word_pair: str) -> tuple[int, int]:
        verb, noun = word_pair.strip().split(" ", 1)
        return dicts["v2i"][verb], dicts["n2i"][noun]

    parts: dict[str, list[dict]] = {"train": [], "dev": [], "report": []}
    recognised: dict[str, dict[str, int]] = {}
    windows = (base / "val_nseg8_recog.jsonl").read_text().splitlines()
    w = 0
    for c, chain in enumerate(chains):
        uid = f"ego4dval-{c:03d}"
        parts[("train", "train", "dev", "report")[c % 4]].extend(_entries(uid, [ids(a) for a in chain]))
        for start in range(len(chain) - 27):  # the jsonl's windows of this chain, in order
            observed = json.loads(windows[w])["prompt"].split("\n")[0].split(",")
            for j, action in enumerate(observed):
                v, n = ids(action)
                recognised[f"{uid}_{start + j}"] = {"verb": v, "noun": n}  # a later window's view wins
            w += 1
    assert w == len(windows), (w, len(windows))
    taxonomy = json.loads((SHARED / "fho_lta_taxonomy_v1.json").read_text())
    dev, report = _write(root, taxonomy, parts["train"], parts)
    recog = root / "recognitions.json"
    recog.write_text(json.dumps(recognised))
    return Parts("ego4d", dev, report, recog)


def _ek55_clips(file: str) -> dict[str, list[dict]]:
    """EPIC-Kitchens-55 S1 rows -> per video (a clip), its actions in start-frame order (60 fps seconds)."""
    per_video: dict[str, list[tuple[int, int, int, int]]] = {}
    for line in (SHARED / "ek55_s1" / file).read_text().splitlines():
        video, start, end, verb, noun = line.split("\t")
        per_video.setdefault(video, []).append((int(start), int(end), int(verb), int(noun)))
    clips = {}
    for video, rows in sorted(per_video.items()):
        rows.sort()
        uid = video.replace("/", "-").replace("_", "-")
        clips[uid] = _entries(uid, [(v, n) for _, _, v, n in rows], [start / 60 for start, _, _, _ in rows])
    return clips


def convert_ek55(root: Path) -> Parts:
    """EK-55 S1: train videos less every 5th (-> dev), S1 val as the report part."""
    base = SHARED / "ek55_s1"

    def names(file: str) -> list[str]:
        with open(base / file, newline="") as f:
            return [row["class_key"] for row in csv.DictReader(f)]

    train_videos = list(_ek55_clips("train_S1.csv").values())
    train = [e for i, clip in enumerate(train_videos) if i % 5 != 4 for e in clip]
    dev = [e for i, clip in enumerate(train_videos) if i % 5 == 4 for e in clip]
    report = [e for clip in _ek55_clips("val_S1.csv").values() for e in clip]
    taxonomy = {"verbs": names("EPIC_verb_classes.csv"), "nouns": names("EPIC_noun_classes.csv")}
    dev_root, report_root = _write(root, taxonomy, train, {"dev": dev, "report": report})
    return Parts("ek55", dev_root, report_root)


# -- heuristics ---------------------------------------------------------------------------------------------------


@dataclass
class HeldOut:
    """A data root's val windows: observed ids (ground truth or recognised), true futures, the train table."""

    observed: tuple[np.ndarray, np.ndarray]
    future: tuple[np.ndarray, np.ndarray]
    train: object
    num_nouns: int

    def ed(self, verb: np.ndarray, noun: np.ndarray) -> dict[str, float]:
        return score(verb, noun, *self.future, self.num_nouns).ed20


def held_out(data: Path, recognitions: Path | None) -> HeldOut:
    ann = data / "annotations"
    train, tax = load_annotations(ann, "train")
    val, _ = load_annotations(ann, "val")
    windows = make_windows(val, include_extra=False)
    verb, noun = val["verb"].to_numpy(), val["noun"].to_numpy()
    future = (verb[windows.future], noun[windows.future])
    if recognitions is not None:
        recog = json.loads(recognitions.read_text())
        keys = [f"{u}_{a}" for u, a in zip(val["clip_uid"], val["action_idx"], strict=True)]
        # a chain's last 20 segments are never observed, so the file does not have them (-1: never read)
        verb = np.array([recog.get(k, {"verb": -1})["verb"] for k in keys])
        noun = np.array([recog.get(k, {"noun": -1})["noun"] for k in keys])
    return HeldOut((verb[windows.observed], noun[windows.observed]), future, train, tax.num_nouns)


def replay_choice(dev: HeldOut) -> list[int]:
    """5 of the 9 observed replays (rotations 0-7, repeat-last) chosen greedily by dev action ED@20."""
    verb, noun = observed_candidates(*dev.observed, ["rotations", "repeat_last"], Z)
    chosen: list[int] = []
    for _ in range(K):
        left = [c for c in range(verb.shape[1]) if c not in chosen]
        costs = [dev.ed(verb[:, [*chosen, c]], noun[:, [*chosen, c]])["action"] for c in left]
        chosen.append(left[int(np.argmin(costs))])
    return chosen


def heuristics(dev: HeldOut, report: HeldOut, seed: int = 0) -> dict[str, dict[str, float]]:
    """Report-part ED@20 of repeat-last, Markov, fixed rotations and the dev-chosen replays."""
    verb, noun = observed_candidates(*report.observed, ["rotations", "repeat_last"], Z)
    chosen = replay_choice(dev)
    names = [f"rotation {c}" if c < 8 else "repeat-last" for c in chosen]
    last = report.observed[0].shape[1]
    tokens = report.observed[0][:, -1] * report.num_nouns + report.observed[1][:, -1]
    return {
        "repeat last (K=1)": report.ed(verb[:, [last]], noun[:, [last]]),
        "Markov 1st order (K=5 samples)": report.ed(*markov(report.train, tokens, report.num_nouns, seed)),
        "observed replay, rotations 0-4": report.ed(verb[:, :K], noun[:, :K]),
        f"observed replay, 5 chosen on dev ({', '.join(names)})": report.ed(verb[:, chosen], noun[:, chosen]),
    }


def markov(train, last: np.ndarray, num_nouns: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """K sequences per window sampled from the training set's action-to-next-action counts (the marginal for an
    action never seen with a successor)."""
    tok = train["verb"].to_numpy() * num_nouns + train["noun"].to_numpy()
    same = train["clip_uid"].to_numpy()[1:] == train["clip_uid"].to_numpy()[:-1]
    succ: dict[int, list[int]] = {}
    for a, b in zip(tok[:-1][same], tok[1:][same], strict=True):
        succ.setdefault(int(a), []).append(int(b))
    rng = np.random.default_rng(seed)
    seqs = np.zeros((len(last), K, Z), np.int64)
    for i, start in enumerate(last):
        for k in range(K):
            state = int(start)
            for z in range(Z):
                options = succ.get(state)
                state = int(options[rng.integers(len(options))] if options else tok[rng.integers(len(tok))])
                seqs[i, k, z] = state
    return seqs // num_nouns, seqs % num_nouns


# -- the product, as a user runs it -------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(argv)
    if code != 0:
        raise SystemExit(f"ego4d-lta {' '.join(argv)}: exit {code}")
    return out.getvalue()


def train(data: Path, run: Path, settings: list[str]) -> float:
    t = time.perf_counter()
    argv = ["train", "--config", "labels", "--data", str(data), "--run", str(run), "--device", "cpu", "-q"]
    for s in settings:
        argv += ["--set", s]
    run_cli(argv)
    return time.perf_counter() - t


def predict(data: Path, run: Path, settings: list[str], recognitions: Path | None) -> dict[str, float]:
    """`predict --split val` on a data root, then `validate --json`: its ED@20 per head."""
    out = run / f"{data.name}-{next(PREDICTIONS)}.json"
    argv = ["predict", "--run", str(run), "--split", "val", "--data", str(data), "--out", str(out), "--device", "cpu"]
    for s in settings:
        argv += ["--set", s]
    run_cli([*argv, "-q", *(["--recognitions", str(recognitions)] if recognitions else [])])
    report = json.loads(run_cli(["validate", str(out), "--data", str(data), "--split", "val", "--json"]))
    return {h: report["scores"][h] for h in HEADS}


def set_settings(weight: float, temperature: float) -> list[str]:
    return [
        f"generate.samples={SET_SAMPLES}",
        f"generate.observed_weight={weight}",
        f"generate.sample_temperature={temperature}",
    ]


def choose_set_settings(parts: Parts, run: Path, recognitions: Path | None, decoder: str) -> list[str]:
    """The set selection's (observed_weight, sample_temperature) with the lowest dev action ED (seed 0's run)."""
    tried = {}
    for weight, temperature in SET_GRID[decoder]:
        tried[(weight, temperature)] = predict(parts.dev, run, set_settings(weight, temperature), recognitions)
        DEV_SWEEPS.setdefault((decoder, weight, temperature), []).append(tried[(weight, temperature)])
        print(
            f"    dev {parts.name} {decoder}: set selection w={weight} T={temperature}: "
            f"{_fmt(tried[(weight, temperature)])}",
            file=sys.stderr,
            flush=True,
        )
    best = min(tried, key=lambda k: tried[k]["action"])
    return set_settings(*best)


# -- rows ---------------------------------------------------------------------------------------------------------


class Rows(list):
    """(set, method, {head: [values]}) rows, each printed as it comes (stderr) so a long run shows progress."""

    def add(self, name: str, method: str, values: list[dict[str, float]]) -> None:
        row = (name, method, {h: [v[h] for v in values] for h in HEADS})
        self.append(row)
        print(f"  {name:<12}{method:<74}{_fmt(row[2])}", file=sys.stderr, flush=True)


def _fmt(ed: dict) -> str:
    cells = []
    for h in HEADS:
        v = np.atleast_1d(ed[h])
        cells.append(f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v[0]:.4f}")
    return "".join(f"{c:>18}" for c in cells)


def model_rows(
    parts: Parts, name: str, seeds: int, base: list[str], rows: Rows, recog: Path | None, trained_on: str, decoder: str
) -> None:
    """Train `seeds` runs (on ground truth, or on recognised inputs when trained_on says so), choose the set
    selection's settings on dev with seed 0, then one report prediction per row and seed."""
    runs = parts.dev.parent / "runs"
    extra = [*DECODERS[decoder], *([f"data.recognitions='{recog}'"] if trained_on == "recognised" else [])]
    paths = [runs / f"{decoder}-{trained_on.replace(' ', '-')}-seed{s}" for s in range(seeds)]
    for s, run in enumerate(paths):
        if run not in TRAINED:  # the ground-truth runs serve the recognised-input rows too
            took = train(parts.dev, run, [*base, *extra, *NO_SET, f"train.seed={s}"])  # best.pt: K as drawn
            TRAINED.add(run)
            print(f"    {name}: trained {run.name} in {took:.0f} s", file=sys.stderr, flush=True)
    chosen = choose_set_settings(parts, paths[0], recog, decoder)
    label = f"labels {decoder} (trained on {trained_on})" if recog else f"labels {decoder}"
    variants = {
        f"{label}, report's sampling (iid T=1, no prior, no set)": REPORT_SAMPLING,
        f"{label}, preset strategy, K as drawn": NO_SET,
        f"{label}, set selection ({', '.join(c.split('.', 1)[1] for c in chosen)}; dev)": chosen,
    }
    for method, settings in variants.items():
        rows.add(name, method, [predict(parts.report, run, settings, recog) for run in paths])


def evaluate(parts: Parts, seeds: int, base: list[str], rows: Rows, decoders: list[str]) -> None:
    dev, report = held_out(parts.dev, None), held_out(parts.report, None)
    for method, ed in heuristics(dev, report).items():
        rows.add(parts.name, method, [ed])
    for decoder in decoders:
        model_rows(parts, parts.name, seeds, base, rows, None, "ground truth", decoder)
    if parts.recognitions is not None:
        name = f"{parts.name}_recog"
        dev, report = held_out(parts.dev, parts.recognitions), held_out(parts.report, parts.recognitions)
        for method, ed in heuristics(dev, report).items():
            rows.add(name, method, [ed])
        for decoder, trained_on in itertools.product(decoders, ("ground truth", "recognised")):
            model_rows(parts, name, seeds, base, rows, parts.recognitions, trained_on, decoder)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    p.add_argument("--sets", default="ego4d,ek55")
    p.add_argument("--seeds", type=int, default=None, help="training seeds per model row (default 3; --quick: 2)")
    p.add_argument("--epochs", type=int, default=None, help="EK-55 epochs at batch 256 (default 6; --quick: 1)")
    p.add_argument("--ego4d-epochs", type=int, default=None, help="Ego4D epochs at batch 64 (default 8; --quick: 2)")
    p.add_argument("--quick", action="store_true", help="fewer epochs and seeds: a smoke run")
    p.add_argument("--decoders", default="heads,sequence", help="model.decoder rows (default: both)")
    args = p.parse_args()
    decoders = args.decoders.split(",")
    if any(d not in DECODERS for d in decoders):
        raise SystemExit(f"--decoders: choose from {', '.join(DECODERS)}")
    import torch

    torch.set_num_threads(int(os.environ.get("EGO4D_LTA_THREADS", "1")))  # a busy 2-core machine: 1 is faster
    seeds = args.seeds or (2 if args.quick else 3)
    epochs = args.epochs or (1 if args.quick else 6)
    ego4d_epochs = args.ego4d_epochs or (2 if args.quick else 8)
    # Ego4D's train part is small (~3.3k windows): batch 64 at the same lr, for a similar number of steps
    small = ["train.batch_size=64", "optim.base_batch=64", f"train.epochs={ego4d_epochs}"]
    converters = {"ego4d": (convert_ego4d, small), "ek55": (convert_ek55, [f"train.epochs={epochs}"])}
    rows = Rows()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = (args.out or Path(tmp)).resolve()
        for name in args.sets.split(","):
            if name not in converters:
                raise SystemExit(f"--sets: unknown set {name!r} ({', '.join(converters)})")
            convert, base = converters[name]
            evaluate(convert(root / name), seeds, base, rows, decoders)
    print("report parts only; every choice (best.pt, replay offsets, set selection) made on dev; model rows: mean ± sd")
    print(f"over {seeds} training seeds. Ego4D rows: challenge val clips split by clip, to measure learning only.")
    print(f"{'set':<12}{'method':<74}" + "".join(f"{h:>18}" for h in HEADS))
    for s, m, ed in rows:
        print(f"{s:<12}{m:<74}{_fmt(ed)}")
    print(f"# {time.perf_counter() - started:.0f} s; epochs per run: ek55 {epochs}, ego4d {ego4d_epochs}")
    print(
        f"# the set selection on dev, mean over the {len(next(iter(DEV_SWEEPS.values()), []))} dev sweeps (the "
        "labels preset's choice is the lowest action):"
    )
    for (decoder, weight, temperature), eds in sorted(
        DEV_SWEEPS.items(), key=lambda kv: np.mean([e["action"] for e in kv[1]])
    ):
        mean = {h: float(np.mean([e[h] for e in eds])) for h in HEADS}
        print(f"#   model.decoder={decoder} observed_weight={weight} sample_temperature={temperature}: {_fmt(mean)}")
    ek = [(m, ed) for s, m, ed in rows if s == "ek55"]
    preset = f"labels {load_config('labels').model.decoder}"
    model = [np.mean(ed["action"]) for m, ed in ek if "set selection" in m and m.startswith(preset)]
    if ek and model:
        best = min(np.mean(ed["action"]) for m, ed in ek if not m.startswith("labels"))
        print(f"ratio={model[0] / best:.4f}")


if __name__ == "__main__":
    main()
