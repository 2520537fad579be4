"""A waiver must name a rule that exists: a mistyped agentstage rule id is a usage error, not a stale waiver."""

from __future__ import annotations

from policy_fixtures import compliant_graph

REASON = "Vault holds only rotated demo secrets in this sandbox"


def check(project, agentstage, waiver: dict[str, str]):  # the fixtures of this folder's conftest.py
    project.stack_file(waivers=[{"check": "AGS-AZ-021", "reason": REASON}, waiver])
    graph = project.graph_file(compliant_graph())
    return agentstage("check", "--graph", str(graph), "--no-checkov", "--project-dir", str(project.root))


def test_an_unknown_rule_id_exits_2_naming_the_waiver_and_the_closest_ids(project, agentstage) -> None:
    run = check(project, agentstage, {"check": "AGS-ZZ-999", "reason": REASON})
    assert run.status == 2, run.err
    [line] = run.err.strip().splitlines()
    assert line == (
        "error: stacks/Pulumi.test.yaml: agentstage:waivers[1] waives AGS-ZZ-999, which is no agentstage rule "
        "(closest: AGS-AZ-009, AGS-AZ-073, AGS-AZ-072); correct the id, or remove the waiver"
    )


def test_with_nothing_close_the_message_lists_the_rule_areas(project, agentstage) -> None:
    run = check(project, agentstage, {"check": "AGS-QQQQQQQQ-555", "reason": REASON})
    assert run.status == 2
    assert "the rules are AGS-AI-*, AGS-AWS-*, AGS-AZ-*, AGS-K8S-*); correct the id" in run.err


def test_a_checkov_id_is_left_to_the_stale_waiver_warning(project, agentstage) -> None:
    """Which checkov ids exist depends on the checkov release that runs: offline, none is refused."""
    project.stack_file(waivers=[{"check": "CKV_AZURE_99999", "reason": REASON}])
    graph = project.graph_file(compliant_graph())
    run = agentstage("check", "--graph", str(graph), "--project-dir", str(project.root), "--no-checkov")
    assert run.status == 0, run.err
    assert "error" not in run.err
