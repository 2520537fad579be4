"""Every shipped stack complies with our rules, in ``agentstage check``, ``agentstage plan``'s verdict and CrossGuard."""

from __future__ import annotations

import json

import pytest
from crossguard_harness import run_pack

from core.stacks import PROJECT_DIR, available_stacks
from core.workloads import LAMBDA_FUNCTION, WEB_APP
from policies import crossguard, verdict_line
from policies.checking import check_graph
from policies.findings import Outcome
from policies.rules import all_rules, load_context

K8S_DEPLOYMENT = "kubernetes:apps/v1:Deployment"

STACKS = available_stacks()


@pytest.mark.parametrize("stack", STACKS)
def test_stack_has_no_unwaived_mandatory_failure(stack, stack_graph):
    graph = stack_graph(stack)
    report = check_graph(graph, load_context(stack), checkov=False)
    assert report.blocking == [], "\n".join(
        f"{f.check_id} {f.resource_urn}: {f.message}" for f in report.blocking
    )
    assert report.unused_waivers == []
    # The rules must actually inspect the stack: every workload (Function App, Lambda function, Kubernetes
    # Deployment) has passed at least one of them.
    inspected = {finding.resource_urn for finding in report.passed}
    workloads = [r.urn for r in graph.resources if r.type in (WEB_APP, LAMBDA_FUNCTION, K8S_DEPLOYMENT)]
    assert workloads, f"{stack} runs no workload"
    assert [urn for urn in workloads if urn not in inspected] == []


@pytest.mark.parametrize("stack", STACKS)
def test_plan_verdict_line(stack, stack_graph):
    line = verdict_line(stack_graph(stack))
    assert line.startswith("policy: PASS - 0 blocking failures, 0 waived")
    assert f"agentstage check --stack {stack}" in line


@pytest.mark.parametrize("stack", STACKS)
def test_crossguard_pack_agrees_with_check_on_the_stack(stack, stack_graph, monkeypatch):
    """The pack, fed the stack as the engine would (floats, unknown ids, property dependencies)."""
    monkeypatch.setenv("PULUMI_STACK", stack)
    graph, context = stack_graph(stack), load_context(stack)
    violations = run_pack(crossguard.policies(lambda: context), graph)
    assert {name: found for name, found in violations.items() if found} == {}
    findings = check_graph(graph, context, checkov=False).findings
    checked = {f.check_id for f in findings if f.outcome is Outcome.PASSED}
    assert checked, "the rules must inspect the stack"
    ran = {rule.id for rule in all_rules() if rule.policy_name in violations}
    assert sorted(checked - ran) == [], "every rule that passed in check ran in the pack too"


def test_check_all_without_checkov_exits_0(agentstage):
    run = agentstage("check", "--all", "--no-checkov", "--format", "json", "--project-dir", str(PROJECT_DIR))
    payload = json.loads(run.out)
    assert run.status == 0, run.out
    assert [s["stack"] for s in payload["stacks"]] == STACKS
    assert all(s["verdict"] == "pass" for s in payload["stacks"])


def test_check_merges_checkov_findings_into_one_report(agentstage):
    run = agentstage("check", "--stack", STACKS[0], "--format", "json", "--project-dir", str(PROJECT_DIR))
    assert run.status in (0, 1), run.err
    stack = json.loads(run.out)["stacks"][0]
    assert {f["source"] for f in stack["findings"]} == {"agentstage", "checkov"}
    assert stack["checkov"]["scanned"] == stack["checkov"]["exported"] and stack["checkov"]["exported"]
    by_resource = {f["resource_urn"] for f in stack["findings"] if f["source"] == "checkov"}
    assert (
        by_resource
        <= {f["resource_urn"] for f in stack["findings"] if f["source"] == "agentstage"} | by_resource
    )
