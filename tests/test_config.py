"""Config presets and overrides; rank discovery from the environment; how global batches are dealt out."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ego4d_lta.base.errors import UserError
from ego4d_lta.config import Config, load_config, presets
from ego4d_lta.data.window_datasets import EpochBatches, eval_batches
from ego4d_lta.models.forecaster import VARIANTS
from ego4d_lta.runtime.distributed import first_host, job_hosts, world_info_from_env


def test_presets_cover_the_five_variants_and_tiny() -> None:
    assert set(presets()) == {*VARIANTS, "tiny"}
    for name in set(VARIANTS) - {"labels"}:
        cfg = load_config(name)
        assert cfg.name == name and cfg.model.variant == name
        assert (cfg.model.layers, cfg.optim.lr, cfg.train.batch_size, cfg.train.epochs) == (6, 1e-4, 64, 30)
    assert load_config("tiny").data.encoders == "tiny"
    assert load_config("labels").model.variant == "labels"


def test_overrides_are_typed(tmp_path: Path) -> None:
    cfg = load_config("tiny", ["train.epochs=3", "optim.lr=1e-3", "model.text_groups=['noun']", "optim.lr=5"])
    assert cfg.train.epochs == 3 and cfg.optim.lr == 5.0 and isinstance(cfg.optim.lr, float)
    assert cfg.model.text_groups == ["noun"]
    assert load_config("tiny", ["generate.strategy=iid"]).generate.strategy == "iid"  # bare words are strings
    toml = tmp_path / "mine.toml"
    toml.write_text('[model]\nvariant = "clip"\nlayers = 1\n')
    mine = load_config(str(toml))
    assert (mine.name, mine.model.variant, mine.model.layers) == ("mine", "clip", 1)
    assert mine.model.heads == Config().model.heads  # the rest keeps the defaults


def test_a_recipe_is_a_name_never_a_path(tmp_path: Path) -> None:
    (tmp_path / "scalar.toml").write_text("x = 1\n")
    escape = "../" * 12 + str(tmp_path / "scalar").lstrip("/")
    with pytest.raises(UserError, match="no such recipe; choose from report"):
        load_config("tiny", recipe=escape)
    (tmp_path / "mine.toml").write_text("x = 1\n")
    with pytest.raises(UserError, match="unknown config key 'x'; known: name, model, data"):
        load_config(str(tmp_path / "mine.toml"))


@pytest.mark.parametrize(
    ("name", "sets", "message"),
    [
        ("nope", [], "no such preset"),
        ("tiny", ["epochs=3"], "unknown config key 'epochs'"),
        ("tiny", ["train.epoch=3"], "unknown config key 'train.epoch'; known: train.epochs"),
        ("tiny", ["train.epochs=three"], "train.epochs must be int"),
        ("tiny", ["train.epochs"], "expected section.key=value"),
        ("tiny", ["model.positions=random"], "sinusoidal or learned"),
        ("tiny", ["generate.top_p=0"], "generate.top_p must be in (0, 1], got 0.0"),
        ("tiny", ["optim.base_batch=0"], "optim.base_batch must be in 1..1048576, got 0"),
        # every count and width bounded: forks until fork fails, a verb embedding of width 0
        ("tiny", ["data.workers=100000"], "data.workers must be in 0..256, got 100000"),
        ("tiny", ["model.label_dim=1"], "model.label_dim must be >= 2, got 1"),
        ("tiny", ["train.epochs=10000000"], "train.epochs must be in 1..100000"),
        # one setting per --set: TOML would read the second line and drop it
        ("tiny", ["train.epochs=3\ntrain.seed=7"], "--set train.epochs=3\\ntrain.seed=7: one setting per --set"),
        ("tiny", ["name=a\rb"], "one setting per --set, on one line"),
        ("tiny", ["generate.seed=-1"], "generate.seed must be >= 0"),
        ("tiny", ["model.dropout=1.5"], "model.dropout must be in [0, 1)"),
        ("tiny", ["model.text_groups=['colour']"], "noun, verb, scenario, place"),
        ("missing.toml", [], "file not found"),
        # hostile numbers: NaN passes `<= 0`, inf and 1e308 overflow the schedule, 2**64 overflows torch's seeds
        ("tiny", ["optim.lr=nan"], "optim.lr=nan must be a finite number"),
        ("tiny", ["optim.lr=inf"], "optim.lr=inf must be a finite number"),
        ("tiny", ["optim.lr=1e308"], "optim.lr must be in (0, 10], got 1e+308"),
        ("tiny", ["optim.weight_decay=inf"], "optim.weight_decay=inf must be a finite number"),
        ("tiny", ["optim.weight_decay=1e9"], "optim.weight_decay must be in [0, 10]"),
        ("tiny", ["optim.grad_clip=nan"], "optim.grad_clip=nan must be a finite number"),
        ("tiny", ["generate.temperature=nan"], "generate.temperature=nan must be a finite number"),
        ("tiny", ["generate.temperature=1e-300"], "generate.temperature must be in [0.01, 100]"),
        ("tiny", ["model.dropout=nan"], "model.dropout=nan must be a finite number"),
        ("tiny", ["generate.samples=-1"], "generate.samples must be in 0..1000"),
        ("tiny", ["generate.observed_bonus=1e308"], "generate.observed_bonus must be in [0, 100]"),
        ("tiny", ["generate.samples=100000"], "generate.samples must be in 0..1000"),
        ("tiny", ["generate.observed_weight=1"], "generate.observed_weight must be in [0, 1)"),
        ("tiny", ["generate.sample_temperature=0"], "generate.sample_temperature must be in [0.01, 100]"),
        ("tiny", ["optim.lr=" + "9" * 400], "optim.lr=inf must be a finite number"),
        ("tiny", ["train.seed=18446744073709551616"], "train.seed=18446744073709551616 is out of range"),
        ("tiny", ["train.epochs=18446744073709551616"], "train.epochs=18446744073709551616 is out of range"),
        ("tiny", ["optim.warmup_steps=18446744073709551616"], "optim.warmup_steps=18446744073709551616 is out"),
        ("tiny", ["name=../../x"], "name ../../x: must be a plain name"),
        ("tiny", ["name=/tmp/x"], "name /tmp/x: must be a plain name"),
        ("tiny", ["name=.."], "name ..: must be a plain name"),
        ("tiny", ['name="a\\u001b[2Jb"'], "name a\\x1b[2Jb: must be a plain name"),
    ],
)
def test_config_mistakes_are_named(name: str, sets: list[str], message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        load_config(name, sets)


def test_ranks_from_torchrun_slurm_or_nothing() -> None:
    torchrun = world_info_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "GROUP_RANK": "1"})
    assert (torchrun.rank, torchrun.local_rank, torchrun.world_size, torchrun.node) == (3, 1, 4, 1)
    slurm = world_info_from_env(
        {
            "SLURM_PROCID": "5",
            "SLURM_LOCALID": "1",  # the baseline used this as the global rank
            "SLURM_NTASKS": "8",
            "SLURM_STEP_NUM_TASKS": "8",
            "SLURM_NODEID": "2",
            "SLURM_JOB_NODELIST": "gpu[003-006]",
            "SLURM_JOB_ID": "1234",
        }
    )
    assert (slurm.rank, slurm.local_rank, slurm.world_size, slurm.node) == (5, 1, 8, 2)
    assert slurm.master_addr == "gpu003" and slurm.master_port == 21234 and slurm.launcher == "slurm"
    assert world_info_from_env({}).world_size == 1
    batch_script = {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "n[1-2]"}  # sbatch, no srun
    assert world_info_from_env(batch_script).world_size == 1


@pytest.mark.parametrize(
    ("nodelist", "host"),
    [
        ("node1", "node1"),
        ("gpu[003-005,9]", "gpu003"),
        ("a[7,2],b1", "a7"),
        ("cpu-[10-11]", "cpu-10"),
        ("r6i[3-4]n[0-8]", "r6i3n0"),  # two bracket groups: the hand-written parser said r6i3
        ("node-[01-02]-ib", "node-01-ib"),  # a suffix after the bracket: it said node-01
    ],
)
def test_first_host_of_a_slurm_node_list(nodelist: str, host: str) -> None:
    assert first_host(nodelist) == host


@pytest.mark.parametrize(
    ("nodelist", "hosts"),
    [
        ("gpu7", ["gpu7"]),
        ("gpu[08-11]", ["gpu08", "gpu09", "gpu10", "gpu11"]),
        ("a,b-2,c", ["a", "b-2", "c"]),
        ("gpu[003-004,9],cpu1", ["gpu003", "gpu004", "gpu9", "cpu1"]),
        ("r6i[3-4]n[0-1]", ["r6i3n0", "r6i3n1", "r6i4n0", "r6i4n1"]),
        ("n[1-2],m[08-09]-ib", ["n1", "n2", "m08-ib", "m09-ib"]),
    ],
)
def test_job_hosts_expand_like_scontrol(nodelist: str, hosts: list[str], tmp_path: Path) -> None:
    assert job_hosts(nodelist) == hosts
    if "-ib" not in nodelist and shutil.which("scontrol"):  # Slurm 22.05's scontrol refuses a suffix after a bracket
        # scontrol reads a config before it expands anything; the test clusters keep theirs private (SLURM_CONF)
        conf = tmp_path / "slurm.conf"
        conf.write_text("ClusterName=reference\nSlurmctldHost=localhost\n")
        env = {**os.environ, "SLURM_CONF": str(conf)}
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True, env=env
        )
        assert out.stdout.split() == hosts  # the reference


def test_expanding_a_node_list_leaves_the_environment_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit's parser reads SLURM_JOB_NODELIST: set for the call only, whether it was set before or not."""
    monkeypatch.delenv("SLURM_JOB_NODELIST", raising=False)
    assert job_hosts("n[1-2]") == ["n1", "n2"] and "SLURM_JOB_NODELIST" not in os.environ
    monkeypatch.setenv("SLURM_JOB_NODELIST", "mine[5-6]")
    assert job_hosts("n[1-2]") == ["n1", "n2"]
    with pytest.raises(UserError):
        job_hosts("n[1-")
    assert os.environ["SLURM_JOB_NODELIST"] == "mine[5-6]"


