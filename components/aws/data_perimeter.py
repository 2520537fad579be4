"""The data perimeter: resource-policy statements that refuse data-plane requests from outside the VPC.

IAM decides *who* may read a queue, a secret, a table or a bucket; a perimeter statement adds *from where*:
a request for one of the named actions is denied unless it arrives through one of the stack's VPC endpoints
(``aws:SourceVpce``). Stolen credentials of an agent's role are then useless outside the VPC.

A perimeter may only name actions whose every legitimate caller is inside the VPC, so each data component
decides which of its actions to fence (its docstring says who calls what, from where). Three kinds of
callers are never fenced, as in AWS's data perimeter examples (github.com/aws-samples/data-perimeter-
policy-examples, resource_based_policies):

- AWS services acting as their service principal (``aws:PrincipalIsAWSService``): S3 announcing a
  document on the ingest queue;
- AWS services acting with the caller's credentials (``aws:ViaAWSService``, forward access sessions):
  Athena reading objects for the principal that ran the query, S3 calling KMS for an upload's caller;
- service-linked roles (``role/aws-service-role/*``), which only AWS services can assume: Macie scanning
  the documents, DynamoDB replicating a global table.

Each still needs its own permission: the perimeter only denies, it never grants.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.aws.context import PARTITION

PERIMETER_SID = "OnlyThroughVpcEndpoints"


@dataclass(frozen=True)
class VpcPerimeter:
    """The VPC endpoints of ``service`` that data-plane requests must come through (``Network.perimeter``).

    ``endpoint_ids``: the ``vpce-`` ids of the endpoints (usually one; a hub VPC's endpoint may be added).
    """

    service: str
    endpoint_ids: tuple[pulumi.Input[str], ...]

    def __post_init__(self) -> None:
        if isinstance(self.endpoint_ids, str) or not self.endpoint_ids:
            raise ValueError(
                f"endpoint_ids: the {self.service} perimeter needs a tuple of VPC endpoint ids, "
                f"got {self.endpoint_ids!r}"
            )

    def statement(
        self, actions: Sequence[str], resources: Sequence[pulumi.Input[str]], account_id: pulumi.Input[str]
    ) -> pulumi.Output[dict[str, Any]]:
        """A statement denying ``actions`` on ``resources`` to requests that do not come through the
        endpoints (once every ARN and id is known)."""
        prefix = f"{self.service.split('.')[0]}:"
        foreign = [action for action in actions if not action.startswith(prefix)]
        if not actions or foreign:
            raise ValueError(
                f"actions: a {self.service} perimeter fences {self.service} actions only, got {list(actions)}"
            )
        if isinstance(resources, str) or not resources:
            raise ValueError(f"resources: the ARNs the {self.service} perimeter fences, not {resources!r}")
        return pulumi.Output.all(
            pulumi.Output.all(*resources), pulumi.Output.all(*self.endpoint_ids), account_id
        ).apply(lambda known: perimeter_statement(actions, known[0], known[1], known[2]))


def perimeter_statement(
    actions: Sequence[str], resources: Sequence[str], endpoint_ids: Sequence[str], account_id: str
) -> dict[str, Any]:
    """Deny ``actions`` on ``resources`` unless the request comes through one of ``endpoint_ids``.

    ``StringNotEquals`` is true when the request has no ``aws:SourceVpce`` at all (the internet, another
    network), so those are denied too; the exemptions are explained in the module docstring.
    """
    return {
        "Sid": PERIMETER_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": sorted(actions),
        "Resource": resources[0] if len(resources) == 1 else sorted(resources),
        "Condition": {
            "StringNotEquals": {"aws:SourceVpce": sorted(endpoint_ids)},
            "BoolIfExists": {"aws:PrincipalIsAWSService": "false", "aws:ViaAWSService": "false"},
            "ArnNotLikeIfExists": {
                "aws:PrincipalArn": f"arn:{PARTITION}:iam::{account_id}:role/aws-service-role/*"
            },
        },
    }


def policy_document(statements: Sequence[pulumi.Input[dict[str, Any]]]) -> pulumi.Output[str]:
    """A resource policy of ``statements`` as JSON (keys sorted, so a plan is stable)."""
    return pulumi.Output.all(*statements).apply(
        lambda known: json.dumps({"Version": "2012-10-17", "Statement": list(known)}, sort_keys=True)
    )
