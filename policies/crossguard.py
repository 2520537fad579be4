"""The CrossGuard pack, built from the same rule objects ``agentstage check`` runs.

``pulumi preview --policy-pack policies/`` hands each resource to a ``ResourceValidationPolicy`` and
the whole stack to a ``StackValidationPolicy``. The adapters here turn what Pulumi passes (camelCase
props, as in our graph; unknown-value sentinels; floats for every number) into :class:`Resource` and
:class:`ResourceGraph` and call the rule's own check, so a rule behaves identically in both places.

Rules whose check reads other resources (``needs_graph``) become stack policies. References between
resources are real ARM ids (or unknown in a preview), not our plan's mock ids, so each resource is
given its URN as its id and a property whose value was computed from exactly one other resource is
rewritten to that resource's URN: the same "points at that resource" answer the plan graph gives.

Constructing ``PolicyPack`` starts a gRPC server, so it happens only in ``policies/__main__.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import (
    Severity as PolicySeverity,
)
from pulumi_policy.proxy import _DictProxy, _is_unknown, _ListProxy

from core.graph import UNKNOWN, Resource, ResourceGraph
from core.stacks import PROJECT_DIR
from policies.findings import Outcome
from policies.rules import Rule, StackContext, all_rules, load_context, stack_resource
from policies.rules.evaluate import judge
from policies.rules.model import STACK_TYPE
from policies.rules.waivers import matches

PACK_NAME = "agentstage"
ContextProvider = Callable[[], StackContext]


def plain(value: Any) -> Any:
    """Plain JSON-like data: proxies unwrapped, unknowns as ``UNKNOWN``, whole floats as ints.

    pulumi_policy's proxies raise on reading an unknown value; their ``"__target"`` item is the
    plain container underneath, which lets a rule see "unknown" and judge it instead of crashing.
    """
    if isinstance(value, Mapping):
        target = value["__target"] if isinstance(value, _DictProxy) else value
        return {k: plain(v) for k, v in target.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        target = value["__target"] if isinstance(value, _ListProxy) else value
        return [plain(v) for v in target]
    if _is_unknown(value):
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def resource_from_args(args: ResourceValidationArgs) -> Resource:
    """One resource as a resource policy sees it; its URN doubles as its id."""
    return Resource(
        urn=args.urn,
        type=args.resource_type,
        name=args.name,
        custom=True,
        inputs=plain(args.props),
        mock_id=args.urn,
    )


def graph_from_stack(resources: Sequence[PolicyResource], stack: str, project: str) -> ResourceGraph:
    """The stack as our graph, with references rewritten to the URNs they were computed from."""
    converted = []
    for r in resources:
        if r.resource_type == STACK_TYPE:
            continue
        props = plain(r.props)
        for key, dependencies in r.property_dependencies.items():
            if len(dependencies) == 1 and key in props:
                props[key] = _point_at(props[key], dependencies[0].urn)
        converted.append(
            Resource(
                urn=r.urn,
                type=r.resource_type,
                name=r.name,
                custom=not r.resource_type.startswith(("pulumi:", "agentstage:")),
                parent=r.parent.urn if r.parent else None,
                dependencies=tuple(d.urn for d in r.dependencies),
                inputs=props,
                mock_id=r.urn,
            )
        )
    return ResourceGraph(stack=stack, project=project, resources=converted)


def _point_at(value: Any, urn: str) -> Any:
    """Replace ids in ``value`` (unknown, or an ARM id) with ``urn``; other leaves stay as they are."""
    if isinstance(value, dict):
        return {k: _point_at(v, urn) for k, v in value.items()}
    if isinstance(value, list):
        return [_point_at(v, urn) for v in value]
    if value == UNKNOWN or (isinstance(value, str) and value.lower().startswith("/subscriptions/")):
        return urn
    return value


def pack_context(project_dir: Path = PROJECT_DIR) -> StackContext:
    """The running stack's context: the Pulumi CLI names the stack in ``PULUMI_STACK``."""
    stack = os.environ.get("PULUMI_STACK")
    if not stack:
        return StackContext.strictest("PULUMI_STACK is not set, so the stack file is unknown")
    return load_context(stack, project_dir)


def _report(
    rule: Rule, resource: Resource, graph: ResourceGraph, context: StackContext, report: ReportViolation
) -> None:
    if not rule.applies_to(resource, context.stage):
        return
    finding = judge(rule, resource, graph, context)
    if finding.outcome is Outcome.FAILED and not any(matches(w, finding) for w in context.waivers):
        urn = None if resource.type == STACK_TYPE else resource.urn
        report(f"{resource.name}: {finding.message}\nFix: {rule.remediation}", urn)


def resource_validator(
    rule: Rule, context: ContextProvider
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        resource = resource_from_args(args)
        graph = ResourceGraph(stack=_stack(), project=_project(), resources=[resource])
        _report(rule, resource, graph, context(), report)

    return validate


def stack_validator(
    rule: Rule, context: ContextProvider
) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        graph = graph_from_stack(args.resources, _stack(), _project())
        subjects = [stack_resource(graph)] if rule.stack_scoped else graph.cloud_resources()
        ctx = context()
        for resource in subjects:
            _report(rule, resource, graph, ctx, report)

    return validate


def _stack() -> str:
    return os.environ.get("PULUMI_STACK", "unknown")


def _project() -> str:
    return os.environ.get("PULUMI_PROJECT", "agentstage")


def policy(rule: Rule, context: ContextProvider) -> Policy:
    """The CrossGuard policy for ``rule``: a stack policy when the check reads other resources."""
    common: dict[str, Any] = {
        "name": rule.policy_name,
        "description": f"{rule.id}: {rule.title}. {rule.rationale}",
        "enforcement_level": EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY,
        "severity": PolicySeverity(rule.severity.value),
        "remediation_steps": rule.remediation,
        "url": rule.reference,
        "tags": [rule.id.split("-")[1].lower()],
    }
    if rule.needs_graph or rule.stack_scoped:
        return StackValidationPolicy(validate=stack_validator(rule, context), **common)
    return ResourceValidationPolicy(validate=resource_validator(rule, context), **common)


def policies(context: ContextProvider | None = None) -> list[Policy]:
    """One policy per rule. The context is read once, on first use (when the engine has named the stack)."""
    cached: list[StackContext] = []

    def provider() -> StackContext:
        if not cached:
            cached.append(pack_context())
        return cached[0]

    return [policy(rule, context or provider) for rule in all_rules()]
