"""Checkpoints and resume state are inputs: every field typed, the weights checked against the model the stored
config builds; anything else is one line naming the key (exit 2), never a traceback, and the file is left as it was."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ego4d_lta.cli import main
from ego4d_lta.stages.synth import SynthConfig, generate

TRAIN = ["--config", "labels", "--device", "cpu", "-q", "--set", "train.batch_size=32", "--set", "model.layers=1",
         "--set", "train.eval_batch_size=32"]  # fmt: skip


@pytest.fixture(scope="module")
def labels_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset, run): a one-epoch labels-only run on the tiny synthetic dataset (no features: seconds on a CPU)."""
    root = tmp_path_factory.mktemp("ckpt")
    generate(root / "data", SynthConfig(videos=False), workers=1)
    assert (
        main(["train", *TRAIN, "--data", str(root / "data"), "--run", str(root / "run"), "--set", "train.epochs=1"])
        == 0
    )
    return root / "data", root / "run"


def _first_matrix(d: dict) -> str:
    return next(k for k, v in d["model"].items() if v.ndim == 2)


def _set_layers(d: dict) -> None:
    d["config"]["model"]["layers"] = 2


WEIGHTS: dict[str, tuple[Callable[[dict], object], str]] = {
    "layers changed": (_set_layers, "['aggregator.encoder.layers.1.self_attn.in_proj_weight']: missing, the model"),
    "wrong shape": (lambda d: d["model"].__setitem__(_first_matrix(d), torch.zeros(3, 3)), ": shape [3, 3], the model"),
    "extra key": (lambda d: d["model"].__setitem__("bogus.weight", torch.zeros(2)), "['bogus.weight']: not a weight"),
    "missing key": (lambda d: d["model"].pop(_first_matrix(d)), "']: missing, the model its config builds"),
    "all NaN": (lambda d: d.__setitem__("model", {k: v.float() * float("nan") for k, v in d["model"].items()}),
                "holds NaN or inf"),
    "not a tensor": (lambda d: d["model"].__setitem__(_first_matrix(d), "x"), 'is "x" (string), expected a tensor'),
    "state not typed": (lambda d: d["state"].__setitem__("epoch", "abc"), 'state.epoch is "abc" (string)'),
}  # fmt: skip

RESUME: dict[str, tuple[Callable[[dict], object], str]] = {
    "epoch": (lambda d: d["state"].__setitem__("epoch", "abc"), 'state.epoch is "abc" (string), expected an integer'),
    "negative step": (lambda d: d["state"].__setitem__("step", -3), "state.step is -3 (integer), expected an integer"),
    "optimizer None": (lambda d: d.__setitem__("optimizer", None), "optimizer is null, expected the optimizer's"),
    "optimizer groups": (lambda d: d["optimizer"].__setitem__("param_groups", []), "optimizer state does not fit"),
    "optimizer shape": (lambda d: next(iter(d["optimizer"]["state"].values())).__setitem__("exp_avg", torch.zeros(7)),
                        "(exp_avg): shape (7,), the parameter's is"),
    "scheduler": (lambda d: d.__setitem__("scheduler", "x"), 'scheduler is "x" (string), expected the scheduler'),
    "scheduler field": (lambda d: d["scheduler"].__setitem__("last_epoch", "x"), "scheduler.last_epoch is"),
    "history": (lambda d: d["state"].__setitem__("history", {}), "state.history is an object, expected a list"),
    "best": (lambda d: d["state"].__setitem__("best", {"epoch": 1}), "state.best.verb is null, expected a"),
    "rng size": (lambda d: d.__setitem__("rng", [{"torch": torch.zeros(3, dtype=torch.uint8)}]),
                 "rng[0].torch is a torch.uint8 tensor of shape (3,), expected"),
    "rng type": (lambda d: d.__setitem__("rng", "abc"), 'rng is "abc" (string), expected one RNG state per process'),
    "wrong shape": WEIGHTS["wrong shape"],
    "missing key": WEIGHTS["missing key"],
}  # fmt: skip


