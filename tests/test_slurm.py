"""The Slurm path on a real Slurm cluster (2 virtual nodes, `slurm/local_cluster.sh`): sbatch scripts, requeue,
the submitit launcher, the extraction array.

`scripts/test.sh` brings the cluster up (as root) and down. Every wait is bounded: without accounting, Slurm
forgets nothing we need for 10 minutes (MinJobAge), but submitit's `result()` would wait forever on a dead job.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import hold_env, learnt, subset_dataset, weights

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.cli import main
from ego4d_lta.config import load_config
from ego4d_lta.data.feature_cache import FeatureCache
from ego4d_lta.runtime.encoder_config import ENCODER_PRESETS
from ego4d_lta.stages.extract import ExtractConfig, extract
from ego4d_lta.stages.train import train

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
JOB_LIMIT_S = 1200  # one wait on a loaded 2-core machine (each attempt: 4 torch imports of ~60 s CPU each)
PENDING_LIMIT_S = 300  # a job the cluster cannot run fails the test with Slurm's reason, not after JOB_LIMIT_S
NO_DROPOUT = [
    "model.dropout=0.0",
    "model.position_dropout=0.0",
    "model.head_dropout=0.0",
    "model.slowfast_input_dropout=0.0",
]
SETS = ["train.epochs=2", *NO_DROPOUT]
RANK_LINE = re.compile(r"\[rank (\d+)/(\d+) local (\d+) node (\d+) host (\S+)\]")
STUCK: list[str] = []  # why a job of this module could not run: the later tests fail at once with the reason


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[str]]:
    """The running cluster's idle nodes; a missing cluster fails (it is not a reason to skip)."""
    _wait_for_test_sh()
    with pytest.MonkeyPatch.context() as env:
        conf = os.environ.get("EGO4D_LTA_SLURM_CONF")  # test.sh's own cluster: the Slurm commands talk to it
        if conf:
            env.setenv("SLURM_CONF", conf)
        if not shutil.which("sinfo"):
            pytest.fail("no Slurm here: as root, `SLURM_LOCAL_GPUS=2 bash slurm/local_cluster.sh up`", pytrace=False)
        nodes = _run(["sinfo", "-h", "-N", "-t", "idle", "-o", "%N"]).split()
        if len(set(nodes)) < 2:
            pytest.fail(f"the local cluster needs 2 idle nodes, sinfo says {nodes}", pytrace=False)
        submitted: list[str] = []
        yield submitted
        for job in submitted:  # whatever a failed test left behind
            subprocess.run(["scancel", job], capture_output=True, timeout=60)


def _wait_for_test_sh() -> None:
    """`scripts/test.sh` brings its cluster up in the background: wait for its exit status; fail on an error."""
    status = os.environ.get("EGO4D_LTA_SLURM_STATUS")
    if status:
        deadline = time.monotonic() + 900
        while not Path(status).is_file() and time.monotonic() < deadline:
            time.sleep(1)
        code = Path(status).read_text().strip() if Path(status).is_file() else "timeout"
        if code != "0":
            log = Path(status).with_suffix(".log")
            tail = log.read_text()[-2000:] if log.is_file() else ""
            pytest.fail(f"slurm/local_cluster.sh up failed ({code}):\n{tail}", pytrace=False)


@pytest.fixture(autouse=True)
def _cluster_not_stuck() -> None:
    if STUCK:
        pytest.fail(f"an earlier job could not run on this cluster: {STUCK[0]}", pytrace=False)


