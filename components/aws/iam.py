"""IAM policy documents as data: statements on known ARNs, rendered to JSON once every ARN is known.

Every grant in components/aws builds :class:`Statement` objects and attaches them to a role as one inline
policy per grant, so each role's exact permissions can be read (and tested) statement by statement.
No statement has a ``*`` action, and a ``*`` resource only where the service has no resource-level
permissions (X-Ray's trace upload) - :func:`policy_document` refuses anything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

WILDCARD_RESOURCE_ALLOWED = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        # What Lambda does with the execution role to find a VPC function's interfaces and subnets
        # (AWSLambdaVPCAccessExecutionRole); EC2's Describe actions take no resource scope.
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
    }
)
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
    """The JSON policy document of ``statements``, once their ARNs (in resources and conditions) are known."""
    parts = [
        pulumi.Output.from_input(
            {
                "resources": list(statement.resources),
                "conditions": {k: dict(v) for k, v in statement.conditions.items()},
            }
        )
        for statement in statements
    ]
    return pulumi.Output.all(*parts).apply(lambda known: _render(statements, known))


def _render(statements: Sequence[Statement], known: Sequence[dict[str, Any]]) -> str:
    rendered = []
    for statement, values in zip(statements, known, strict=True):
        arns = values["resources"]
        body: dict[str, Any] = {
            "Sid": statement.sid,
            "Effect": "Allow",
            "Action": sorted(statement.actions),
            "Resource": sorted(arns) if len(arns) > 1 else arns[0],
        }
        if values["conditions"]:
            body["Condition"] = values["conditions"]
        rendered.append(body)
    return json.dumps({"Version": "2012-10-17", "Statement": rendered}, sort_keys=True)


def service_trust(service: str, account_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """A trust policy letting ``service`` (``lambda.amazonaws.com``) assume the role for this account only."""
    return pulumi.Output.from_input(account_id).apply(
        lambda account: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": service},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
                    }
                ],
            },
            sort_keys=True,
        )
    )
