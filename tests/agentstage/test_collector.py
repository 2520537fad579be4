"""The cyclic collector is paused while a graph is recorded or a batch verb runs, and restored after."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from agentstage.cli import main
from core.collector import collector_paused
from core.engine import record


def test_pause_restores_the_collector_even_when_the_block_fails() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_nested_pause_leaves_the_outer_one_in_force() -> None:
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


class _Cycle:
    """An object in a reference cycle that says when it is finalized."""

    def __init__(self, finalized: list[str]) -> None:
        self.me = self
        self.finalized = finalized

    def __del__(self) -> None:
        self.finalized.append("finalized")


def test_the_cycles_a_pause_leaves_are_finalized_as_it_ends_not_later() -> None:
    """Left to the next automatic collection, their finalizers would run inside arbitrary code (see the
    module's docstring for the parser state that breaks)."""
    finalized: list[str] = []
    with collector_paused():
        _Cycle(finalized)
        assert finalized == []  # reference counting alone cannot free a cycle
    assert finalized == ["finalized"]


def test_a_nested_pause_collects_nothing() -> None:
    finalized: list[str] = []
    with collector_paused():
        with collector_paused():
            _Cycle(finalized)
        assert finalized == []
    assert finalized == ["finalized"]


def test_a_recording_runs_without_the_collector_and_gives_it_back() -> None:
    seen: list[bool] = []
    record(lambda: seen.append(gc.isenabled()))
    assert seen == [False]
    assert gc.isenabled()


@pytest.mark.parametrize(("verb", "paused"), [("stacks", True), ("plan", True), ("dev", False)])
def test_batch_verbs_run_without_the_collector(
    verb: str, paused: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[bool] = []

    def fake_run(verb: str | None, argv: list[str], console: object) -> int:
        seen.append(gc.isenabled())
        return 0

    monkeypatch.setattr("agentstage.cli._run", fake_run)
    assert main([verb]) == 0
    assert seen == [not paused]
    assert gc.isenabled()


def run_entry(*argv: str) -> subprocess.CompletedProcess[str]:
    """``agentstage <argv>`` through the console script's entry point, in a process of its own."""
    program = (
        f"import sys; sys.argv = ['agentstage', *{list(argv)!r}]; from agentstage.cli import entry; entry()"
    )
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)


def test_the_console_script_ends_a_batch_verb_with_its_output_and_status() -> None:
    """``entry`` skips the heap teardown of a batch verb: what it printed and its exit status survive."""
    done = run_entry("stacks")
    assert done.returncode == 0, done.stderr
    assert "pilot-dev" in done.stdout
    refused = run_entry("plan", "--stack", "nope")
    assert refused.returncode == 2
    assert "unknown stack 'nope'" in refused.stderr