@pytest.mark.parametrize("nodelist", ["", "gpu[1-", "gpu[a-b]", ","])
def test_a_broken_node_list_is_a_user_error(nodelist: str) -> None:
    with pytest.raises(UserError, match="not a Slurm node list"):
        job_hosts(nodelist)


def test_processes_share_each_global_batch_and_resume_mid_epoch() -> None:
    indices = np.arange(100, 203)
    one = EpochBatches(indices, 12, seed=1)
    one.epoch = 2
    whole = list(one)
    assert len(whole) == len(one) == 103 // 12 and all(len(b) == 12 for b in whole)
    shares = []
    for rank in range(3):
        s = EpochBatches(indices, 12, rank, 3, seed=1)
        s.epoch = 2
        shares.append(list(s))
    assert [[i for r in range(3) for i in shares[r][b]] for b in range(len(whole))] == whole
    one.start = 5
    assert list(one) == whole[5:]
    one.epoch = 3
    assert list(one) != whole[5:]  # another epoch, another order
    with pytest.raises(ValueError, match="divisible"):
        EpochBatches(indices, 10, 0, 3)
    spread = [i for r in range(3) for b in eval_batches(10, 2, r, 3) for i in b]
    assert sorted(spread) == list(range(10))


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\xff\xfe", b"\xff" * 64, b"[model\n"])
def test_config_file_that_is_not_toml_text_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "weights.toml"
    path.write_bytes(content)
    with pytest.raises(UserError, match=r"weights\.toml: not (a TOML text file|valid TOML)"):
        load_config(str(path))


@pytest.mark.parametrize(
    ("sets", "refused"),
    [
        ([], False),
        (["model.variant=slowfast_clip", "model.layers=3"], False),
        (["model.layers=100000"], True),
        (["model.ffn_dim=2000000000"], True),
        (["model.slowfast_dim=2000000"], True),
    ],
)
def test_a_huge_model_is_refused_by_an_estimate_before_allocation(sets: list[str], refused: bool) -> None:
    from ego4d_lta.models.forecaster import MAX_PARAMETERS, FeatureDims, build_forecaster, check_size

    cfg = load_config("tiny", sets)
    dims = FeatureDims(2304, 512, 8)
    if refused:
        with pytest.raises(UserError, match=r"model: about [\d.]+ billion parameters .* the limit is 2 billion"):
            build_forecaster(cfg.model, dims, 115, 478)
    else:  # the estimate bounds the real count from above
        model = build_forecaster(cfg.model, dims, 115, 478, bank=None)
        real = sum(p.numel() for p in model.parameters())
        assert real <= check_size(cfg.model, dims, 115, 478) < MAX_PARAMETERS
