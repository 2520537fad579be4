"""Stand-in for the Pulumi engine's side of CrossGuard: our graph as the analyzer would receive it.

The engine sends numbers as floats, unknown values as sentinel strings, wraps props in
unknown-checking proxies, and knows which resources each property was computed from - but never our
plan's mock ids. This module converts a recorded graph into exactly that, so the pack's validators can
be called the way ``pulumi preview --policy-pack`` calls them.
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from core.graph import UNKNOWN, Resource, ResourceGraph
from policies.rules.predicates import refers_to

Violation = tuple[str, str | None]


def _options(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("/agentstage-plan/")


def engine_value(value: Any) -> Any:
    """As the engine serializes it: floats, unknown sentinels, ids of new resources unknown in a preview."""
    if isinstance(value, dict):
        return {k: engine_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [engine_value(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if value == UNKNOWN or _is_id(value):
        return UNKNOWN_STRING_VALUE
    return value


def _references(value: Any, graph: ResourceGraph) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_references(v, graph) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_references(v, graph) for v in value)) if value else set()
    return {r.urn for r in graph if refers_to(value, r)} if _is_id(value) else set()


def resource_args(resource: Resource) -> ResourceValidationArgs:
    props = unknown_checking_proxy(engine_value(resource.inputs))
    return ResourceValidationArgs(
        resource.type, props, resource.urn, resource.name, _options(resource.parent), None
    )


def policy_resources(graph: ResourceGraph) -> list[PolicyResource]:
    """Every resource as ``StackValidationArgs.resources`` holds it, with parents and property dependencies."""
    converted = {
        r.urn: PolicyResource(
            r.type,
            unknown_checking_proxy(engine_value(r.inputs)),
            r.urn,
            r.name,
            _options(r.parent),
            None,
            None,
            [],
            {},
        )
        for r in graph
    }
    for r in graph:
        target = converted[r.urn]
        target.parent = converted.get(r.parent) if r.parent else None
        target.dependencies = [converted[d] for d in r.dependencies if d in converted]
        for key, value in r.inputs.items():
            urns = sorted(_references(value, graph) - {r.urn})
            if urns:
                target.property_dependencies[key] = [converted[u] for u in urns]
                target.dependencies.extend(
                    converted[u] for u in urns if converted[u] not in target.dependencies
                )
    return list(converted.values())


def run_pack(policies: list, graph: ResourceGraph) -> dict[str, list[Violation]]:
    """Every policy's violations over ``graph``: resource policies per resource, stack policies once."""
    from pulumi_policy import StackValidationArgs, StackValidationPolicy

    violations: dict[str, list[Violation]] = {}
    stack_args = StackValidationArgs(policy_resources(graph))
    resource_args_list = [resource_args(r) for r in graph]
    for policy in policies:
        found: list[Violation] = []
        report = lambda message, urn=None, found=found: found.append((message, urn))
        if isinstance(policy, StackValidationPolicy):
            policy.validate(stack_args, report)
        else:
            for args in resource_args_list:
                policy.validate(args, report)
        violations[policy.name] = found
    return violations
