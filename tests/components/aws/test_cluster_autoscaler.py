"""The Cluster Autoscaler as planned: its own Pod Identity role that may resize this cluster's node group
only, and a Helm release pinned to the cluster's minor with its image from the pull-through cache."""

from __future__ import annotations

from typing import Any

import pytest
from eks_stage import (
    ACCOUNT,
    ASSOCIATION,
    CLUSTER_NAME,
    REGION,
    REGISTRY,
    RELEASE,
    Stage,
    build,
    only,
    pod_trust,
    policies,
    trust,
)

from components.aws.cluster_autoscaler import ClusterAutoscaler, release_for
from core.graph import ResourceGraph

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ASG_ARN = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*"


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    def factory(stage: Stage) -> dict[str, Any]:
        autoscaler = ClusterAutoscaler("cluster-autoscaler", stage.context, stage.cluster, stage.cache)
        return {
            "role_arn": autoscaler.role_arn,
            "asg": stage.cluster.autoscaling_group_name,
            "seeds": stage.cache.seeds,
        }

    return build(factory)


def test_only_its_service_account_gets_the_role(graph: ResourceGraph) -> None:
    assert trust(graph, "cluster-autoscaler") == pod_trust("kube-system", "cluster-autoscaler")
    association = only(graph, ASSOCIATION)
    assert {k: association.get(k) for k in ("clusterName", "namespace", "serviceAccount", "roleArn")} == {
        "clusterName": CLUSTER_NAME,
        "namespace": "kube-system",
        "serviceAccount": "cluster-autoscaler",
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/ags-dev-cluster-autoscaler",
    }


def test_it_resizes_this_clusters_node_group_and_nothing_else(graph: ResourceGraph) -> None:
    node_group = only(graph, NODE_GROUP)
    asg = only(graph, "agentstage:test:Outputs").inputs["asg"]
    assert asg.startswith("eks-ags-dev-agents-nodes-") and node_group.arn.endswith(
        asg.removeprefix("eks-ags-dev-agents-nodes-")
    )
    assert policies(graph, "ags-dev-cluster-autoscaler") == {
        "scale-node-group": [
            {
                "Sid": "DiscoverNodeGroups",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                ],
                "Resource": "*",
            },
            {
                "Sid": "DescribeNodeGroup",
                "Effect": "Allow",
                "Action": ["eks:DescribeNodegroup"],
                "Resource": node_group.arn,
            },
            {
                "Sid": "ResizeThisClustersNodeGroup",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup",
                ],
                "Resource": f"{ASG_ARN}:autoScalingGroupName/{asg}",
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{CLUSTER_NAME}": "owned"}
                },
            },
        ]
    }


def test_the_release_is_pinned_and_pulls_through_the_cache(graph: ResourceGraph) -> None:
    release = only(graph, RELEASE)
    assert {k: release.get(k) for k in ("chart", "version", "repositoryOpts", "namespace", "atomic")} == {
        "chart": "cluster-autoscaler",
        "version": "9.47.0",
        "repositoryOpts": {"repo": "https://kubernetes.github.io/autoscaler"},
        "namespace": "kube-system",
        "atomic": True,
    }
    assert release.get("values") == {
        "cloudProvider": "aws",
        "awsRegion": REGION,
        "autoDiscovery": {"clusterName": CLUSTER_NAME},
        "image": {"repository": f"{REGISTRY}/ags-dev-k8s/autoscaling/cluster-autoscaler", "tag": "v1.33.0"},
        "rbac": {"serviceAccount": {"create": True, "name": "cluster-autoscaler"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    assert release.provider and release.provider.startswith(only(graph, "pulumi:providers:kubernetes").urn)


def test_its_image_is_listed_for_seeding_the_cache(graph: ResourceGraph) -> None:
    assert only(graph, "agentstage:test:Outputs").inputs["seeds"] == [
        f"{REGISTRY}/ags-dev-k8s/autoscaling/cluster-autoscaler:v1.33.0"
    ]


def test_the_release_waits_for_its_identity_its_image_and_the_nodes(graph: ResourceGraph) -> None:
    release = only(graph, RELEASE)
    needed = {
        only(graph, ASSOCIATION).urn,
        only(graph, NODE_GROUP).urn,
        only(graph, "aws:iam/rolePolicy:RolePolicy", "cluster-autoscaler-scale-node-group").urn,
        only(graph, "aws:iam/rolePolicy:RolePolicy", "agents-nodes-images-import").urn,
        *(rule.urn for rule in graph.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")),
    }
    assert needed <= set(release.dependencies)


@pytest.mark.parametrize(
    ("version", "chart", "image"), [("1.31", "9.38.0", "v1.31.0"), ("1.32", "9.45.0", "v1.32.0")]
)
def test_each_minor_gets_the_release_made_for_it(version: str, chart: str, image: str) -> None:
    assert (release_for(version).chart, release_for(version).image) == (chart, image)


def test_a_minor_without_a_pinned_release_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"no Cluster Autoscaler release is pinned for 1\.30; pinned: \['1\.31'"
    ):
        build(
            lambda s: ClusterAutoscaler("ca", s.context, s.cluster, s.cache) and None,
            kubernetes_version="1.30",
        )
