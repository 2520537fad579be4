"""IAM policy documents as data: statements on known ARNs, rendered to JSON once every ARN is known.

Every grant in components/aws builds :class:`Statement` objects and attaches them to a role as one inline
policy per grant, so each role's exact permissions can be read (and tested) statement by statement.
No statement has a ``*`` action, and a ``*`` resource only where the service has no resource-level
permissions (X-Ray's trace upload) - :func:`policy_document` refuses anything else.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from core.aws_actions import KIT_UNSCOPED_ACTIONS

WILDCARD_RESOURCE_ALLOWED = KIT_UNSCOPED_ACTIONS
"""Actions AWS does not scope to resources: the only ones that may name ``*``."""


@dataclass(frozen=True)
class Statement:
    """One ``Allow`` statement: exact actions on exact resources, with optional conditions."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[pulumi.Input[str], ...]
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if any("*" in action for action in self.actions):
            raise ValueError(f"{self.sid}: an action with '*' ({self.actions}) grants more than it names")
        if "*" in self.resources and not set(self.actions) <= WILDCARD_RESOURCE_ALLOWED:
            raise ValueError(
                f"{self.sid}: '*' as a resource is only for actions without resource-level scope"
            )


def policy_document(statements: Sequence[Statement]) -> pulumi.Output[str]:
    """The JSON policy document of ``statements``, once their ARNs (in resources and conditions) are known.

    Only the values that are outputs are awaited, all at once: wrapping every ARN and condition of every
    statement in outputs of its own made the stage's 42 documents a tenth of its offline plan."""
    pending = [value for statement in statements for value in _leaves(statement) if _is_output(value)]
    return pulumi.Output.all(*pending).apply(
        lambda known: _render(statements, dict(zip(map(id, pending), known, strict=True)))
    )


def _leaves(statement: Statement) -> Iterator[Any]:
    """Every value a statement holds: its resources, and its condition values (one level of lists)."""
    yield from statement.resources
    for block in statement.conditions.values():
        for value in block.values():
            yield from value if isinstance(value, list | tuple) else (value,)


def _is_output(value: Any) -> bool:
    return isinstance(value, pulumi.Output) or inspect.isawaitable(value)


def _render(statements: Sequence[Statement], known: Mapping[int, Any]) -> str:
    def value_of(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [value_of(item) for item in value]
        return known[id(value)] if _is_output(value) else value

    rendered = []
    for statement in statements:
        arns = [value_of(resource) for resource in statement.resources]
        body: dict[str, Any] = {
            "Sid": statement.sid,
            "Effect": "Allow",
            "Action": sorted(statement.actions),
            "Resource": sorted(arns) if len(arns) > 1 else arns[0],
        }
        if statement.conditions:
            body["Condition"] = {
                operator: {key: value_of(value) for key, value in block.items()}
                for operator, block in statement.conditions.items()
            }
        rendered.append(body)
    return json.dumps({"Version": "2012-10-17", "Statement": rendered}, sort_keys=True)


def service_trust(
    service: str,
    account_id: pulumi.Input[str],
    *,
    actions: Sequence[str] = ("sts:AssumeRole",),
    conditions: Mapping[str, Mapping[str, Any]] | None = None,
) -> pulumi.Output[str]:
    """A trust policy letting ``service`` (``lambda.amazonaws.com``) assume the role for this account only.

    ``actions`` are what the service calls on STS (EKS Pod Identity also tags the session:
    ``sts:TagSession``); ``conditions`` narrow it further (a source ARN, session tags), beside the
    ``aws:SourceAccount`` condition every trust keeps. Their values may be outputs (an ARN not yet known).
    """
    if not actions or any("*" in action or not action.startswith("sts:") for action in actions):
        raise ValueError(f"actions: {list(actions)} must be STS actions such as sts:AssumeRole, without '*'")
    extra = {operator: dict(values) for operator, values in (conditions or {}).items()}
    return pulumi.Output.all(pulumi.Output.from_input(account_id), pulumi.Output.from_input(extra)).apply(
        lambda known: _trust(service, sorted(set(actions)), known[0], known[1])
    )


def _trust(service: str, actions: list[str], account: str, extra: dict[str, dict[str, Any]]) -> str:
    conditions: dict[str, dict[str, Any]] = {"StringEquals": {"aws:SourceAccount": account}}
    for operator, values in extra.items():
        conditions[operator] = {**conditions.get(operator, {}), **values}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": actions[0] if len(actions) == 1 else actions,
                    "Condition": conditions,
                }
            ],
        },
        sort_keys=True,
    )
