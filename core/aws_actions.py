"""IAM actions the Service Authorization Reference lists without a resource type: they can only name ``*``.

One list for both sides: :class:`components.aws.iam.Statement` lets the kit's own grants name ``*`` for
these and nothing else, and the AGS-AWS-011 rule (``policies.rules.aws``) accepts ``*`` for the same
actions, plus a few listing actions a user's program may grant. Pure data: the rules import it without
the AWS SDK.
"""

from __future__ import annotations

CLUSTER_AUTOSCALER_DISCOVERY = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
)
"""The Cluster Autoscaler's discovery of node groups and their instances' capacity (its AWS README)."""

KIT_UNSCOPED_ACTIONS = frozenset(
    {
        # X-Ray trace upload (the functions' active tracing).
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        # What Lambda does with the execution role to find a VPC function's interfaces and subnets
        # (AWSLambdaVPCAccessExecutionRole).
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        # A registry login token is account-wide: ECR scopes the pushes and pulls it allows, not the token.
        "ecr:GetAuthorizationToken",
        *CLUSTER_AUTOSCALER_DISCOVERY,
        # The CloudWatch agent's Container Insights: the node's EBS volumes and its instance tags.
        "ec2:DescribeTags",
        "ec2:DescribeVolumes",
    }
)
"""What the kit's own grants may name ``*`` for."""

UNSCOPED_ACTIONS = KIT_UNSCOPED_ACTIONS | {
    # X-Ray sampling, for programs that sample in the SDK.
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
    # CloudWatch custom metrics: scoped by the cloudwatch:namespace condition key, not by resource.
    "cloudwatch:PutMetricData",
    # Listing actions.
    "kms:ListKeys",
    "kms:ListAliases",
    "secretsmanager:GetRandomPassword",
    "secretsmanager:ListSecrets",
}
"""Every action without a resource type that a reviewed program may grant on ``*``."""
