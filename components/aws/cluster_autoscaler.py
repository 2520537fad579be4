"""Node autoscaling for the EKS cluster's managed node group: the Kubernetes Cluster Autoscaler.

Why the Cluster Autoscaler, and not the alternatives:

- **Karpenter** provisions EC2 instances itself, outside any node group: it needs its own node IAM role
  passed to EC2 (``iam:PassRole``), launch permissions on EC2 (``ec2:RunInstances``/``CreateFleet`` on
  subnets, security groups and launch templates found by tag) and an SQS interruption queue fed by
  EventBridge - a much larger grant than resizing one group, and the nodes it makes are no managed node
  group (the issue asks for managed node groups with autoscaling).
- **EKS Auto Mode** replaces managed node groups, the VPC CNI and the Pod Identity Agent setup with
  AWS-operated nodes: another compute model, not autoscaling of the node group this cluster has.
- The **Cluster Autoscaler** resizes the managed node group's own Auto Scaling group between its
  ``min_size`` and ``max_size`` when pods cannot be scheduled (KEDA adding workers) or nodes sit idle
  (workers scaled to zero). EKS keeps owning the nodes: AMI updates, draining, the launch template.

It runs in ``kube-system`` as the service account ``cluster-autoscaler`` under its own Pod Identity role,
finds node groups by the tags EKS puts on every managed node group's Auto Scaling group
(``k8s.io/cluster-autoscaler/enabled`` and ``k8s.io/cluster-autoscaler/<cluster>``, auto-discovery) and may
change only this node group's group: ``SetDesiredCapacity`` and ``TerminateInstanceInAutoScalingGroup`` on
its exact name, and only while it carries ``k8s.io/cluster-autoscaler/<cluster> = owned``. The Describe
actions of its AWS README's policy have no resource types (``*``); ``eks:DescribeNodegroup`` names the node
group's ARN.

The chart (``kubernetes.github.io/autoscaler``) and the image are pinned to the cluster's Kubernetes minor
version, as the autoscaler's releases are made per minor; the image comes from ``registry.k8s.io`` through
the pull-through cache. The chart is fetched by the machine running ``pulumi up``, not by the nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.aws.context import PARTITION, AwsContext
from components.aws.eks import EksCluster
from components.aws.iam import Statement
from components.aws.registry import ImageCache
from components.base import Component
from core.aws_actions import CLUSTER_AUTOSCALER_DISCOVERY

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"
CHART = "cluster-autoscaler"
CHART_REPOSITORY = "https://kubernetes.github.io/autoscaler"
IMAGE_UPSTREAM = "registry.k8s.io"
IMAGE_PATH = "autoscaling/cluster-autoscaler"


@dataclass(frozen=True)
class Pin:
    """A chart version and the image tag it is run with."""

    chart: str
    image: str


RELEASES: Mapping[str, Pin] = MappingProxyType(
    {
        # The chart's own releases that moved its image to each minor ("Bump CA chart image to v1.3x").
        "1.31": Pin(chart="9.38.0", image="v1.31.0"),
        "1.32": Pin(chart="9.45.0", image="v1.32.0"),
        "1.33": Pin(chart="9.47.0", image="v1.33.0"),
    }
)
"""Kubernetes minor -> the Cluster Autoscaler release made for it."""

RESIZE_ACTIONS = ("autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup")


def release_for(kubernetes_version: str) -> Pin:
    """The pinned release for the cluster's Kubernetes minor; a clear error for one without a pin."""
    if kubernetes_version not in RELEASES:
        raise ValueError(
            f"kubernetes_version: no Cluster Autoscaler release is pinned for {kubernetes_version}; pinned: "
            f"{sorted(RELEASES)} (add the chart release made for it to RELEASES)"
        )
    return RELEASES[kubernetes_version]


class ClusterAutoscaler(Component):
    """``agentstage:aws:ClusterAutoscaler``: its Pod Identity role and association, and the Helm release.

    Outputs: ``role_arn``.
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        cluster: EksCluster,
        cache: ImageCache,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "ClusterAutoscaler", name, opts)
        pin = release_for(cluster.kubernetes_version)
        image = cache.repository(IMAGE_UPSTREAM, IMAGE_PATH)
        cache.pin(IMAGE_UPSTREAM, IMAGE_PATH, pin.image)
        role = cluster.pod_role(name, NAMESPACE, SERVICE_ACCOUNT)
        grant = role.allow("scale-node-group", *statements(context, cluster))
        association = cluster.grant_pod_identity(role, NAMESPACE, SERVICE_ACCOUNT)
        import_grant = cache.grant_pull_through(cluster.node_role)
        self.release = k8s.helm.v3.Release(
            name,
            name=name,
            chart=CHART,
            version=pin.chart,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            namespace=NAMESPACE,
            values=chart_values(context.region, cluster.physical_name, image, pin.image),
            atomic=True,
            opts=self.child(
                provider=cluster.provider,
                depends_on=[grant, association, import_grant, cluster.node_group, *cache.rules],
            ),
        )
        self.role_arn: pulumi.Output[str] = role.arn
        self.register_outputs({"role_arn": self.role_arn})


def statements(context: AwsContext, cluster: EksCluster) -> tuple[Statement, ...]:
    """Discover on ``*`` (no resource types), describe this node group, resize only its Auto Scaling
    group, and only while it is tagged as this cluster's."""
    group = pulumi.Output.concat(
        f"arn:{PARTITION}:autoscaling:{context.region}:",
        context.account_id,
        ":autoScalingGroup:*:autoScalingGroupName/",  # the group's id between the colons is not known
        cluster.autoscaling_group_name,
    )
    return (
        Statement("DiscoverNodeGroups", CLUSTER_AUTOSCALER_DISCOVERY, ("*",)),
        Statement("DescribeNodeGroup", ("eks:DescribeNodegroup",), (cluster.node_group_arn,)),
        Statement(
            "ResizeThisClustersNodeGroup",
            RESIZE_ACTIONS,
            (group,),
            {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster.physical_name}": "owned"}},
        ),
    )


def chart_values(region: str, cluster_name: str, repository: pulumi.Input[str], tag: str) -> dict[str, Any]:
    """Auto-discovery of this cluster's node groups, the image from the cache, a non-root read-only
    container; the service account the Pod Identity association names."""
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        "autoDiscovery": {"clusterName": cluster_name},
        "image": {"repository": repository, "tag": tag},
        "rbac": {"serviceAccount": {"create": True, "name": SERVICE_ACCOUNT}},
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
