"""`--help`: every default shown, one example per command, one meaning for -q."""

from __future__ import annotations

import argparse

import pytest

from ego4d_lta.cli import COMMANDS, build_parser
from ego4d_lta.cli.common import HelpFormatter
from ego4d_lta.workflow.upload import DEFAULT_PHASE


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_shows_every_default_and_an_example(name: str) -> None:
    p = _subparsers()[name]
    formatter = HelpFormatter(f"ego4d-lta {name}")
    unshown = [
        a.option_strings[0]
        for a in p._actions
        if a.option_strings and a.default is not None and a.default is not False and a.default != argparse.SUPPRESS
        if "default" not in formatter._get_help_string(a)
    ]
    assert unshown == []
    text = p.format_help()
    assert "example" in text and f"ego4d-lta {name} " in text.split("example")[-1]


def test_help_of_the_issue_flags_names_their_default() -> None:
    """The flags the issue found silent: --seed, --size, --crf, --batch-size, --workers, --views, --nodes, ..."""
    helps = {name: " ".join(p.format_help().split()) for name, p in _subparsers().items()}  # unwrapped
    assert "(default: 0)" in helps["synth"] and "(default: tiny)" in helps["synth"]
    assert "(default: 23)" in helps["resize"]
    for flag in ("--batch-size", "--workers", "--views"):
        assert flag in helps["extract"]
    assert "(default: 8)" in helps["extract"] and "(default: 1)" in helps["train"]
    assert f"else {DEFAULT_PHASE}" in helps["upload"]  # --phase says its fallback


def test_quiet_means_one_thing() -> None:
    texts = {a.help for p in _subparsers().values() for a in p._actions if "-q" in a.option_strings}
    assert texts == {"no progress bar (results, warnings, errors still print)"}
