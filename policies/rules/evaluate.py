"""Run the rules over a graph and turn every verdict into a :class:`Finding`."""

from __future__ import annotations

from collections.abc import Iterable

from core.graph import Resource, ResourceGraph
from policies.findings import Finding, Outcome
from policies.rules.context import StackContext
from policies.rules.model import STACK_TYPE, Rule
from policies.rules.registry import all_rules

SOURCE = "agentstage"


def stack_resource(graph: ResourceGraph) -> Resource:
    """The stack itself, as the subject of stack-scoped rules (URN as the Pulumi engine forms it)."""
    urn = f"urn:pulumi:{graph.stack}::{graph.project}::{STACK_TYPE}::{graph.project}-{graph.stack}"
    return Resource(urn=urn, type=STACK_TYPE, name=graph.stack, custom=False)


def evaluate(
    graph: ResourceGraph, context: StackContext, rules: Iterable[Rule] | None = None
) -> list[Finding]:
    """One finding per (rule, resource it applies to), in graph order; waivers are applied separately.

    The rules read an indexed copy of the graph, and which rules apply to a type in this stage is worked out
    once per type, not once per (rule, resource) pair."""
    graph = graph.indexed()
    subjects = [stack_resource(graph), *graph.cloud_resources()]
    selected = tuple(all_rules() if rules is None else rules)
    by_type: dict[str, list[Rule]] = {}
    findings = []
    for resource in subjects:
        candidates = by_type.get(resource.type)
        if candidates is None:
            candidates = by_type[resource.type] = [
                rule for rule in selected if rule.covers(resource.type, context.stage)
            ]
        findings += [judge(rule, resource, graph, context) for rule in candidates if rule.selects(resource)]
    return findings


def judge(rule: Rule, resource: Resource, graph: ResourceGraph, context: StackContext) -> Finding:
    verdict = rule.check(resource, graph, context)
    return Finding(
        source=SOURCE,
        check_id=rule.id,
        title=rule.title,
        severity=rule.severity,
        mandatory=rule.mandatory,
        outcome=Outcome.PASSED if verdict.passed else Outcome.FAILED,
        resource_urn=resource.urn,
        resource_type=resource.type,
        resource_name=resource.name,
        message=verdict.message,
        remediation="" if verdict.passed else rule.remediation,
    )
