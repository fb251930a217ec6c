"""Learning on real action sequences, through the product's own path: heuristics vs the `labels` forecaster.

    python benchmarks/real_sequences.py [--quick] [--out DIR] [--sets ego4d,ek55]

Each real set in ../shared/data (or $EGO4D_LTA_SHARED_DATA) is converted into the official annotation layout
(fho_lta_{train,val}.json + fho_lta_taxonomy.json, under --out or a temporary folder, never the repository),
then run as a user would: `ego4d-lta train --config labels`, `predict --split val`, `validate --json`,
`ensemble` (the CLI's own functions, in this process). It prints val ED@20 verb / noun / action per set for:

- repeat last: the last observed action, repeated 20 times (K = 1);
- cycled observed: the 8 observed actions cycled, 5 rotations (K = 5);
- Markov: a first-order chain over training actions from the last observed one, sampled K = 5 times;
- the labels forecaster with each sampling strategy, with loss mean and sum, and the pool ensemble of 2 seeds.

Sets. **ego4d**: the Ego4D v1 val action chains (antgpt_v1_val/val_chains.json, 208 clips), split by clip
(even chain index -> train, odd -> held-out). These are challenge *val* clips, used here only to measure
learning, never to tune a challenge model. `ego4d_recog` is the realistic setting: the same held-out windows
with the observed actions as a recognition model saw them (val_nseg8_recog.jsonl, via `--recognitions`).
**ek55**: EPIC-Kitchens-55, EGO-TOPO S1 split, train -> val (CC BY-NC 4.0 annotations; EPIC-Kitchens, EGO-TOPO).

Last line: `ratio=<forecaster action ED / best heuristic action ED>` on EK-55 val (below 1: the model wins).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.metrics import score
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main as cli

SHARED = Path(os.environ.get("EGO4D_LTA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
STRATEGIES = [  # (label, generate.* settings)
    ("iid T=1 (report)", ["generate.strategy='iid'"]),
    ("greedy_sample T=0.7", ["generate.strategy='greedy_sample'", "generate.temperature=0.7"]),
    ("joint T=1", ["generate.strategy='joint'", "generate.temperature=1.0"]),
    ("joint_greedy T=0.7", ["generate.strategy='joint_greedy'", "generate.temperature=0.7"]),
    (
        "joint_greedy T=0.7 +obs 1",
        ["generate.strategy='joint_greedy'", "generate.temperature=0.7", "generate.observed_bonus=1.0"],
    ),
]
DEFAULT = STRATEGIES[4][0]
"""The strategy the ratio and the ensemble use."""


# -- conversion into the official layout ------------------------------------------------------------------------


def _entries(clip_uid: str, actions: list[tuple[int, int]]) -> list[dict]:
    return [
        {
            "clip_uid": clip_uid,
            "action_idx": i,
            "action_clip_start_sec": 2.0 * i,
            "action_clip_end_sec": 2.0 * i + 1.5,
            "verb_label": v,
            "noun_label": n,
        }
        for i, (v, n) in enumerate(actions)
    ]


def _write(root: Path, taxonomy: dict, splits: dict[str, list[dict]]) -> Path:
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "fho_lta_taxonomy.json").write_text(json.dumps(taxonomy))
    for split, clips in splits.items():
        (ann / f"fho_lta_{split}.json").write_text(json.dumps({"clips": clips}))
    return root


def convert_ego4d(root: Path) -> tuple[Path, Path]:
    """Ego4D val chains -> train (even chains) / val (odd chains) + a recognitions file for the val windows."""
    base = SHARED / "antgpt_v1_val"
    dicts = json.loads((base / "dicts.json").read_text())
    chains = json.loads((base / "val_chains.json").read_text())["chains"]

    def ids(word_pair: str) -> tuple[int, int]:
        verb, noun = word_pair.strip().split(" ", 1)
        return dicts["v2i"][verb], dicts["n2i"][noun]

    splits: dict[str, list[dict]] = {"train": [], "val": []}
    recognised: dict[str, dict[str, int]] = {}
    windows = (base / "val_nseg8_recog.jsonl").read_text().splitlines()
    w = 0
    for c, chain in enumerate(chains):
        uid = f"ego4dval-{c:03d}"
        splits["train" if c % 2 == 0 else "val"].extend(_entries(uid, [ids(a) for a in chain]))
        for start in range(len(chain) - 27):  # the jsonl's windows of this chain, in order
            observed = json.loads(windows[w])["prompt"].split("\n")[0].split(",")
            for j, action in enumerate(observed):
                v, n = ids(action)
                recognised[f"{uid}_{start + j}"] = {"verb": v, "noun": n}  # a later window's view wins
            w += 1
    assert w == len(windows), (w, len(windows))
    taxonomy = json.loads((SHARED / "fho_lta_taxonomy_v1.json").read_text())
    _write(root, taxonomy, splits)
    recog = root / "val_recognitions.json"
    recog.write_text(json.dumps(recognised))
    return root, recog


def convert_ek55(root: Path) -> Path:
    """EPIC-Kitchens-55 S1: each video a clip, its actions in start-frame order (60 fps seconds)."""
    base = SHARED / "ek55_s1"

    def names(file: str) -> list[str]:
        with open(base / file, newline="") as f:
            return [row["class_key"] for row in csv.DictReader(f)]

    splits = {}
    for split, file in (("train", "train_S1.csv"), ("val", "val_S1.csv")):
        per_video: dict[str, list[tuple[int, int, int, int]]] = {}
        for line in (base / file).read_text().splitlines():
            video, start, end, verb, noun = line.split("\t")
            per_video.setdefault(video, []).append((int(start), int(end), int(verb), int(noun)))
        clips = []
        for video, rows in sorted(per_video.items()):
            rows.sort()
            uid = video.replace("/", "-").replace("_", "-")
            for i, (start, end, verb, noun) in enumerate(rows):
                clips.append(
                    {
                        "clip_uid": uid,
                        "action_idx": i,
                        "action_clip_start_sec": start / 60,
                        "action_clip_end_sec": max(end, start) / 60,
                        "verb_label": verb,
                        "noun_label": noun,
                    }
                )
        splits[split] = clips
    return _write(root, {"verbs": names("EPIC_verb_classes.csv"), "nouns": names("EPIC_noun_classes.csv")}, splits)


# -- heuristics ---------------------------------------------------------------------------------------------------


def heuristics(data: Path, recognitions: Path | None, seed: int = 0) -> dict[str, dict[str, float]]:
    """ED@20 of repeat-last, cycled observed and a sampled first-order Markov chain on the val windows."""
    ann = data / "annotations"
    train, tax = load_annotations(ann, "train")
    val, _ = load_annotations(ann, "val")
    windows = make_windows(val, include_extra=False)
    v_obs, n_obs = val["verb"].to_numpy()[windows.observed], val["noun"].to_numpy()[windows.observed]
    if recognitions is not None:
        recog = json.loads(recognitions.read_text())
        keys = [f"{u}_{a}" for u, a in zip(val["clip_uid"], val["action_idx"], strict=True)]
        rv = np.array([recog.get(k, {"verb": -1})["verb"] for k in keys])
        rn = np.array([recog.get(k, {"noun": -1})["noun"] for k in keys])
        v_obs, n_obs = rv[windows.observed], rn[windows.observed]
    v_true, n_true = val["verb"].to_numpy()[windows.future], val["noun"].to_numpy()[windows.future]
    nn_ = tax.num_nouns
    n = len(windows)
    out = {}
    rep = np.broadcast_to(np.arange(Z) * 0, (n, 1, Z))
    out["repeat last (K=1)"] = (v_obs[:, -1][:, None, None] + rep, n_obs[:, -1][:, None, None] + rep)
    cyc = (np.arange(K)[:, None] + np.arange(Z)[None, :]) % v_obs.shape[1]  # rotation k starts at observed[k]
    out["cycled observed (K=5)"] = (v_obs[:, cyc], n_obs[:, cyc])
    out["Markov 1st order (K=5)"] = markov(train, v_obs[:, -1] * nn_ + n_obs[:, -1], nn_, seed)
    return {name: score(v, n, v_true, n_true, nn_).ed20 for name, (v, n) in out.items()}


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


def validate(data: Path, sub: Path) -> dict[str, float]:
    report = json.loads(run_cli(["validate", str(sub), "--data", str(data), "--split", "val", "--json"]))
    return {h: report["scores"][h] for h in ("verb", "noun", "action")}


def train(data: Path, run: Path, settings: list[str]) -> float:
    t = time.perf_counter()
    argv = ["train", "--config", "labels", "--data", str(data), "--run", str(run), "--device", "cpu", "-q"]
    for s in settings:
        argv += ["--set", s]
    run_cli(argv)
    return time.perf_counter() - t


def predict(data: Path, run: Path, out: Path, settings: list[str], extra: list[str] = ()) -> dict[str, float]:
    argv = ["predict", "--run", str(run), "--split", "val", "--data", str(data), "--out", str(out), "--device", "cpu"]
    for s in settings:
        argv += ["--set", s]
    run_cli([*argv, "-q", *extra])
    return validate(data, out)


class Rows(list):
    """(set, method, scores) rows, each printed as it comes (stderr) so a long run shows progress."""

    def append(self, row) -> None:
        super().append(row)
        s, m, ed = row
        print(f"  {s:<12}{m:<62}{ed['verb']:>8.4f}{ed['noun']:>8.4f}{ed['action']:>8.4f}", file=sys.stderr, flush=True)


def evaluate_set(name: str, data: Path, recog: Path | None, base: list[str], rows: list) -> dict:
    """Heuristics and models on one set; appends (set, method, scores) rows; returns the default model's scores."""
    for method, ed in heuristics(data, None).items():
        rows.append((name, method, ed))
    runs = data / "runs"
    shutil.rmtree(runs, ignore_errors=True)  # a rerun into the same --out starts fresh
    variants = {"mean": [*base, "train.loss='mean'"], "sum": [*base, "train.loss='sum'"]}
    seconds = {}
    for loss, settings in variants.items():
        seconds[loss] = train(data, runs / f"labels-{loss}", settings)
        for label, gen in STRATEGIES:
            ed = predict(data, runs / f"labels-{loss}", data / f"sub-{loss}-{len(rows)}.json", gen)
            rows.append((name, f"labels loss={loss}, {label}", ed))
    # pool ensemble: two seeds of the default (mean) run, 50 samples each, default strategy
    gen = dict(STRATEGIES)[DEFAULT]
    train(data, runs / "labels-mean-seed1", [*variants["mean"], "train.seed=1"])
    pools = []
    for run in ("labels-mean", "labels-mean-seed1"):
        out = data / f"ens-{run}.json"
        predict(data, runs / run, out, gen, ["--pool", "50"])
        pools.append(str(out.with_name(out.stem + ".pool50.json")))
    ens = data / "ensemble.json"
    run_cli(["ensemble", *pools, "-o", str(ens), "--split", "val", "--data", str(data)])
    rows.append((name, f"labels pool ensemble 2 seeds x 50, {DEFAULT}", validate(data, ens)))
    print(f"# {name}: train seconds {', '.join(f'{k} {v:.0f}' for k, v in seconds.items())}", file=sys.stderr)
    if recog is not None:
        rname = f"{name}_recog"
        for method, ed in heuristics(data, recog).items():
            rows.append((rname, method, ed))
        for label, gen in STRATEGIES:
            sub = data / f"rec-{len(rows)}.json"
            ed = predict(data, runs / "labels-mean", sub, gen, ["--recognitions", str(recog)])
            rows.append((rname, f"labels loss=mean (trained on GT), {label}", ed))
    return next(ed for s, m, ed in rows if s == name and m == f"labels loss=mean, {DEFAULT}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    p.add_argument("--sets", default="ego4d,ek55")
    p.add_argument("--epochs", type=int, default=None, help="EK-55 epochs at batch 256 (default 6; --quick: 2)")
    p.add_argument("--ego4d-epochs", type=int, default=None, help="Ego4D epochs at batch 64 (default 8; --quick: 3)")
    p.add_argument("--quick", action="store_true", help="fewer epochs: a smoke run in a few minutes")
    args = p.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("EGO4D_LTA_THREADS", "1")))  # a busy 2-core machine: 1 is faster
    epochs = args.epochs or (2 if args.quick else 6)
    ego4d_epochs = args.ego4d_epochs or (3 if args.quick else 8)
    # Ego4D's train half is small (3.3k windows): batch 64 at the same lr, for a similar number of steps
    small = ["train.batch_size=64", "optim.base_batch=64", f"train.epochs={ego4d_epochs}"]
    rows = Rows()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = (args.out or Path(tmp)).resolve()
        model_ed = None
        for name in args.sets.split(","):
            if name == "ego4d":
                data, recog = convert_ego4d(root / "ego4d")
                evaluate_set("ego4d", data, recog, small, rows)
            elif name == "ek55":
                model_ed = evaluate_set("ek55", convert_ek55(root / "ek55"), None, [f"train.epochs={epochs}"], rows)
            else:
                raise SystemExit(f"--sets: unknown set {name!r} (ego4d, ek55)")
    print("Ego4D rows: challenge val clips split by clip (even -> train, odd -> held out), to measure learning only")
    print(f"{'set':<12}{'method':<62}{'verb':>8}{'noun':>8}{'action':>8}")
    for s, m, ed in rows:
        print(f"{s:<12}{m:<62}{ed['verb']:>8.4f}{ed['noun']:>8.4f}{ed['action']:>8.4f}")
    print(f"# {time.perf_counter() - started:.0f} s; epochs per run: ek55 {epochs}, ego4d {ego4d_epochs}")
    if model_ed is not None:
        best = min(ed["action"] for s, m, ed in rows if s == "ek55" and not m.startswith("labels"))
        print(f"ratio={model_ed['action'] / best:.4f}")


if __name__ == "__main__":
    main()