def _hostile_copy(run: Path, dst: Path, name: str, change: Callable[[dict], object]) -> bytes:
    shutil.copytree(run, dst)
    doc = torch.load(run / name, weights_only=True)
    change(doc)
    torch.save(doc, dst / name)
    return (dst / name).read_bytes()


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ego4d-lta")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("case", WEIGHTS)
def test_predict_refuses_a_best_pt_that_does_not_fit_in_one_line(
    case: str, labels_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, run = labels_run
    change, expected = WEIGHTS[case]
    line = _predict_refused(run, change, tmp_path, capsys)
    assert f"{tmp_path / 'run' / 'best.pt'}: " in line and expected in line, line


def _predict_refused(run: Path, change, tmp_path: Path, capsys: pytest.CaptureFixture) -> str:
    """`predict` on a copy of `run` whose best.pt `change` altered: exit 2, no output, best.pt untouched; the line."""
    before = _hostile_copy(run, tmp_path / "run", "best.pt", change)
    out = tmp_path / "val.json"
    assert main(["predict", "--run", str(tmp_path / "run"), "--split", "val", "--out", str(out), "-q"]) == 2
    line = _one_line(capsys)
    assert not out.exists() and (tmp_path / "run" / "best.pt").read_bytes() == before
    return line


def test_an_untouched_best_pt_still_predicts(labels_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = labels_run
    assert main(["predict", "--run", str(run), "--split", "val", "--out", str(tmp_path / "val.json"), "-q"]) == 0


@pytest.mark.parametrize("case", RESUME)
def test_resume_refuses_a_last_pt_with_a_mistyped_field_in_one_line(
    case: str, labels_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data, run = labels_run
    change, expected = RESUME[case]
    before = _hostile_copy(run, tmp_path / "run", "last.pt", change)
    args = ["train", *TRAIN, "--data", str(data), "--run", str(tmp_path / "run"), "--set", "train.epochs=2"]
    assert main([*args, "--resume"]) == 2
    line = _one_line(capsys)
    assert f"{tmp_path / 'run' / 'last.pt'}: " in line and expected in line, line
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


@pytest.fixture(scope="module")
def e2e_run(labels_run: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An end-to-end run's best.pt (`tiny` with model.finetune_slowfast on the tiny encoders' weight files), saved
    as training saves it, from the real RunInputs, encoders and forecaster (no epoch trained: the weights' values
    do not matter here, their keys and shapes do)."""
    from ego4d_lta.config import load_config
    from ego4d_lta.models.factory import random_tiny_weights
    from ego4d_lta.models.forecaster import build_forecaster
    from ego4d_lta.runtime.checkpoint import RunCheckpoint, TrainState
    from ego4d_lta.runtime.encoder_config import ENCODER_PRESETS
    from ego4d_lta.runtime.inputs import RunInputs, feature_dims

    data, _ = labels_run
    root = tmp_path_factory.mktemp("e2e")
    sampling = ENCODER_PRESETS["tiny"].sampling
    slowfast, clip = random_tiny_weights(root / "weights", sampling.num_frames, sampling.crop_size)
    sets = ["model.finetune_slowfast=true", f"data.slowfast_weights={slowfast}", f"data.clip_weights={clip}"]
    cfg = load_config("tiny", sets)
    cfg.data.data_dir = str(data)
    inputs = RunInputs(cfg)
    assert inputs.encoders is not None
    nv, nn = (len(names) for names in _taxonomy_names(data))
    forecaster = build_forecaster(cfg.model, feature_dims(inputs.record), nv, nn, inputs.bank)
    bank = {g: torch.as_tensor(v) for g, v in inputs.bank.items()} if inputs.bank else None
    ckpt = RunCheckpoint(cfg.to_dict(), inputs.record, nv, nn, (0, 0), forecaster.state_dict(), TrainState(),
                         bank, inputs.encoders.trainable_state())  # fmt: skip
    (root / "run").mkdir()
    ckpt.save(root / "run" / "best.pt")
    return root / "run"


def _taxonomy_names(data: Path) -> tuple[list[str], list[str]]:
    from ego4d_lta.challenge.annotations import load_taxonomy, taxonomy_path

    taxonomy = load_taxonomy(taxonomy_path(data / "annotations"))
    return taxonomy.verbs, taxonomy.nouns


def _first_encoder_matrix(d: dict) -> str:
    return next(k for k, v in d["encoders"].items() if v.ndim >= 2)


ENCODER_WEIGHTS: dict[str, tuple[Callable[[dict], object], str]] = {
    "wrong shape": (lambda d: d["encoders"].__setitem__(_first_encoder_matrix(d), torch.zeros(3, 3)),
                    ": shape [3, 3], the SlowFast its config builds (data.encoders=tiny: tiny) has ["),
    "missing key": (lambda d: d["encoders"].pop(_first_encoder_matrix(d)), "']: missing, the SlowFast its config"),
    "extra key": (lambda d: d["encoders"].__setitem__("slowfast.bogus", torch.zeros(2)),
                  "encoders['slowfast.bogus']: not a weight of the SlowFast"),
    "not fine-tuned": (lambda d: d["config"]["model"].__setitem__("finetune_slowfast", False),
                       "']: not a weight of a run without model.finetune_slowfast"),
}  # fmt: skip


@pytest.mark.parametrize("case", ENCODER_WEIGHTS)
def test_predict_refuses_encoder_weights_that_do_not_fit_in_one_line(
    case: str, e2e_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 25: an end-to-end run's encoder weights were loaded with strict=False, so a wrong-shape tensor was a
    traceback and a missing or extra one was silently skipped (the untrained SlowFast weight used instead)."""
    change, expected = ENCODER_WEIGHTS[case]
    line = _predict_refused(e2e_run, change, tmp_path, capsys)
    assert f"{tmp_path / 'run' / 'best.pt'}: encoders['" in line and expected in line, line


def test_fitting_encoder_weights_are_loaded(e2e_run: Path, tmp_path: Path) -> None:
    """The check passes an untouched end-to-end checkpoint, and every encoder weight it holds is what the model's
    SlowFast holds after loading (values moved off the weight files' so that loading shows)."""
    from ego4d_lta.config import from_dict
    from ego4d_lta.runtime.checkpoint import RunCheckpoint
    from ego4d_lta.runtime.inputs import RunInputs
    from ego4d_lta.stages.predict import load_model

    _hostile_copy(e2e_run, tmp_path / "run", "best.pt", lambda d: d.__setitem__(
        "encoders", {k: v + 1 if v.is_floating_point() else v for k, v in d["encoders"].items()}))  # fmt: skip
    ckpt = RunCheckpoint.load(tmp_path / "run" / "best.pt")
    inputs = RunInputs(from_dict(ckpt.config), expected=ckpt.features)
    model = load_model(ckpt, from_dict(ckpt.config), inputs.encoders)
    loaded = model.encoders.trainable_state()
    assert loaded.keys() == ckpt.encoders.keys()
    assert all(torch.equal(loaded[k], v) for k, v in ckpt.encoders.items())
