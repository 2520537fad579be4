"""The stack's customer-managed KMS key: what logs, tables, secrets and function environments are sealed with.

One key per stack, rotated yearly, 30 days before a scheduled deletion takes effect. Its policy lets the
account's IAM policies grant its use (the roles' grants below name it), lets CloudWatch Logs use it only
for this stack's log groups, and lets the services that write to the stack's sealed topics and queues
seal their messages: CloudWatch alarms (this account's) publishing to the alarm topic - without it an
alarm to a KMS-encrypted topic deploys cleanly and delivers nothing - and, where asked, S3 announcing
objects on an encrypted queue. Nothing else holds it.
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

    def __init__(
        self,
        name: str,
        context: AwsContext,
        *,
        s3_notifications: bool = False,
        ebs_volumes: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "Encryption", name, opts)
        policy = pulumi.Output.from_input(context.account_id).apply(
            lambda account: _key_policy(
                account, context.region, stack_log_groups(context, account), s3_notifications, ebs_volumes
            )
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


WAF_LOG_PREFIX = "aws-waf-logs-"
"""AWS WAF logs only to log groups whose names start with this."""


def stack_log_groups(context: AwsContext, account: str) -> list[str]:
    """ARN patterns of the stack's log groups: ``/aws/<service>/<prefix>-<env>-...`` and its WAF's logs."""
    base = f"arn:{PARTITION}:logs:{context.region}:{account}:log-group:"
    return [f"{base}/aws/*/{context.name('')}*", f"{base}{WAF_LOG_PREFIX}{context.name('')}*"]


SEAL_MESSAGES = ("kms:Decrypt", "kms:GenerateDataKey*")
"""What a service needs to put a message on a KMS-encrypted SNS topic or SQS queue."""


def _key_policy(
    account: str, region: str, log_groups: list[str], s3_notifications: bool, ebs_volumes: bool
) -> str:
    root = f"arn:{PARTITION}:iam::{account}:root"
    services: list[dict[str, object]] = [
        {
            "Sid": "CloudWatchAlarmsToTopic",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": list(SEAL_MESSAGES),
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        }
    ]
    if s3_notifications:
        # As AWS documents for S3 event notifications to an encrypted queue; the queue's own policy
        # admits only the documents bucket of this account as a sender.
        services.append(
            {
                "Sid": "S3NotificationsToQueue",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": list(SEAL_MESSAGES),
                "Resource": "*",
            }
        )
    if ebs_volumes:
        # Node volumes are created by Auto Scaling's service-linked role through EC2, which no stack
        # grant can name before it exists: AWS's own EBS key policy, this account and EC2 only.
        services.append(
            {
                "Sid": "EbsVolumesThroughEc2",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:CreateGrant",
                    "kms:DescribeKey",
                ],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:CallerAccount": account,
                        "kms:ViaService": f"ec2.{region}.amazonaws.com",
                    }
                },
            }
        )
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
                *services,
            ],
        },
        sort_keys=True,
    )
