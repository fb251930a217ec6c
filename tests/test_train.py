"""The demo and everything on its run: learning, resume, variants, keys, processes, the local launcher."""

from __future__ import annotations

import json
import os
import pickle
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import learnt, weights

from ego4d_lta.base.denormals import flush_denormals
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.hashing import file_digest
from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.baselines import BASELINES
from ego4d_lta.challenge.metrics import score
from ego4d_lta.challenge.rules import SPLIT_FILES, K, Z
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main
from ego4d_lta.config import Config, load_config
from ego4d_lta.models.forecaster import VARIANTS, ForecastingModel, build_forecaster, needed_arrays
from ego4d_lta.runtime.inputs import RunInputs, feature_dims
from ego4d_lta.runtime.training import training_loss
from ego4d_lta.stages.predict import PredictConfig, predict
from ego4d_lta.stages.train import train

# Every test that needs the demo's run is in this file: `--dist loadfile` keeps them on one xdist worker, which
# runs the demo once (conftest puts this file first, so the demo starts at once).
pytestmark = pytest.mark.slow


def _cli_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ego4d_lta", *args], capture_output=True, text=True)


def tiny(data: Path, *sets: str) -> Config:
    cfg = load_config("tiny", list(sets))
    cfg.data.data_dir = str(data)
    return cfg


def test_demo_model_beats_every_baseline_by_a_margin(demo_report: dict) -> None:
    """The demo's learning claim: at least 0.10 better than random, majority and repeat-last on verb and noun."""
    model = demo_report["model"]
    for name, base in demo_report["baselines"].items():
        for head in ("verb", "noun"):
            assert model[head] <= base[head] - 0.10, f"{head}: model {model[head]:.3f} vs {name} {base[head]:.3f}"


def test_overfits_a_handful_of_windows(demo_report: dict, synth_data: Path) -> None:
    """The 20 heads memorise 8 windows. (The sequence decoder of a video run does not, yet: its copy gate settles on
    copying where the pointer cannot tell some segments apart, and its loss stops well above the heads'; docs/
    training.md, "The sequence decoder". Its own learning test is in test_sequence_decoder.py.)"""
    no_dropout = ("model.dropout=0.0", "model.position_dropout=0.0", "model.head_dropout=0.0")
    cfg = tiny(synth_data, *no_dropout, "model.slowfast_input_dropout=0.0", "model.decoder='heads'")
    sources = RunInputs(cfg)
    inputs = sources.open("train", training=True)
    picked = np.flatnonzero(inputs.available)[:8].tolist()
    batch = inputs.dataset[picked]
    torch.manual_seed(0)
    tax = inputs.taxonomy
    forecaster = build_forecaster(cfg.model, feature_dims(sources.record), tax.num_verbs, tax.num_nouns)
    forecaster.fusion.stats.set(inputs.dataset.feature_stats(np.asarray(picked)))
    model = ForecastingModel(forecaster)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with flush_denormals():  # as training does (denormal Adam moments are ~100x slower on a CPU)
        for _ in range(200):
            loss = training_loss(model(batch), batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    verb, noun = model(batch)
    assert loss.item() < 0.05
    assert torch.equal(verb.argmax(-1), batch["verb"]) and torch.equal(noun.argmax(-1), batch["noun"])


def test_resume_continues_exactly_and_runs_are_deterministic(
    demo_report: dict, synth_data: Path, tmp_path: Path
) -> None:
    cfg = tiny(synth_data, "train.epochs=2")
    whole = train(cfg, tmp_path / "whole", progress=False)
    assert whole.stopped is None and whole.epochs_done == 2
    stopped = train(tiny(synth_data, "train.epochs=2", "train.stop_after=3"), tmp_path / "split", progress=False)
    assert stopped.stopped == "stop_after" and stopped.steps == 3 and stopped.epochs_done == 0
    with pytest.raises(UserError, match="already holds a run"):
        train(cfg, tmp_path / "split", progress=False)
    with pytest.raises(UserError, match=r"different config \(optim.lr"):
        train(tiny(synth_data, "train.epochs=2", "optim.lr=0.1"), tmp_path / "split", resume=True, progress=False)
    resumed = train(cfg, tmp_path / "split", resume=True, progress=False)

    def learning(history: list[dict]) -> list[tuple]:
        return [(h["epoch"], h["step"], h["loss"], h["lr"], h["val"]) for h in history]  # not the timings

    assert resumed.steps == whole.steps and learning(resumed.history) == learning(whole.history)
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "split")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    best = torch.load(tmp_path / "whole" / "best.pt", weights_only=False)
    assert best["state"]["best"]["action"] == min(h["val"]["action"] for h in whole.history)


