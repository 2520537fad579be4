"""Progress on a terminal: one status line on stderr, rewritten in place; nothing when stderr is piped.

The plan engine reports each registered resource through an optional callback; the status line counts
them, names the stack (``stack n of m`` for several) and the seconds elapsed.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from pathlib import Path

from agentstage.cli import main
from agentstage.console import Console, Progress
from core.engine import build_graph
from core.graph import Resource, ResourceGraph

CLEAR = "\r\033[K"


class Terminal(io.StringIO):
    """stderr as a terminal would be: ``isatty()`` is true."""

    def isatty(self) -> bool:
        return True


def run(*argv: str, terminal: bool = True) -> tuple[int, str, str]:
    out, err = io.StringIO(), Terminal() if terminal else io.StringIO()
    status = main(list(argv), console=Console(out, err))
    return status, out.getvalue(), err.getvalue()


def status_lines(err: str) -> list[str]:
    """Each version of the status line drawn: what follows a line clear up to the next (diagnostics written
    over the status line end with a newline; the status line never does)."""
    return [part for part in err.split(CLEAR)[1:] if part and "\n" not in part]


def test_the_engine_reports_every_resource_it_records(stack_graph: Callable[[str], ResourceGraph]) -> None:
    seen: list[Resource] = []
    graph = build_graph("pilot-dev", on_resource=seen.append)
    assert sorted(r.urn for r in seen) == sorted(r.urn for r in graph.resources)
    assert graph == stack_graph("pilot-dev")  # the callback changes nothing in the graph


def test_a_plan_on_a_terminal_shows_the_resources_registered_and_clears_the_line() -> None:
    status, out, err = run("plan", "--stack", "pilot-dev", "--format", "json")
    assert status == 0 and out.startswith("{")
    drawn = status_lines(err)
    assert drawn[0] == "pilot-dev: planning, 0 resources registered, 0 s"
    count = len(ResourceGraph.from_json(out).resources)
    assert f"pilot-dev: checking our rules, {count} resources registered, " in "\n".join(drawn)
    assert all(re.fullmatch(r"pilot-dev: [a-z ]+, \d+ resources? registered, \d+ s", line) for line in drawn)
    assert err.count(CLEAR) > len(drawn)  # the last one clears the line
    assert "planning stack pilot-dev offline" in err  # the diagnostics stay, above the status line
    assert "\r" not in out


def test_nothing_of_it_when_stderr_is_not_a_terminal() -> None:
    status, _, err = run("plan", "--stack", "pilot-dev", "--format", "json", terminal=False)
    assert status == 0
    assert "\r" not in err and "\033" not in err and "registered" not in err


def test_several_stacks_are_counted_n_of_m(tmp_path: Path, project: Path) -> None:
    for path in (project / "stacks").glob("Pulumi.*.yaml"):
        if path.name not in ("Pulumi.pilot-dev.yaml", "Pulumi.pilot-prod.yaml"):
            path.unlink()
    status, _, err = run("check", "--all", "--no-checkov", "--project-dir", str(project))
    assert status == 0, err
    drawn = "\n".join(status_lines(err))
    assert "stack 1 of 2: pilot-dev: planning, 0 resources registered, " in drawn
    assert "stack 2 of 2: pilot-prod: planning, 0 resources registered, " in drawn
    assert re.search(r"stack 2 of 2: pilot-prod: running our rules, [1-9]\d* resources registered", drawn)


def test_the_status_line_is_redrawn_while_nothing_else_happens() -> None:
    err = Terminal()
    console = Console(io.StringIO(), err)
    with console.progress(3) as progress:
        progress.stack("pilot-dev")
        progress.resource()
        progress.resource()
        deadline = time.monotonic() + 5
        while "2 resources registered" not in err.getvalue() and time.monotonic() < deadline:
            time.sleep(Progress.INTERVAL / 5)  # the background thread redraws
        console.info("a diagnostic line")
    drawn = status_lines(err.getvalue())
    assert drawn[0] == "stack 1 of 3: pilot-dev: planning, 0 resources registered, 0 s"
    assert "stack 1 of 3: pilot-dev: planning, 2 resources registered, 0 s" in drawn
    assert CLEAR + "a diagnostic line\n" in err.getvalue()  # written over the status line, not after it
    assert err.getvalue().endswith(CLEAR)  # and the status line is gone at the end


def test_a_plain_console_never_starts_the_thread() -> None:
    console = Console(io.StringIO(), io.StringIO())
    with console.progress() as progress:
        progress.stack("pilot-dev")
        progress.resource()
    assert not progress.live and console.err.getvalue() == ""
