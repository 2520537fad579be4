"""The table report: failures, waivers and a verdict per stack by default; ``--verbose`` adds the passes."""

from __future__ import annotations

from dataclasses import replace

from policy_fixtures import compliant_graph

from core.config import WaiverConfig
from policies.checking import check_graph
from policies.findings import Finding, Outcome, Severity
from policies.report.model import CheckReport, StackReport
from policies.report.table import render
from policies.rules import StackContext, Stage

REASON = "Sandbox vault, recreated nightly from the golden image"


def _stack(name: str = "test", *, purge_protection: bool = False, waivers=()) -> StackReport:
    context = StackContext(Stage.PILOT, 30, tuple(waivers), f"stacks/Pulumi.{name}.yaml")
    graph = compliant_graph(purge_protection=purge_protection)
    return replace(check_graph(graph, context, checkov=False), stack=name)


def _checkov(outcome: Outcome, resource: str, reason: str = "") -> Finding:
    return Finding(
        source="checkov",
        check_id="CKV_AZURE_17",
        title="Ensure the web app has 'Client Certificates (Incoming client certificates)' set",
        severity=Severity.MEDIUM,
        mandatory=True,
        outcome=outcome,
        resource_urn=f"urn:pulumi:test::agentstage::azure-native:web:WebApp::{resource}",
        resource_type="azure-native:web:WebApp",
        resource_name=resource,
        message=f"checkov {outcome.value}",
        waiver_reason=reason,
    )


def test_by_default_failures_are_shown_with_their_fix_and_passes_only_counted(project, agentstage):
    project.stack_file()
    run = agentstage(
        "check",
        "--graph",
        str(project.graph_file(compliant_graph(purge_protection=False))),
        "--no-checkov",
        "--project-dir",
        str(project.root),
    )
    assert run.status == 1
    lines = run.out.splitlines()
    stack = _stack()
    assert lines[:6] == [
        "stack test: stage pilot, agentstage rules (checkov skipped)",
        "  configuration: stacks/Pulumi.test.yaml",
        "vault  keyvault:Vault",
        "  urn: urn:pulumi:test::agentstage::azure-native:keyvault:Vault::vault",
        "  FAIL   AGS-AZ-021 [high] Key Vault has soft delete and purge protection",
        f"         {stack.blocking[0].message}",
    ]
    resources = len({f.resource_urn for f in stack.passed})
    assert f"passed: {len(stack.passed)} checks on {resources} resources (--verbose lists them)" in lines
    assert not [line for line in lines if line.lstrip().startswith("PASS")]
    assert "logs  operationalinsights:Workspace" not in run.out  # nothing failed there


def test_verbose_lists_every_resource_and_every_passed_check(project, agentstage):
    project.stack_file()
    graph = str(project.graph_file(compliant_graph(purge_protection=False)))
    run = agentstage(
        "check", "--graph", graph, "--no-checkov", "--verbose", "--project-dir", str(project.root)
    )
    assert run.status == 1
    passes = [line for line in run.out.splitlines() if line.startswith("  PASS   ")]
    assert len(passes) == len(_stack().passed)
    assert (
        "  PASS   AGS-AZ-007 [high] Log Analytics accepts Entra ID only (local/key auth disabled)" in passes
    )
    assert any(line.startswith("logs  operationalinsights:Workspace  (") for line in run.out.splitlines())
    assert "FAIL   AGS-AZ-021" in run.out and "passed:" not in run.out


def test_verbose_is_for_the_table_only(project, agentstage):
    project.stack_file()
    graph = str(project.graph_file(compliant_graph()))
    run = agentstage(
        "check",
        "--graph",
        graph,
        "--no-checkov",
        "--verbose",
        "--format",
        "json",
        "--project-dir",
        str(project.root),
    )
    assert run.status == 0
    assert "warning: --verbose changes the table; --format json always has every finding" in run.err


def test_waivers_are_grouped_by_check_and_reason():
    stack = _stack(purge_protection=True)
    stack.findings.extend(
        [
            _checkov(Outcome.WAIVED, "agent-app", REASON),
            _checkov(Outcome.WAIVED, "research-app", REASON),
            _checkov(Outcome.WAIVED, "public-app", "The public front door takes no client certificates"),
        ]
    )
    lines = render(CheckReport([stack])).splitlines()
    start = lines.index("waived (3):")
    title = "[medium] Ensure the web app has 'Client Certificates (Incoming client certificates)' set"
    assert lines[start + 1 : start + 5] == [
        f"  WAIVED CKV_AZURE_17 on agent-app, research-app {title}",
        f"         waived: {REASON}",
        f"  WAIVED CKV_AZURE_17 on public-app {title}",
        "         waived: The public front door takes no client certificates",
    ]


def test_several_stacks_end_with_a_summary_table():
    waiver = WaiverConfig(check="AGS-AZ-021", resource="vault", reason=REASON)
    report = CheckReport([_stack("pilot-dev", waivers=[waiver]), _stack("pilot-prod")])
    lines = render(report).splitlines()
    passed = len(report.stacks[0].passed)
    assert lines[-5:-1] == [
        "summary:",
        "  stack       verdict  blocking  waived  advisory  passed",
        f"  pilot-dev   PASS            0       1         0  {passed:>6}",
        f"  pilot-prod  FAIL            1       0         0  {passed:>6}",
    ]
    assert lines[-1] == "overall: FAIL - 2 stacks checked, failing: pilot-prod"
    assert "verdict pilot-dev: PASS - 0 blocking failures, 1 waived" in "\n".join(lines)
