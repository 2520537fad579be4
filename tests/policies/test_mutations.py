"""Mutation test: weaken any secure setting of any shipped stack and ``agentstage check`` fails, naming
the rule and the resource. Each entry must apply to at least one shipped stack (else it proves nothing).
"""

from __future__ import annotations

import pytest
from policy_mutations import MUTATIONS, Mutation, with_input
from pulumi_azure_native import resources

from components.azure.context import AzureContext
from components.azure.models import Models, ModelsArgs
from components.azure.naming import Naming
from components.azure.search import VectorSearch, VectorSearchArgs
from components.azure.secrets import Secrets, SecretsArgs
from core.engine import record
from core.graph import ResourceGraph
from core.stacks import PROJECT_DIR, available_stacks
from policies.checking import check_graph
from policies.findings import Outcome
from policies.rules import StackContext, Stage, evaluate, load_context, rule_by_id
from policies.rules.network import PUBLIC_NETWORK_ACCESS

STACKS = available_stacks()
WORKSPACE_ID = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/logs"


def _isolated_program() -> None:
    """The data-service components as an isolated (enterprise) blueprint builds them."""
    group = resources.ResourceGroup("rg", resource_group_name="rg-agentstage-test", location="swedencentral")
    context = AzureContext(
        resource_group_name=group.name,
        location="swedencentral",
        naming=Naming(prefix="agst", environment="test", suffix="abcde"),
        subscription_id="0",
        tenant_id="0",
        workspace_id=WORKSPACE_ID,
        isolated=True,
    )
    Secrets("secrets", context, SecretsArgs())
    Models("models", context, ModelsArgs())
    VectorSearch("search", context, VectorSearchArgs())


@pytest.fixture(scope="module")
def shipped(stack_graph) -> dict[str, tuple[ResourceGraph, StackContext]]:
    return {s: (stack_graph(s), load_context(s)) for s in STACKS}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_mutation_is_caught_by_its_rule(mutation: Mutation, shipped, agentstage, tmp_path):
    applied = 0
    for stack, (graph, context) in shipped.items():
        assert check_graph(graph, context, checkov=False).ok, f"{stack} must pass before it is mutated"
        for index, (mutated, target) in enumerate(mutation.apply(graph)):
            applied += 1
            report = check_graph(mutated, context, checkov=False)
            caught = [f for f in report.blocking if f.check_id == mutation.rule and f.resource_name == target]
            assert caught, (
                f"{stack}: '{mutation.name}' on {target} not caught by {mutation.rule}: {report.blocking}"
            )
            if index == 0:  # the command line says the same, with exit 1
                path = tmp_path / f"{stack}.json"
                mutated.write(path)
                run = agentstage(
                    "check", "--graph", str(path), "--no-checkov", "--project-dir", str(PROJECT_DIR)
                )
                assert run.status == 1, run.out
                assert f"blocking: {mutation.rule} on {target} " in run.out
    assert applied, f"'{mutation.name}' matches no resource of any shipped stack ({', '.join(STACKS)})"


def test_public_network_access_in_an_isolated_stage_is_caught():
    """No isolated (enterprise) stack ships yet: the components' own isolated output is mutated instead."""
    graph = record(_isolated_program)
    context = StackContext(Stage.ENTERPRISE, 30, (), "isolated components")
    rule = rule_by_id("AGS-AZ-030")
    baseline = evaluate(graph, context, [rule])
    assert len(baseline) == 3 and all(f.outcome is Outcome.PASSED for f in baseline), baseline
    for finding in baseline:
        resource = next(r for r in graph if r.urn == finding.resource_urn)
        path = PUBLIC_NETWORK_ACCESS[resource.type]
        mutated = ResourceGraph(
            graph.stack,
            graph.project,
            [with_input(r, path, "Enabled") if r.urn == resource.urn else r for r in graph],
        )
        verdict = [f for f in evaluate(mutated, context, [rule]) if f.resource_urn == resource.urn]
        assert verdict[0].outcome is Outcome.FAILED and verdict[0].blocks, verdict
