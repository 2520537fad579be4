"""``--out FILE``: every verb writes what stdout would show, in the chosen ``--format``, and prints nothing.

A plan that ``plan --diff`` reads back is one saved with ``--format json``; anything else given to
``--diff`` is refused with the command that saves one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agentstage.cli import main
from agentstage.console import Console
from core.graph import ResourceGraph


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), console=Console(out, err))
    return status, out.getvalue(), err.getvalue()


def test_plan_out_json_is_the_saved_graph_and_stdout_stays_empty(
    tmp_path: Path, stack_graph: Callable[[str], ResourceGraph]
) -> None:
    target = tmp_path / "graph.json"
    status, out, err = run("plan", "--stack", "pilot-dev", "--format", "json", "--out", str(target))
    assert (status, out) == (0, "")
    assert target.read_text(encoding="utf-8") == stack_graph("pilot-dev").to_json() + "\n"
    assert f"graph written to {target}" in err.splitlines()
    assert "warning:" not in err


def test_plan_out_follows_the_default_tree_format(tmp_path: Path) -> None:
    target = tmp_path / "plan.txt"
    status, out, err = run("plan", "--stack", "pilot-dev", "--out", str(target))
    assert (status, out) == (0, "")
    text = target.read_text(encoding="utf-8")
    assert text.startswith("stack pilot-dev (") and "resources in" in text
    assert text.rstrip().splitlines()[-1].startswith("policy: PASS")
    assert f"plan written to {target}" in err.splitlines()


def test_a_tree_saved_as_json_is_warned_about_and_refused_by_diff(tmp_path: Path) -> None:
    saved = tmp_path / "base.json"
    status, _, err = run("plan", "--stack", "pilot-dev", "--out", str(saved))
    assert status == 0
    assert (
        f"warning: --out {saved}: writes the tree view, which `plan --diff` cannot read; "
        "add --format json to save the plan itself"
    ) in err
    status, out, err = run("plan", "--stack", "pilot-dev", "--diff", str(saved))
    assert (status, out) == (2, "")
    expected = (
        f"error: --diff {saved}: the file is the tree view (plan --format tree), not a saved plan; save the "
        f"base with `agentstage plan --stack pilot-dev --format json --out {saved}`, or give a git revision"
    )
    assert [line for line in err.splitlines() if line.startswith("error:")] == [expected]


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (
            "flowchart LR\n  a --> b\n",
            "the file is a Mermaid diagram (plan --format mermaid), not a saved plan",
        ),
        ("[tool.ruff]\n", "the file is not a saved plan (not JSON)"),
    ],
)
def test_other_files_are_refused_by_diff_too(tmp_path: Path, text: str, what: str) -> None:
    saved = tmp_path / "base.txt"
    saved.write_text(text, encoding="utf-8")
    status, _, err = run("plan", "--stack", "pilot-dev", "--diff", str(saved))
    assert status == 2 and f"error: --diff {saved}: {what}; save the base with `agentstage plan" in err


def test_a_plan_saved_with_format_json_is_a_base_for_diff_and_the_diff_goes_to_out(
    tmp_path: Path, stack_graph: Callable[[str], ResourceGraph]
) -> None:
    saved = tmp_path / "base.json"
    stack_graph("pilot-dev").write(saved)
    target = tmp_path / "diff.json"
    status, out, err = run(
        "plan", "--stack", "pilot-dev", "--diff", str(saved), "--format", "json", "--out", str(target)
    )
    assert (status, out) == (0, ""), err
    assert f"diff written to {target}" in err.splitlines()
    diff = json.loads(target.read_text(encoding="utf-8"))  # the diff, not the graph
    assert diff["stack"] == "pilot-dev" and diff["base"]["label"] == str(saved)
    assert diff["base"]["resources"] == diff["head"]["resources"]


@pytest.mark.parametrize("directory", [True, False])
def test_an_unwritable_out_is_one_line(tmp_path: Path, directory: bool) -> None:
    target = tmp_path if directory else tmp_path / "missing" / "plan.txt"
    status, out, err = run("plan", "--stack", "pilot-dev", "--out", str(target))
    assert (status, out) == (2, "")
    assert next(line for line in err.splitlines() if line.startswith("error:")).startswith(
        f"error: cannot write --out {target}: "
    )
