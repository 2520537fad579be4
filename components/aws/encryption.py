"""The stack's customer-managed KMS key: what logs, tables, secrets and function environments are sealed with.

One key per stack, rotated yearly, 30 days before a scheduled deletion takes effect. Its policy lets the
account's IAM policies grant its use (the roles' grants below name it) and lets CloudWatch Logs use it
only for this stack's log groups; nothing else holds it.
"""

from __future__ import annotations

import json

import pulumi
from pulumi_aws import kms

from components.aws.context import PARTITION, AwsContext
from components.aws.iam import Statement
from components.aws.role import ExecutionRole
from components.base import Component


class Encryption(Component):
    """``agentstage:aws:Encryption``: the key and its alias ``alias/<prefix>-<env>``.

    Outputs: ``key_arn``, ``key_id``.
    """

    def __init__(self, name: str, context: AwsContext, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aws", "Encryption", name, opts)
        log_groups = f"arn:{PARTITION}:logs:{context.region}:{{account}}:log-group:/aws/*/{context.name('')}*"
        policy = pulumi.Output.from_input(context.account_id).apply(
            lambda account: _key_policy(account, context.region, log_groups.format(account=account))
        )
        self.key = kms.Key(
            f"{name}-key",
            description=f"agentstage {context.name_prefix}-{context.environment}: logs, tables, secrets, environment",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy,
            tags=context.tags,
            opts=self.child(),
        )
        kms.Alias(
            f"{name}-alias",
            name=f"alias/{context.name('agents')}",
            target_key_id=self.key.key_id,
            opts=self.child(),
        )
        self.key_arn: pulumi.Output[str] = self.key.arn
        self.key_id: pulumi.Output[str] = self.key.key_id
        self.register_outputs({"key_arn": self.key_arn, "key_id": self.key_id})

    def grant_use(self, role: ExecutionRole) -> None:
        """Decrypt and generate data keys: what reading and writing KMS-sealed tables, secrets and the
        function's environment needs (the services call KMS on the role's behalf)."""
        role.allow(
            "kms-use",
            Statement(
                "UseStackKey", ("kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"), (self.key_arn,)
            ),
        )


def _key_policy(account: str, region: str, log_groups: str) -> str:
    root = f"arn:{PARTITION}:iam::{account}:root"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    # Without it no IAM policy can grant the key, and the account could lose it.
                    "Sid": "AccountIamPolicies",
                    "Effect": "Allow",
                    "Principal": {"AWS": root},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "StackLogGroups",
                    "Effect": "Allow",
                    "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                    "Action": [
                        "kms:Decrypt",
                        "kms:Encrypt",
                        "kms:GenerateDataKey*",
                        "kms:ReEncrypt*",
                        "kms:DescribeKey",
                    ],
                    "Resource": "*",
                    "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
                },
            ],
        },
        sort_keys=True,
    )
