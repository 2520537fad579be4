"""An execution role: the identity a Lambda function runs as, with nothing until a block grants it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi_aws import iam

from components.aws.context import AwsContext
from components.aws.iam import Statement, policy_document, service_trust
from components.base import Component


class ExecutionRole(Component):
    """``agentstage:aws:ExecutionRole``: an IAM role only ``service`` may assume, in this account only.

    It has no managed policies (``AWSLambdaBasicExecutionRole`` allows logs on every log group): every
    permission is an inline policy named after the grant (:meth:`allow`), written by the block granted on.
    ``trust_actions`` and ``trust_conditions`` are for services that need more than ``sts:AssumeRole`` or
    can be narrowed further (EKS Pod Identity: ``components.aws.eks.EksCluster.pod_role``).

    Outputs: ``arn``, ``name``.
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        *,
        service: str = "lambda.amazonaws.com",
        trust_actions: Sequence[str] = ("sts:AssumeRole",),
        trust_conditions: Mapping[str, Mapping[str, Any]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "ExecutionRole", name, opts)
        self._name = name
        self.service = service
        self.role = iam.Role(
            f"{name}-role",
            name=context.name(name),
            assume_role_policy=service_trust(
                service, context.account_id, actions=trust_actions, conditions=trust_conditions
            ),
            max_session_duration=3600,
            tags=context.tags,
            opts=self.child(),
        )
        self.arn: pulumi.Output[str] = self.role.arn
        self.name: pulumi.Output[str] = self.role.name
        self.grants: dict[str, tuple[Statement, ...]] = {}
        self.register_outputs({"arn": self.arn, "name": self.name})

    def allow(self, grant: str, *statements: Statement) -> iam.RolePolicy:
        """Attach ``statements`` as the inline policy ``grant`` (one per grant: readable, removable)."""
        if not re.fullmatch(r"[a-z0-9-]+", grant):
            raise ValueError(f"grant name '{grant}' must be lowercase letters, digits and dashes")
        if grant in self.grants:
            raise ValueError(f"{self._name} already has the grant '{grant}'")
        self.grants[grant] = statements
        return iam.RolePolicy(
            f"{self._name}-{grant}",
            role=self.role.id,
            name=grant,
            policy=policy_document(statements),
            opts=self.child(),
        )
