"""The EKS cluster, its image cache and add-ons as the enterprise stage composes them, planned under mocks:
shared by the add-on tests (not a test module itself)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_aws import get_caller_identity_output

from components.aws.context import AwsContext
from components.aws.eks import NODE_ENDPOINTS, EksCluster, EksClusterArgs
from components.aws.network import Network, NetworkArgs
from components.aws.registry import ImageCache, ImageCacheArgs
from core.engine import record
from core.graph import Resource, ResourceGraph

REGION = "eu-west-1"
ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000001"
GHCR_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/ghcr-AbC123"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
CLUSTER_NAME = "ags-dev-agents"
CLUSTER_ARN = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER_NAME}"
OUTPUTS = "agentstage:test:Outputs"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
RELEASE = "kubernetes:helm.sh/v3:Release"


@dataclass(frozen=True)
class Stage:
    """What an add-on is built on: the context, the cluster and the image cache."""

    context: AwsContext
    cluster: EksCluster
    cache: ImageCache


Factory = Callable[[Stage], Mapping[str, Any] | None]


def build(factory: Factory, kubernetes_version: str = "1.33") -> ResourceGraph:
    """The graph of a network with every node endpoint, a cluster, the image cache and ``factory(stage)``;
    what it returns is recorded as the inputs of a test-only ``agentstage:test:Outputs`` resource."""

    def program() -> None:
        account = get_caller_identity_output().account_id
        context = AwsContext(
            "ags", "dev", REGION, account, {"agentstage-environment": "dev"}, kms_key_arn=KEY
        )
        network = Network("network", context, NetworkArgs(interface_services=tuple(NODE_ENDPOINTS)))
        cluster = EksCluster(
            "agents", context, EksClusterArgs(network=network, kubernetes_version=kubernetes_version)
        )
        cache = ImageCache("images", context, ImageCacheArgs(credential_arns={"ghcr.io": GHCR_SECRET}))
        outputs = factory(Stage(context, cluster, cache))
        if outputs:
            pulumi.CustomResource(OUTPUTS, "outputs", dict(outputs))

    return record(program, config={"aws:region": REGION})


def only(graph: ResourceGraph, type_: str, name: str | None = None) -> Resource:
    found = [r for r in graph.of_type(type_) if name is None or r.name == name]
    assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
    return found[0]


def trust(graph: ResourceGraph, role: str) -> list[dict[str, Any]]:
    """The trust statements of the role whose logical name is ``<role>-role``."""
    return json.loads(only(graph, ROLE, f"{role}-role").get("assumeRolePolicy"))["Statement"]


def policies(graph: ResourceGraph, role: str) -> dict[str, list[dict[str, Any]]]:
    """The inline policies of the role named ``role`` (physical name), by policy name."""
    return {
        p.get("name"): json.loads(p.get("policy"))["Statement"]
        for p in graph.of_type(ROLE_POLICY)
        if p.get("role") == role
    }


def pod_trust(namespace: str, service_account: str) -> list[dict[str, Any]]:
    """The trust :meth:`EksCluster.pod_role` writes: Pod Identity, this cluster, one service account."""
    return [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {
                "StringEquals": {
                    "aws:SourceAccount": ACCOUNT,
                    "aws:RequestTag/kubernetes-namespace": namespace,
                    "aws:RequestTag/kubernetes-service-account": service_account,
                },
                "ArnEquals": {"aws:SourceArn": CLUSTER_ARN},
            },
        }
    ]