@pytest.fixture(scope="module")
def single(demo_report: dict, synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The reference: the same training in one process (same global batch), uninterrupted."""
    cfg = load_config("tiny", SETS)
    cfg.data.data_dir = str(synth_data)
    run = tmp_path_factory.mktemp("single")
    train(cfg, run / "run", progress=False)
    return weights(run / "run")


def _run(cmd: list[str], hold: str = "") -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_job_env(hold))
    assert out.returncode == 0, f"{' '.join(cmd)}: {out.stderr}"
    return out.stdout


def _job_env(hold: str = "") -> dict[str, str]:
    """What a user's shell passes to sbatch: the venv on PATH, one thread per task (2 cores shared by 4 tasks).

    `hold="train"`: the job's first attempt waits after epoch 1 until it is signalled (tests/hold/sitecustomize.py),
    so the test interrupts training in the middle however fast the machine is."""
    env = {k: v for k, v in os.environ.items() if k == "SLURM_CONF" or not k.startswith(("SLURM_", "SBATCH_"))}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "OMP_NUM_THREADS": "1"}
    return env | hold_env(hold) if hold else env


def _jobs(job_id: str) -> list[dict[str, str]]:
    """`scontrol show job` as dicts (JobState, Restarts, Reason, ...): one per task of an array job."""
    text = _run(["scontrol", "show", "job", "-o", job_id])
    return [dict(item.split("=", 1) for item in line.split() if "=" in item) for line in text.splitlines() if line]


def _job(job_id: str) -> dict[str, str]:
    return _jobs(job_id)[0]


def _wait(done: Callable[[], bool], job_id: str, what: str, log: Path, limit_s: float = JOB_LIMIT_S) -> None:
    """Poll until `done()`; fail at once on a job that died or ended without it, after PENDING_LIMIT_S in a row
    pending, or at `limit_s`."""
    deadline, pending_since = time.monotonic() + limit_s, None
    while not done():
        jobs = _jobs(job_id)
        states = {job["JobState"] for job in jobs}
        tail = log.read_text()[-3000:] if log.is_file() else "(no log yet)"
        dead = states & {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
        assert not dead, f"{what}: job {job_id} {sorted(states)}:\n{tail}"
        assert states != {"COMPLETED"} or done(), f"{what}: job {job_id} ended without it:\n{tail}"
        if states == {"PENDING"}:
            pending_since = pending_since or time.monotonic()
            waited = time.monotonic() - pending_since
            if waited > PENDING_LIMIT_S:
                STUCK.append(f"{what}: job {job_id} pending {waited:.0f} s ({jobs[0].get('Reason')})")
                pytest.fail(f"{STUCK[-1]}; sinfo:\n{_run(['sinfo', '-N', '-o', '%N %T %C %G %E'])}", pytrace=False)
        else:
            pending_since = None
        assert time.monotonic() < deadline, f"{what}: not within {limit_s:.0f} s (job {sorted(states)}):\n{tail}"
        time.sleep(0.5)


def _epochs_logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    return path.read_text().count("\n") if path.is_file() else 0


def _held(log: Path) -> bool:
    """Training has logged epoch 1 and waits to be signalled (EGO4D_LTA_TEST_HOLD=train)."""
    return log.is_file() and "[hold] train: waiting" in log.read_text()


def _completed(job_id: str) -> Callable[[], bool]:
    return lambda: all(job["JobState"] == "COMPLETED" for job in _jobs(job_id))


def _assert_same_weights(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        a, b = learnt(got[name], want[name], name)
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), f"{name}: {float((a - b).abs().max()):.2e} apart"


def _train_args(data: Path, run: Path) -> list[str]:
    return ["--config", "tiny", "--data", str(data), "--run", str(run), "-q", *(a for s in SETS for a in ("--set", s))]


def test_sbatch_on_two_nodes_requeued_mid_run_ends_like_one_process(
    cluster: list[str], single: dict, synth_data: Path, tmp_path: Path
) -> None:
    """`sbatch slurm/train.sh` on 2 nodes x 2 tasks; `scontrol requeue` after epoch 1; the job resumes from last.pt
    and its final weights are those of one uninterrupted process with the same global batch."""
    run, log = tmp_path / "run", tmp_path / "train.out"
    flags = ["--nodes=2", "--ntasks-per-node=2", "--gpus-per-node=2", "--cpus-per-task=1", f"--output={log}"]
    train_sh = [str(REPO / "slurm" / "train.sh"), *_train_args(synth_data, run)]
    job = _run(["sbatch", "--parsable", *flags, *train_sh], hold="train").strip().split(";")[0]
    cluster.append(job)
    _wait(lambda: _held(log) and _epochs_logged(run) >= 1, job, "epoch 1", log)  # any rank's line; rank 0 logs
    assert _epochs_logged(run) == 1  # and training waits: the requeue comes in the middle of the run
    _run(["scontrol", "requeue", job])
    _wait(_completed(job), job, "the requeued job", log)

    text = log.read_text()
    assert _job(job)["Restarts"] == "1"
    assert f"[slurm] job {job} restart 0: 2 nodes (node[1-2]), 4 tasks" in text
    assert f"[slurm] job {job} restart 1: 2 nodes (node[1-2]), 4 tasks" in text
    first, second = text.split(f"[slurm] job {job} restart 1")
    want = {("0", "4", "0", "0", "node1"), ("1", "4", "1", "0", "node1"), ("2", "4", "0", "1", "node2")}
    want.add(("3", "4", "1", "1", "node2"))
    assert set(RANK_LINE.findall(first)) == want and set(RANK_LINE.findall(second)) == want
    assert re.search(r"resumed \S+last\.pt at epoch [12] batch \d+", second), second[-3000:]
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)["state"]
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    _assert_same_weights(weights(run), single)


def test_submitit_launcher_on_two_nodes_requeues_itself_on_usr2(
    cluster: list[str],
    single: dict,
    synth_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """`ego4d-lta train --launcher slurm --nodes 2`: Slurm's time-limit warning (USR2) after epoch 1 saves last.pt,
    submitit requeues the job, it resumes from the code snapshot, and ends like one process."""
    for key, value in _job_env(hold="train").items():  # the job inherits this process's environment, as from a shell
        monkeypatch.setenv(key, value)
    run = tmp_path / "run"
    launch = ["--launcher", "slurm", "--nodes", "2", "--gpus-per-node", "1", "--cpus-per-task", "1", "--time", "60"]
    assert main(["train", *_train_args(synth_data, run), *launch]) == 0
    job = re.search(r"submitted slurm job (\d+): 2 node\(s\) x 1 task\(s\)", capsys.readouterr().out)[1]
    cluster.append(job)
    folder = next((run / "submitit").iterdir())
    log = folder / job / f"{job}_0_log.out"
    _wait(lambda: _held(log.with_suffix(".err")) and _epochs_logged(run) >= 1, job, "epoch 1", log)
    assert _epochs_logged(run) == 1  # and training waits: the signal comes in the middle of the run
    _run(["scancel", "--signal=USR2", job])  # what Slurm sends `--signal=USR2@120` before the time limit
    result = folder / job / f"{job}_0_result.pkl"
    _wait(result.is_file, job, "the requeued job's result", log)

    assert pickle.loads(result.read_bytes()) == ("success", str(run.resolve()))
    text, err = log.read_text(), log.with_name(f"{job}_0_log.err").read_text()
    code = folder / "code" / "ego4d_lta"
    assert f"[launch] code {code} restart 0" in text and f"[launch] code {code} restart 1" in text
    assert "stopped (SIGUSR2)" in text and f"Requeued job {job}" in text, err[-3000:]
    for task, node in ((0, "node1"), (1, "node2")):  # each task's own log: its rank line in both attempts
        first, second = log.with_name(f"{job}_{task}_log.out").read_text().split("restart 1")
        want = [(str(task), "2", "0", str(task), node)]
        assert RANK_LINE.findall(first) == want and RANK_LINE.findall(second) == want
    resumed = text.split("restart 1")[1]  # rank 0 (task 0) reports the resume
    assert re.search(r"resumed \S+last\.pt at epoch [12] batch \d+", resumed), resumed[-3000:]
    _assert_same_weights(weights(run), single)


def test_extract_array_builds_the_cache_of_one_extract(
    cluster: list[str], synth_data: Path, tiny_weights: dict[str, Path], tmp_path: Path
) -> None:
    """`sbatch --array=0-1 slurm/extract.sh`: two shards, one per task; read together they are one extract's cache."""
    table, _ = load_annotations(synth_data / "annotations", "val")
    first, second = sorted(table["clip_uid"].unique())[:2]
    data = subset_dataset(synth_data, tmp_path / "data", "val", {first: 3, second: 3})
    log = tmp_path / "extract-%a.out"
    args = ["--split", "val", "--data", str(data), "--features", str(tmp_path / "array"), "--encoders", "tiny"]
    args += ["--slowfast-weights", str(tiny_weights["slowfast"]), "--clip-weights", str(tiny_weights["clip"]), "-q"]
    flags = ["--parsable", "--array=0-1", "--cpus-per-task=1", f"--output={log}"]
    job = _run(["sbatch", *flags, str(REPO / "slurm" / "extract.sh"), *args]).strip().split(";")[0]
    cluster.append(job)
    _wait(_completed(job), job, "the extract array", tmp_path / "extract-1.out")
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("extract-*.out")))
    assert "extract shard 0/2" in logs and "extract shard 1/2" in logs

    tiny = ENCODER_PRESETS["tiny"]
    one = ExtractConfig(data, tmp_path / "one", "val", tiny, tiny_weights["slowfast"], tiny_weights["clip"])
    extract(ExtractConfig(**{**one.__dict__, "workers": 0, "progress": False}))
    array_dir = tmp_path / "array" / tiny.tag / "val"
    assert sorted(p.name for p in array_dir.glob("shard-*")) == ["shard-000-of-002", "shard-001-of-002"]
    got, want = FeatureCache.open(array_dir), FeatureCache.open(tmp_path / "one" / tiny.tag / "val")
    keys = sorted(zip(want.index["clip_uid"], want.index["action_idx"], strict=True))
    assert len(keys) == 6 and len(got) == len(want)
    assert sorted(zip(got.index["clip_uid"], got.index["action_idx"], strict=True)) == keys
    for name in ("slowfast", "clip"):
        a, b = got.gather(got.positions(keys), name), want.gather(want.positions(keys), name)
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3, err_msg=name)
    assert json.loads((array_dir / "manifest.json").read_text())["shards"] == 2
