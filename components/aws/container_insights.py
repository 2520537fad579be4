"""Pod telemetry on EKS: the ``amazon-cloudwatch-observability`` add-on, its logs sealed and kept.

The add-on runs, on every node, the CloudWatch agent (Container Insights, and an Embedded Metric Format
listener) and Fluent Bit (container logs), both as the service account
``amazon-cloudwatch/cloudwatch-agent``, whose Pod Identity role (add-on >= v3.1.0) may write the stack's
log groups of this cluster and nothing else:

- ``/aws/containerinsights/<cluster>/{application,dataplane,host}`` - Fluent Bit's container, kubelet
  and node logs - and ``.../performance`` - Container Insights' own EMF records - and
  ``/aws/eks/<cluster>/metrics``, where the pods' EMF records go: all created here first, with retention
  and the stack's key (the agent and Fluent Bit would create them unsealed and never expiring). Both still
  call ``CreateLogGroup`` before writing (Fluent Bit's ``auto_create_group``), which answers "already
  exists": it is granted on these groups only, so a record naming any other group is refused.
- ``ec2:DescribeVolumes`` and ``ec2:DescribeTags`` (no resource types), which Container Insights reads
  for the node's disks and tags. No ``cloudwatch:PutMetricData``, X-Ray or SSM: metrics travel as log
  events, Application Signals and traces are not configured (the agent configuration below replaces the
  add-on's default, which enables them).

Pods send EMF to ``tcp://cloudwatch-agent.amazon-cloudwatch:25888`` (:data:`EMF_ENDPOINT`: the agent
operator's Service opens 25888 when the configuration has ``logs.metrics_collected.emf``), naming
:attr:`ContainerInsights.emf_log_group_name` as each record's ``_aws.LogGroupName``; a record without it
would go to the agent's default group ``emf/logs/default``, which the role cannot write.

Images: the add-on's Helm chart takes every image from ``public.ecr.aws`` (``repositoryDomainMap.public``
of ``agent``, ``manager`` and ``containerLogs.fluentBit``); the configuration points those at the
``public.ecr.aws`` pull-through cache, since the nodes have no internet. Whether the add-on's configuration
schema accepts those keys cannot be checked offline: ``aws eks describe-addon-configuration --addon-name
amazon-cloudwatch-observability --addon-version`` :data:`ADDON_VERSION` shows it; EKS refuses an unknown
key when the add-on is created, naming it. The add-on chooses its images' tags, so they are not in
``ImageCache.seeds``: the first pull of each through the cache needs them seeded (see
``components.aws.registry``) with the tags the add-on version runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pulumi
from pulumi_aws import cloudwatch, eks

from components.aws.context import AwsContext
from components.aws.eks import EksCluster
from components.aws.iam import Statement
from components.aws.logs import log_group, retention
from components.aws.registry import ImageCache
from components.base import Component

ADDON = "amazon-cloudwatch-observability"
ADDON_VERSION = "v6.2.0-eksbuild.1"
"""Pinned: Pod Identity needs >= v3.1.0; this is the version AWS documents OTel Container Insights from."""
NAMESPACE = "amazon-cloudwatch"
SERVICE_ACCOUNT = "cloudwatch-agent"
"""The add-on's agent and Fluent Bit both run as this service account."""
EMF_PORT = 25888
EMF_ENDPOINT = f"tcp://cloudwatch-agent.{NAMESPACE}:{EMF_PORT}"
"""Where pods send EMF records (the runtime's ``emf_agent_endpoint``)."""
IMAGE_UPSTREAM = "public.ecr.aws"
IMAGE_NAMESPACES: Mapping[str, str] = MappingProxyType(
    {"agent": "cloudwatch-agent", "manager": "cloudwatch-agent", "fluentBit": "aws-observability"}
)
"""Each image's ``public.ecr.aws/<namespace>`` in the add-on's chart."""
CONTAINER_LOGS = ("application", "dataplane", "host")
"""Fluent Bit's log groups ``/aws/containerinsights/<cluster>/<kind>``."""
WRITE_ACTIONS = ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents")


