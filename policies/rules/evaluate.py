"""Run the rules over a graph and turn every verdict into a :class:`Finding`."""

from __future__ import annotations

from collections.abc import Iterable

from core.graph import Resource, ResourceGraph
from policies.findings import Finding, Outcome
from policies.rules.context import StackContext
from policies.rules.model import STACK_TYPE, Rule, Stage, is_pattern
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
    once per type (:class:`RulesByType`), not once per (rule, resource) pair."""
    graph = graph.indexed()
    subjects = [stack_resource(graph), *graph.cloud_resources()]
    rules_for = RulesByType(all_rules() if rules is None else rules, context.stage)
    findings = []
    for resource in subjects:
        findings += [
            judge(rule, resource, graph, context)
            for rule in rules_for(resource.type)
            if rule.selects(resource)
        ]
    return findings


class RulesByType:
    """The rules that judge resources of a type in a stack of ``stage``, in the rules' order.

    Almost every rule names its types as plain tokens, looked up here in one dictionary; only the few rules
    with patterns (``azure-native:*``) are matched against each type, once per type. Asking every rule
    about every type of an enterprise stack was a sixth of ``agentstage plan``'s policy verdict.
    """

    def __init__(self, rules: Iterable[Rule], stage: Stage):
        self._rules = [rule for rule in rules if stage >= rule.from_stage]
        self._by_token: dict[str, list[int]] = {}
        self._patterned: list[int] = []
        for position, rule in enumerate(self._rules):
            for token in rule.types:
                if is_pattern(token):
                    self._patterned.append(position)
                else:
                    self._by_token.setdefault(token, []).append(position)
        self._known: dict[str, list[Rule]] = {}

    def __call__(self, type_: str) -> list[Rule]:
        found = self._known.get(type_)
        if found is None:
            positions = {
                *self._by_token.get(type_, ()),
                *(p for p in self._patterned if self._rules[p].matches_type(type_)),
            }
            found = self._known[type_] = [self._rules[p] for p in sorted(positions)]
        return found


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
