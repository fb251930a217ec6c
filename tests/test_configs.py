"""`ego4d-lta configs`: presets with their purpose; a resolved config as TOML that reads back, every field explained."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from ego4d_lta.cli import main
from ego4d_lta.cli.configs import field_docs, render_toml
from ego4d_lta.config import Config, load_config, presets


def test_configs_lists_every_preset_with_its_purpose(capsys: pytest.CaptureFixture) -> None:
    assert main(["configs"]) == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines()[: len(presets())])
    assert sorted(rows) == presets()
    assert all(len(purpose) > 20 and "design §" not in purpose for purpose in rows.values()), rows


def test_every_config_field_says_what_it_is() -> None:
    """A new field without a docstring under it would print bare in `configs NAME`."""
    cfg = Config()
    fields = [
        f"{s.name}.{f.name}"
        for s in dataclasses.fields(cfg)
        if dataclasses.is_dataclass(getattr(cfg, s.name))
        for f in dataclasses.fields(getattr(cfg, s.name))
    ]
    assert [f for f in fields if f not in field_docs()] == []


def test_a_resolved_config_reads_back_and_explains_each_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["configs", "tiny", "--set", "train.epochs=5", "--set", 'model.text_groups=["noun"]']) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    i = lines.index("epochs = 5")
    assert lines[i - 1].startswith("# Passes over the training windows")
    assert lines[lines.index("[model]") + 1].startswith("# One of `models.forecaster.VARIANTS`")
    (tmp_path / "tiny.toml").write_text(text)
    again = load_config(str(tmp_path / "tiny.toml"))
    assert again == load_config("tiny", ["train.epochs=5", 'model.text_groups=["noun"]'])
    for name in presets():  # every preset round-trips, defaults included
        assert tomllib.loads(render_toml(load_config(name)))["name"] == name


def test_configs_of_an_unknown_preset_is_one_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["configs", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no such preset" in err and len(err.strip().splitlines()) == 1