def test_tensorboard_curves_continue_across_a_resume(
    demo_report: dict, synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Event files in RUN/tensorboard on rank 0: loss and lr per step, val ED@20 per head per epoch, ED@z at the end;
    a resume adds a file whose steps continue; the epoch line has time, lr, rate, best marker; no \\r in a log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(tiny(synth_data, "train.epochs=2", "train.stop_after=3"), run, progress=True)
    train(tiny(synth_data, "train.epochs=2"), run, resume=True, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err  # stderr is not a terminal here: whole lines
    line = r"epoch 1/2 \d+s lr \d\.\d\de-\d\d [\d.]+k? win/s: loss \d+\.\d{4}; val ED@20 verb .* \*best\n"
    assert re.search(line, err), err
    events = sorted((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 3  # one per process start, and add_hparams' own at the end (the HPARAMS tab)
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for head in ("verb", "noun", "action"):
        val = acc.Scalars(f"val/ed20_{head}")
        assert [(e.step, round(e.value, 5)) for e in val] == [(h["step"], round(h["val"][head], 5)) for h in history]
        assert [e.step for e in acc.Scalars(f"best/ed_at_z_{head}")] == list(range(1, Z + 1))
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] <= history[-1]["step"]
    assert {"train/lr", "epoch/windows_per_s", "epoch/loss"} <= set(acc.Tags()["scalars"])


def test_dry_run_writes_nothing_and_a_finished_run_extends(
    demo_report: dict, synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`train --dry-run` reports the job's size and writes nothing; `--resume --set train.epochs=N` extends a
    finished run: the cosine is recomputed for the new total and the next step's lr comes from it."""
    from ego4d_lta.runtime.training import warmup_cosine

    run = tmp_path / "run"
    base = ["train", "--config", "tiny", "--data", str(synth_data), "--run", str(run), "-q", "--log", "none"]
    assert main([*base, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not run.exists()
    cfg = tiny(synth_data)
    val, _ = load_annotations(synth_data / "annotations", "val")
    _, tax = load_annotations(synth_data / "annotations", "train")
    inputs = RunInputs(cfg)
    inputs.open("train", training=True)  # reads the record and the prompt bank
    model = build_forecaster(cfg.model, feature_dims(inputs.record), tax.num_verbs, tax.num_nouns, inputs.bank)
    assert f"val {len(make_windows(val, include_extra=False))}\n" in out and "# world size 1 " in out
    assert re.search(r"# windows: train \d+ of \d+ usable", out)
    assert f"# parameters {sum(p.numel() for p in model.parameters()):,} (" in out
    assert "a new run; nothing written" in out and 'name = "tiny"' in out

    one = train(tiny(synth_data, "train.epochs=1"), run, progress=False, log=())
    assert main([*base, "--set", "train.epochs=2", "--dry-run"]) == 2  # not without --resume
    assert "already holds a run" in capsys.readouterr().err
    assert main([*base, "--set", "train.epochs=2", "--resume", "--dry-run"]) == 0
    assert f"resume at epoch 1, step {one.steps}; nothing written" in capsys.readouterr().out
    assert main([*base, "--set", "train.epochs=2", "--resume"]) == 0
    out = capsys.readouterr().out
    lr = cfg.optim.lr * cfg.train.batch_size / cfg.optim.base_batch
    total = 2 * one.steps
    expected = lr * warmup_cosine(min(cfg.optim.warmup_steps, total), total)(one.steps)
    assert f"note: train.epochs 1 -> 2: the cosine now ends at step {total}; lr " in out
    assert f" -> {expected:.3e} at step {one.steps}" in out and expected > 0
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2] and history[1]["step"] == total
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2


def test_the_python_api_predicts_what_the_command_wrote(demo_report: dict, demo_dir: Path, tmp_path: Path) -> None:
    """`load_run` + `predict` + `Forecast.write` give the demo's val submission byte for byte (the command's path);
    `read_cache` opens the cache the run read."""
    import ego4d_lta as lta

    run = lta.load_run(demo_dir / "runs" / "tiny")
    assert run.path.name == "best.pt" and run.config.name == "tiny" and not run.model.training
    forecast = lta.predict(run, "val")
    written = demo_dir / "submissions" / "tiny-val.json"
    assert forecast.write(tmp_path / "val.json").read_bytes() == written.read_bytes()
    assert forecast.verb.shape == (len(forecast.keys), K, Z) and not forecast.fallback.any()
    report = lta.score_submission(tmp_path / "val.json", demo_dir / "data" / "annotations")
    assert report.scores.ed20 == pytest.approx(demo_report["model"])
    cache = lta.read_cache(demo_dir / "data" / "features", "val", encoders="tiny")
    assert cache.manifest.split == "val" and len(cache) == len(cache.index) > 0
    assert cache.manifest.record.to_json() == run.checkpoint.features.to_json()


@pytest.mark.parametrize("variant", [v for v in VARIANTS if set(needed_arrays(v)) <= {"slowfast", "clip"}])
def test_every_variant_trains_and_predicts(demo_report: dict, synth_data: Path, tmp_path: Path, variant: str) -> None:
    cfg = tiny(synth_data, "train.epochs=1", f"model.variant={variant!r}".replace("'", '"'))
    result = train(cfg, tmp_path / variant, progress=False)
    entry = result.history[0]
    assert np.isfinite(entry["loss"]) and set(entry["val"]) == {"verb", "noun", "action"}
    summary = predict(PredictConfig(tmp_path / variant, "val", out=tmp_path / f"{variant}.json", progress=False))
    assert summary.scores.ed20 == pytest.approx(entry["val"])  # predict = the validation the run did


def test_test_predictions_cover_every_key_with_missing_videos(demo_report: dict, demo_dir: Path) -> None:
    table, _ = load_annotations(demo_dir / "data" / "annotations", "test")
    required, _ = make_windows(table).key_sets()
    submission = json.loads(Path(demo_report["submission"]).read_text())
    assert sorted(submission) == sorted(required)
    broken = json.loads((demo_dir / "data" / "synthetic.json").read_text())
    broken_clips = set(broken["missing_videos"]) | set(broken["corrupt_videos"])
    assert len(broken_clips) == 2
    meta = json.loads(Path(demo_report["submission"]).with_suffix(".meta.json").read_text())
    fallback_keys = [k for k in required if k.rsplit("_", 1)[0] in broken_clips]
    assert meta["fallback_windows"] == len(fallback_keys) > 0
    assert Path(meta["checkpoint"]).name == "best.pt" and meta["config"]["name"] == "tiny"
    first = submission[fallback_keys[0]]
    assert all(len(set(seq)) == 1 for seq in first["verb"] + first["noun"])  # the repeated fallback action


def test_predict_cli_warns_about_fallbacks_and_errors_are_one_line(
    demo_report: dict, demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "test.json"
    run = str(demo_dir / "runs" / "tiny")
    assert main(["predict", "--split", "test", "--run", run, "--out", str(out), "-q"]) == 0
    captured = capsys.readouterr()
    assert "got the fallback prediction" in captured.err and f"wrote {out}" in captured.out
    assert out.read_bytes() == Path(demo_report["submission"]).read_bytes()  # deterministic for the seed
    cases = [
        (["predict", "--split", "val", "--run", str(tmp_path / "nothing")], "checkpoint not found"),
        (["predict", "--split", "val", "--run", run, "--set", "model.layers=3"], "predict takes only generate.*"),
        (
            ["train", "--config", "tiny", "--data", str(tmp_path), "--run", str(tmp_path / "r")],
            "no feature cache for train",
        ),
        (["train", "--config", "nope"], "no such preset"),
        (["train", "--config", "tiny", "--set", "model.layers=two"], "model.layers must be int"),
        (["predict", "--split", "val", "--run", run, "--device", "tpu"], "expected auto, cpu, cuda"),
    ]
    for args, message in cases:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as stop:  # argparse's own: usage, then one error line
        main(["predict", "--split", "val", "--run", run, "--pool", "5"])
    assert stop.value.code == 2 and "--pool: '5': expected an integer in 6..1000" in capsys.readouterr().err


def test_a_video_run_replays_recognised_actions_through_the_set_selection(
    demo_report: dict, demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`--recognitions` on a video run: refused without the set selection; with it, the recognised observed actions
    join the pool (most chosen sequences are replays when they carry the weight) and the sidecar records the file."""
    table, _ = load_annotations(demo_dir / "data" / "annotations", "val")
    windows = make_windows(table, include_extra=False)  # the windows a val submission holds
    recog = tmp_path / "recog.json"
    keys = [f"{u}_{a}" for u, a in zip(table["clip_uid"], table["action_idx"], strict=True)]
    dropped = int(windows.observed[0, 0])  # a clip's first segment: observed by that clip's first window only
    rows = zip(keys, table["verb"], table["noun"], strict=True)
    recog.write_text(
        json.dumps({k: {"verb": int(v), "noun": int(n)} for i, (k, v, n) in enumerate(rows) if i != dropped})
    )
    uncovered = (windows.observed == dropped).any(1)
    assert uncovered.sum() == 1
    run, out = str(demo_dir / "runs" / "tiny"), tmp_path / "val.json"
    base = ["predict", "--split", "val", "--run", run, "--out", str(out), "-q", "--recognitions", str(recog)]
    assert main(base) == 2
    assert "add --set generate.samples=50" in capsys.readouterr().err
    assert main([*base, "--out", str(recog), "--set", "generate.samples=8"]) == 2  # never over its input
    assert "is one of this command's inputs" in capsys.readouterr().err
    assert main([*base, "--set", "generate.samples=8", "--set", "generate.observed_weight=0.9"]) == 0
    assert "1 of" in capsys.readouterr().err  # the window without its first segment: named in a warning
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["recognitions"]["sha256"] == file_digest(recog)
    assert meta["recognitions"]["windows"] - meta["recognitions"]["windows_covered"] == 1
    submission = json.loads(out.read_text())
    verb = table["verb"].to_numpy()[windows.observed]
    replays = 0
    for w, key in enumerate(windows.keys):
        if uncovered[w]:
            continue
        rotations = {tuple(verb[w][(j + np.arange(Z)) % 8]) for j in range(8)}
        replays += sum(tuple(seq) in rotations for seq in submission[key]["verb"])
    assert replays >= 3 * (len(windows) - 1), replays  # most of the K are the recognised replays


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_and_predict_like_one(demo_report: dict, synth_data: Path, tmp_path: Path) -> None:
    """gloo DDP with 2 processes = 1 process with the same global batch; prediction splits windows, loses none."""
    sets = ["train.epochs=1", "model.dropout=0.0", "model.position_dropout=0.0", "model.head_dropout=0.0"]
    sets.append("model.slowfast_input_dropout=0.0")  # dropout draws differ per process; the comparison needs none
    single = tmp_path / "single"
    train(tiny(synth_data, *sets), single, progress=False)
    script = tmp_path / "job.py"
    common = ["--config", "tiny", "--data", str(synth_data), "-q"]
    set_args = [a for s in sets for a in ("--set", s)]
    train_args = ["train", *common, *set_args, "--run", str(tmp_path / "ddp")]
    predict_args = ["predict", "--split", "val", "--run", str(single), "--out", str(tmp_path / "ddp-val.json"), "-q"]
    predict_args += ["--pool", "7"]
    script.write_text(
        f"import sys\nfrom ego4d_lta.cli import main\nsys.exit(main({train_args!r}) or main({predict_args!r}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port())]
    out = subprocess.run([*cmd, str(script)], capture_output=True, text=True, env=env, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rank 0/2 local 0 node 0" in out.stdout and "rank 1/2 local 1 node 0" in out.stdout
    a, b = weights(single), weights(tmp_path / "ddp")
    assert a.keys() == b.keys() and all(torch.allclose(*learnt(a[k], b[k], k), atol=1e-5, rtol=1e-4) for k in a)
    one = predict(PredictConfig(single, "val", out=tmp_path / "one-val.json", progress=False, pool=7))
    assert json.loads((tmp_path / "ddp-val.json").read_text()) == json.loads(one.path.read_text())
    assert json.loads((tmp_path / "ddp-val.pool7.json").read_text()) == json.loads(one.pool.read_text())


def test_predict_pool_feeds_the_ensemble(demo_report: dict, demo_dir: Path, tmp_path: Path, capsys) -> None:
    """`predict --pool N` writes N more samples per window beside the submission (which stays as it was); the pool
    is no submission for `validate`, but `ensemble` chooses K = 5 from it and other inputs."""
    run, data = demo_dir / "runs" / "tiny", demo_dir / "data"
    plain = predict(PredictConfig(run, "val", out=tmp_path / "plain.json", progress=False)).path
    made = predict(PredictConfig(run, "val", out=tmp_path / "val.json", progress=False, pool=12))
    assert made.pool == tmp_path / "val.pool12.json" and made.path.read_bytes() == plain.read_bytes()
    pool, submission = json.loads(made.pool.read_text()), json.loads(made.path.read_text())
    assert list(pool) == list(submission) and all(len(pool[k]["verb"]) == len(pool[k]["noun"]) == 12 for k in pool)
    assert json.loads((tmp_path / "val.meta.json").read_text())["pool"] == "val.pool12.json"
    assert main(["validate", str(made.pool), "--split", "val", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "use `ego4d-lta ensemble" in err and "is a pool of 12 samples per window" in err

    out = tmp_path / "ens.json"
    args = ["ensemble", str(made.pool), str(made.path), "-o", str(out), "--split", "val", "--data", str(data)]
    assert main(args) == 0
    assert "K=5 chosen from 17 sequences per window of 2 inputs" in capsys.readouterr().out
    got = json.loads(out.read_text())

    def pairs(value: dict) -> set[tuple]:
        return set(zip(map(tuple, value["verb"]), map(tuple, value["noun"]), strict=True))

    for key, value in got.items():
        assert len(value["verb"]) == 5 and pairs(value) <= pairs(pool[key]) | pairs(submission[key])
    one = ["ensemble", str(made.pool), "-o", str(tmp_path / "one.json"), "--split", "val", "--data", str(data)]
    assert main(one) == 0  # one run's pool alone: its 5 most representative sequences


def test_training_needs_a_feature_cache(synth_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "annotations").mkdir(parents=True)
    for name in (*SPLIT_FILES.values(), "fho_lta_taxonomy.json"):
        src = synth_data / "annotations" / name
        (data / "annotations" / name).write_text(src.read_text())
    with pytest.raises(UserError, match=r"^run `ego4d-lta extract --split train .* holds no feature cache for train$"):
        train(tiny(data), tmp_path / "run", progress=False)


def test_sigusr2_and_sigterm_ask_for_a_checkpoint() -> None:
    """What Slurm sends before a time limit or preemption is caught, not fatal, and reported by name."""
    import signal

    from ego4d_lta.runtime.training import StopFlag

    flag = StopFlag().install()
    try:
        assert flag.requested() == 0
        os.kill(os.getpid(), signal.SIGUSR2)  # the default action would end the process
        assert flag.requested() == signal.SIGUSR2
    finally:
        flag.restore()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_demo_reports_baselines_and_a_valid_test_submission(demo_dir: Path, demo_report: dict) -> None:
    saved = json.loads((demo_dir / "demo_report.json").read_text())
    assert saved == json.loads(json.dumps(demo_report))
    assert set(saved["baselines"]) == set(BASELINES)
    for scores in [saved["model"], *saved["baselines"].values()]:
        assert set(scores) == {"verb", "noun", "action"} and all(0 <= v <= 1 for v in scores.values())
    # the written, validated and re-scored majority submission scores what the metric gives directly
    val, taxonomy = load_annotations(demo_dir / "data" / "annotations", "val")
    train, _ = load_annotations(demo_dir / "data" / "annotations", "train")
    (verb, noun), _ = Counter(zip(train.verb, train.noun, strict=True)).most_common(1)[0]
    windows = make_windows(val, include_extra=False)
    truth = val.verb.to_numpy()[windows.future], val.noun.to_numpy()[windows.future]
    direct = score(np.full((len(windows), K, Z), verb), np.full((len(windows), K, Z), noun), *truth, taxonomy.num_nouns)
    assert saved["baselines"]["majority"] == pytest.approx(direct.ed20)
    out = _cli_run("validate", saved["submission"], "--annotations", str(demo_dir / "data" / "annotations"))
    assert out.returncode == 0, out.stderr


def test_local_launcher_trains_from_the_snapshot(
    demo_report: dict, synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The job submitit runs (TrainJob -> `ego4d-lta train --resume`) trains from the copied code, in its own folder,
    with one process per task (gloo DDP, ranks from submitit's environment)."""
    run = tmp_path / "run"
    args = ["train", "--config", "tiny", "--data", str(synth_data), "--set", "train.epochs=1", "--run", str(run)]
    assert main([*args, "--launcher", "local", "--tasks-per-node", "2", "--time", "20"]) == 0
    out = capsys.readouterr().out
    assert "1 node(s) x 2 task(s)" in out and "requeued on timeout or preemption" in out
    folder = next((run / "submitit").iterdir())
    deadline = time.monotonic() + 1200
    while len(list(folder.glob("*/*_result.pkl"))) < 2:
        assert time.monotonic() < deadline, "the local job did not finish"
        time.sleep(1)
    for task in (0, 1):
        result = pickle.loads(next(folder.glob(f"*/*_{task}_result.pkl")).read_bytes())
        log = next(folder.glob(f"*/*_{task}_log.out")).read_text()
        assert result[0] == "success", (result, log[-3000:])
        assert f"[launch] code {folder / 'code' / 'ego4d_lta'} restart 0" in log
        assert f"[rank {task}/2 local {task} node 0" in log, log
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    assert state["state"]["epoch"] == 1 and state["config"]["name"] == "tiny"
    assert main([*args, "--launcher", "local"]) == 2  # the run exists now: --resume is needed
    assert "already holds a run" in capsys.readouterr().err
    assert "PYTHONPATH" not in os.environ or str(folder) not in os.environ["PYTHONPATH"]


def test_report_reads_a_real_run(demo_report: dict, demo_dir: Path, tmp_path: Path) -> None:
    """The table row and ED@z of the demo's run come from what training wrote (metrics.jsonl, config.json)."""
    from ego4d_lta.workflow.report import load_run, report

    run = demo_dir / "runs" / "tiny"
    summary = load_run(run)
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=False)["state"]["best"]
    assert summary.best["epoch"] == best["epoch"] and summary.best["val"]["action"] == best["action"]
    assert len(summary.best["val_ed_at_z"]["action"]) == 20 and summary.train_seconds > 0
    text, files = report([run], tmp_path)
    assert f"| tiny | slowfast_clip | {len(summary.history)}/16 | {best['epoch']} | {best['verb']:.4f} |" in text
    assert [f.name for f in files] == ["report.md", "training.png", "ed_at_z.png"] and all(
        f.stat().st_size for f in files
    )
