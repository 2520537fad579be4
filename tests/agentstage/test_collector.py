"""The cyclic collector is paused while a graph is recorded or a batch verb runs, and restored after; a batch
verb run by the console script loads no third-party pydantic plugin."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

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


def run_entry(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``agentstage <argv>`` through the console script's entry point, in a process of its own."""
    program = (
        f"import sys; sys.argv = ['agentstage', *{list(argv)!r}]; from agentstage.cli import entry; entry()"
    )
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False, env=env
    )


def test_the_console_script_ends_a_batch_verb_with_its_output_and_status() -> None:
    """``entry`` skips the heap teardown of a batch verb: what it printed and its exit status survive."""
    done = run_entry("stacks")
    assert done.returncode == 0, done.stderr
    assert "pilot-dev" in done.stdout
    refused = run_entry("plan", "--stack", "nope")
    assert refused.returncode == 2
    assert "unknown stack 'nope'" in refused.stderr


PLUGIN = """
import os
from pathlib import Path


class Plugin:
    def new_schema_validator(self, *args, **kwargs):
        Path(os.environ["PLUGIN_MARK"]).write_text("loaded")
        return None, None, None


plugin = Plugin()
"""


@pytest.mark.parametrize(("setting", "loaded"), [(None, False), ("", True)])
def test_a_batch_verb_loads_no_pydantic_plugin_unless_the_environment_asks(
    setting: str | None, loaded: bool, tmp_path: Path
) -> None:
    """An installed plugin (an entry point in the ``pydantic`` group) stays out of an offline verb's stack
    models; a ``PYDANTIC_DISABLE_PLUGINS`` the user set (empty: load them all) is what counts."""
    (tmp_path / "spy_plugin.py").write_text(PLUGIN)
    metadata = tmp_path / "spy_plugin-1.0.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: spy-plugin\nVersion: 1.0\n")
    (metadata / "entry_points.txt").write_text("[pydantic]\nspy = spy_plugin:plugin\n")
    mark = tmp_path / "mark"
    env = {key: value for key, value in os.environ.items() if key != "PYDANTIC_DISABLE_PLUGINS"}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]), PLUGIN_MARK=str(mark))
    if setting is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = setting
    done = run_entry("stacks", env=env)
    assert done.returncode == 0, done.stderr
    assert "pilot-dev" in done.stdout
    assert mark.exists() is loaded
