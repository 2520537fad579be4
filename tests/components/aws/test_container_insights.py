"""Pod telemetry as planned: the CloudWatch Observability add-on pinned, listening for EMF, its images from
the cache; every log group it writes created first, sealed and kept; its role writing those groups only."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest
from eks_stage import (
    ACCOUNT,
    ASSOCIATION,
    CLUSTER_NAME,
    KEY,
    REGION,
    REGISTRY,
    Stage,
    build,
    only,
    pod_trust,
    policies,
    trust,
)

from agent_runtime.settings_contract import parse_agent_endpoint
from components.aws.container_insights import ContainerInsights
from components.aws.context import AwsContext
from components.aws.encryption import stack_log_groups
from core.graph import ResourceGraph

GROUPS = {
    "application": f"/aws/containerinsights/{CLUSTER_NAME}/application",
    "dataplane": f"/aws/containerinsights/{CLUSTER_NAME}/dataplane",
    "host": f"/aws/containerinsights/{CLUSTER_NAME}/host",
    "performance": f"/aws/containerinsights/{CLUSTER_NAME}/performance",
    "metrics": f"/aws/eks/{CLUSTER_NAME}/metrics",
}
LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
ADDON = "aws:eks/addon:Addon"


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    def factory(stage: Stage) -> dict[str, Any]:
        insights = ContainerInsights(
            "insights", stage.context, stage.cluster, stage.cache, log_retention_days=30
        )
        return {
            "emf_endpoint": insights.emf_endpoint,
            "emf_log_group_name": insights.emf_log_group_name,
            "log_group_names": insights.log_group_names,
        }

    return build(factory)


def test_every_log_group_exists_first_sealed_and_kept(graph: ResourceGraph) -> None:
    groups = {
        r.get("name"): r
        for r in graph.of_type("aws:cloudwatch/logGroup:LogGroup")
        if r.name.startswith("insights-")
    }
    assert sorted(groups) == sorted(GROUPS.values())
    patterns = stack_log_groups(AwsContext("ags", "dev", REGION, ACCOUNT), ACCOUNT)
    addon = only(graph, ADDON, "insights-addon")
    for name, group in groups.items():
        assert (group.get("kmsKeyId"), group.get("retentionInDays")) == (KEY, 30)
        assert any(fnmatch.fnmatchcase(group.arn, p) for p in patterns), (
            f"the stack key's policy must admit {name}"
        )
        assert group.urn in addon.dependencies, f"the add-on would create {name} unsealed, kept forever"


def test_the_agent_writes_its_log_groups_and_reads_the_node_only(graph: ResourceGraph) -> None:
    assert trust(graph, "insights-agent") == pod_trust("amazon-cloudwatch", "cloudwatch-agent")
    arns = sorted(f"{LOG_GROUP_ARN}{name}" for name in GROUPS.values())
    assert policies(graph, "ags-dev-insights-agent") == {
        "write-cluster-telemetry": [
            {
                "Sid": "FindOwnLogGroups",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup"],
                "Resource": arns,
            },
            {
                "Sid": "WriteOwnLogGroups",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Resource": [f"{arn}:*" for arn in arns],
            },
            {
                "Sid": "DescribeNode",
                "Effect": "Allow",
                "Action": ["ec2:DescribeTags", "ec2:DescribeVolumes"],
                "Resource": "*",
            },
        ]
    }
    association = only(graph, ASSOCIATION)
    assert (association.get("namespace"), association.get("serviceAccount"), association.get("roleArn")) == (
        "amazon-cloudwatch",
        "cloudwatch-agent",
        f"arn:aws:iam::{ACCOUNT}:role/ags-dev-insights-agent",
    )


def test_the_addon_is_pinned_and_configured_for_emf_and_container_logs(graph: ResourceGraph) -> None:
    addon = only(graph, ADDON, "insights-addon")
    assert {k: addon.get(k) for k in ("clusterName", "addonName", "addonVersion")} == {
        "clusterName": CLUSTER_NAME,
        "addonName": "amazon-cloudwatch-observability",
        "addonVersion": "v6.2.0-eksbuild.1",
    }
    assert not addon.get("serviceAccountRoleArn") and not addon.get("podIdentityAssociations"), (
        "the association is the cluster's own, made before the add-on's pods start"
    )
    cache = f"{REGISTRY}/ags-dev-ecr-public"
    assert json.loads(addon.get("configurationValues")) == {
        "agent": {
            "config": {
                "logs": {
                    "metrics_collected": {
                        "kubernetes": {"cluster_name": CLUSTER_NAME, "enhanced_container_insights": True},
                        "emf": {},
                    }
                }
            },
            "image": {"repositoryDomainMap": {"public": f"{cache}/cloudwatch-agent"}},
        },
        "manager": {"image": {"repositoryDomainMap": {"public": f"{cache}/cloudwatch-agent"}}},
        "containerLogs": {
            "enabled": True,
            "fluentBit": {"image": {"repositoryDomainMap": {"public": f"{cache}/aws-observability"}}},
        },
    }
    needed = {
        only(graph, ASSOCIATION).urn,
        only(graph, "aws:ecr/pullThroughCacheRule:PullThroughCacheRule", "images-ecr-public").urn,
        only(graph, "aws:iam/rolePolicy:RolePolicy", "agents-nodes-images-import").urn,
    }
    assert needed <= set(addon.dependencies)


def test_pods_are_told_where_to_send_emf(graph: ResourceGraph) -> None:
    outputs = only(graph, "agentstage:test:Outputs").inputs
    assert outputs["emf_endpoint"] == "tcp://cloudwatch-agent.amazon-cloudwatch:25888"
    assert parse_agent_endpoint(outputs["emf_endpoint"]) == (
        "tcp",
        "cloudwatch-agent.amazon-cloudwatch",
        25888,
    )
    assert outputs["emf_log_group_name"] == GROUPS["metrics"]
    assert outputs["log_group_names"] == GROUPS