class ContainerInsights(Component):
    """``agentstage:aws:ContainerInsights``: the log groups, the agent's role and association, the add-on.

    Outputs: ``emf_endpoint``, ``emf_log_group_name``, ``log_group_names`` (by purpose: application,
    dataplane, host, performance, metrics).
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        cluster: EksCluster,
        cache: ImageCache,
        *,
        log_retention_days: int = 90,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "ContainerInsights", name, opts)
        days = retention(log_retention_days)
        names = log_group_names(cluster.physical_name)
        groups = {
            purpose: log_group(f"{name}-{purpose}", context, path, days, self)
            for purpose, path in names.items()
        }
        role = cluster.pod_role(f"{name}-agent", NAMESPACE, SERVICE_ACCOUNT)
        grant = role.allow("write-cluster-telemetry", *statements(groups))
        association = cluster.grant_pod_identity(role, NAMESPACE, SERVICE_ACCOUNT)
        import_grant = cache.grant_pull_through(cluster.node_role)
        self.addon = eks.Addon(
            f"{name}-addon",
            cluster_name=cluster.cluster_name,
            addon_name=ADDON,
            addon_version=ADDON_VERSION,
            configuration_values=pulumi.Output.from_input(cache.registry).apply(
                lambda registry: configuration(
                    cluster.physical_name, f"{registry}/{cache.prefix(IMAGE_UPSTREAM)}"
                )
            ),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=context.tags,
            opts=self.child(
                depends_on=[
                    *groups.values(),
                    grant,
                    association,
                    import_grant,
                    cluster.node_group,
                    *cache.rules,
                ]
            ),
        )
        self.emf_endpoint = EMF_ENDPOINT
        self.emf_log_group_name = names["metrics"]
        self.log_group_names: dict[str, str] = dict(names)
        self.register_outputs(
            {
                "emf_endpoint": self.emf_endpoint,
                "emf_log_group_name": self.emf_log_group_name,
                "log_group_names": self.log_group_names,
            }
        )


def log_group_names(cluster_name: str) -> dict[str, str]:
    """By purpose: Fluent Bit's three, Container Insights' performance records, the pods' EMF metrics."""
    return {
        **{kind: f"/aws/containerinsights/{cluster_name}/{kind}" for kind in CONTAINER_LOGS},
        "performance": f"/aws/containerinsights/{cluster_name}/performance",
        "metrics": f"/aws/eks/{cluster_name}/metrics",
    }


def statements(groups: Mapping[str, cloudwatch.LogGroup]) -> tuple[Statement, ...]:
    """Write these log groups (and find them: CreateLogGroup on an existing group); read the node's
    volumes and tags."""
    arns = tuple(group.arn for group in groups.values())
    streams = tuple(pulumi.Output.concat(arn, ":*") for arn in arns)
    return (
        Statement("FindOwnLogGroups", ("logs:CreateLogGroup",), arns),
        Statement("WriteOwnLogGroups", WRITE_ACTIONS, streams),
        Statement("DescribeNode", ("ec2:DescribeTags", "ec2:DescribeVolumes"), ("*",)),
    )


def configuration(cluster_name: str, cache: str) -> str:
    """The add-on's ``configuration_values``: Container Insights and an EMF listener (no Application
    Signals, no traces), container logs on, every image from ``cache`` (the public.ecr.aws cache's
    ``<registry>/<prefix>``)."""
    images: dict[str, Any] = {
        key: {"image": {"repositoryDomainMap": {"public": f"{cache}/{namespace}"}}}
        for key, namespace in IMAGE_NAMESPACES.items()
    }
    agent_config = {
        "logs": {
            "metrics_collected": {
                "kubernetes": {"cluster_name": cluster_name, "enhanced_container_insights": True},
                "emf": {},
            }
        }
    }
    return json.dumps(
        {
            "agent": {"config": agent_config, **images["agent"]},
            "manager": images["manager"],
            "containerLogs": {"enabled": True, "fluentBit": images["fluentBit"]},
        },
        sort_keys=True,
    )
