"""CloudWatch log groups the stack owns: retention set, sealed with the stack's key, created before the
service that writes to them (a log group a service creates itself never expires and is not encrypted)."""

from __future__ import annotations

import json

import pulumi
from pulumi_aws import cloudwatch

from components.aws.context import AwsContext


def log_group(
    name: str, context: AwsContext, path: str, retention_days: int, parent: pulumi.Resource
) -> cloudwatch.LogGroup:
    """``path`` such as ``/aws/lambda/<function>``; retention in CloudWatch's allowed values."""
    return cloudwatch.LogGroup(
        f"{name}-logs",
        name=path,
        retention_in_days=retention_days,
        kms_key_id=context.key,
        tags=context.tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )


RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


def retention(days: int) -> int:
    """The smallest retention CloudWatch accepts that keeps logs at least ``days``."""
    return next(allowed for allowed in RETENTION_DAYS if allowed >= days)


def access_log_format(**extra: str) -> str:
    """An API Gateway access log line: who called what and how it ended - never the body or the token.
    ``extra`` adds fields of the API's kind (``caller`` from the authorizer it has)."""
    return json.dumps(
        {
            "requestId": "$context.requestId",
            "ip": "$context.identity.sourceIp",
            "time": "$context.requestTime",
            "method": "$context.httpMethod",
            "path": "$context.path",
            "status": "$context.status",
            "latencyMs": "$context.responseLatency",
            "integrationStatus": "$context.integrationStatus",
            "authorizerError": "$context.authorizer.error",
            **extra,
        },
        sort_keys=True,
    )
