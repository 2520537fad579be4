"""``agentstage cost``: the command, its usage profiles and mistakes, and the budget rule (the README's tables:
tests/test_readme.py)."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agentstage.cli import main
from agentstage.console import Console
from core.graph import ResourceGraph
from core.stacks import PROJECT_DIR
from cost import load_usage
from cost.usage import UsageError
from policies.findings import Outcome
from policies.rules import all_rules, evaluate, load_context

Graphs = Callable[[str], ResourceGraph]
EXAMPLE = PROJECT_DIR / "cost" / "usage.example.yaml"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), console=Console(out, err))
    return status, out.getvalue(), err.getvalue()


def test_the_table_names_each_line_its_basis_and_what_is_free() -> None:
    status, out, err = run("cost", "--stack", "pilot-prod", "--usage", str(EXAMPLE))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("stack pilot-prod: ") and "USD/month fixed (idle) + " in lines[0]
    assert any(
        "agent-app" in line and "always ready 2 http (zone-redundant minimum 2 per group)" in line
        for line in lines
    )
    assert any(line.startswith("  5 authorization:RoleAssignment") for line in lines)
    assert f"usage ({EXAMPLE}):" in lines


def test_json_carries_each_lines_source_and_read_date() -> None:
    status, out, _ = run("cost", "--stack", "enterprise-prod", "--format", "json")
    assert status == 0
    payload = json.loads(out)
    assert payload["usageMonthly"] is None and payload["notPriced"] == []
    assert payload["fixedMonthly"] == pytest.approx(
        sum(line["monthly"] for line in payload["lines"]), abs=0.05
    )
    assert all(line["source"].startswith("https://") and line["read"] for line in payload["lines"])


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (
            "agents:\n  reserch:\n    requestsPerDay: 5\n",
            "agents.reserch: no such agent in the stack (agents: assistant;",
        ),
        (
            "agents:\n  '*':\n    requestPerDay: 5\n",
            "unknown key 'agents.*.requestPerDay'; allowed keys under agents",
        ),
        ("logs:\n  gbPerDay: -1\n", "logs.gbPerDay: Input should be greater than or equal to 0"),
        ("[1, 2]\n", "expected a mapping with agents, storage and logs"),
        ("agents: {\n", "not YAML"),
    ],
)
def test_a_wrong_usage_profile_names_the_file_and_key(tmp_path: Path, profile: str, message: str) -> None:
    path = tmp_path / "usage.yaml"
    path.write_text(profile, encoding="utf-8")
    status, out, err = run("cost", "--stack", "pilot-dev", "--usage", str(path))
    assert (status, out) == (2, "")
    assert str(path) in err and message in err, err


def test_usage_is_for_one_stack_and_a_missing_file_is_named(tmp_path: Path) -> None:
    status, _, err = run("cost", "--all", "--usage", str(EXAMPLE))
    assert status == 2 and "--usage names one stack's agents: use it with --stack, not --all" in err
    with pytest.raises(UsageError, match="cannot read it"):
        load_usage(tmp_path / "missing.yaml")


def test_the_budget_rule_fails_a_stack_made_too_expensive(stack_graph: Graphs) -> None:
    """enterprise-prod fits its 5,000 budget; four times the search replicas do not, and the rule says why."""
    rule = [r for r in all_rules() if r.id == "AGS-AZ-055"]
    graph = stack_graph("enterprise-prod")
    context = load_context("enterprise-prod")
    [fits] = evaluate(graph, context, rule)
    assert fits.outcome is Outcome.PASSED and "within the budget of 5,000" in fits.message
    expensive = ResourceGraph.from_json(graph.to_json())
    search = next(r for r in expensive.resources if r.name == "search-service")
    expensive.resources[expensive.resources.index(search)] = dataclasses.replace(
        search, inputs={**search.inputs, "replicaCount": 12}
    )
    [over] = evaluate(expensive, context, rule)
    assert over.outcome is Outcome.FAILED
    assert "exceeds the budget of 5,000 before any traffic; biggest: search-service 2,943.36" in over.message
