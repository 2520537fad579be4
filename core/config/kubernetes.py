"""What a stack on a Kubernetes cluster you already run may say: nothing about the cluster itself; and which
``kubernetes`` keys belong to which cluster (the other clouds' checks name them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic.alias_generators import to_camel

from core.config.base import NAMESPACE
from core.config.regions import check_location

if TYPE_CHECKING:
    from core.config.stack import StackConfig

AZURE_CLUSTER_KEYS = (
    "system_pool",
    "user_pool",
    "private_cluster",
    "admin_group_object_ids",
    "encryption_at_host",
    "zone_redundant_registry",
)
"""Settings of the AKS cluster and Azure Container Registry the azure enterprise stack creates."""
OWN_CLUSTER_KEYS = ("kubeconfig_context", "service_account_annotations", "settings_secret")
"""Settings of your own cluster (the kubernetes cloud): which cluster, its identities, its settings Secret."""
CLUSTER_THE_STACK_CREATES = (*AZURE_CLUSTER_KEYS, "kubernetes_version")
"""Settings of a cluster and registry the stack creates (AKS and ACR, or EKS and ECR): meaningless on your
own cluster."""


def check_kubernetes(config: StackConfig) -> None:
    """An Azure or AWS region (where the cluster runs: the delivery pipeline fetches an EKS cluster's
    credentials there, and the bus and models the workers reach are Azure's or AWS's), and no settings of a
    cluster the stack would create."""
    check_location(config.location, ("azure", "aws"))
    kubernetes = config.kubernetes
    if kubernetes is None:
        return
    created = [key for key in CLUSTER_THE_STACK_CREATES if key in kubernetes.model_fields_set]
    if created:
        where = (
            "the azure and aws clouds (an AKS or EKS cluster the stack creates)"
            if created[0] == "kubernetes_version"
            else "the azure cloud (a cluster and registry the stack creates)"
        )
        raise ValueError(
            f"{NAMESPACE}:kubernetes.{to_camel(created[0])} applies to {where}, not your own cluster; remove it"
        )
