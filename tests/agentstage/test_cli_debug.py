"""``--debug`` is accepted before or after the verb; it alone shows an internal error's traceback."""

from __future__ import annotations

import argparse
import io

import pytest

from agentstage.cli import main
from agentstage.commands import stacks
from agentstage.console import Console
from core.errors import ExitStatus


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), console=Console(out, err))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def broken_verb(monkeypatch: pytest.MonkeyPatch) -> None:
    def run_(args: argparse.Namespace, console: Console) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(stacks, "run", run_)


@pytest.mark.parametrize(
    "argv",
    [("--debug", "stacks"), ("stacks", "--debug"), ("stacks", "--format", "json", "--debug")],
)
def test_debug_anywhere_shows_the_traceback(broken_verb: None, argv: tuple[str, ...]) -> None:
    status, out, err = run(*argv)
    assert (status, out) == (ExitStatus.INTERNAL, "")
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err
    assert err.rstrip().splitlines()[-1] == (
        "error: internal error: RuntimeError: boom (rerun with --debug and report it)"
    )


def test_without_debug_there_is_no_traceback(broken_verb: None) -> None:
    status, _, err = run("stacks")
    assert status == ExitStatus.INTERNAL
    assert "Traceback" not in err
    assert err.splitlines() == [
        "error: internal error: RuntimeError: boom (rerun with --debug and report it)"
    ]


def test_debug_after_the_verb_changes_nothing_else() -> None:
    assert run("stacks", "--debug") == run("stacks")
