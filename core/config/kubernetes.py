"""What a stack on a Kubernetes cluster you already run may say: nothing about the cluster itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic.alias_generators import to_camel

from core.config.base import NAMESPACE
from core.config.regions import check_location

if TYPE_CHECKING:
    from core.config.stack import StackConfig

CLUSTER_THE_STACK_CREATES = (
    "system_pool",
    "user_pool",
    "kubernetes_version",
    "private_cluster",
    "admin_group_object_ids",
    "encryption_at_host",
    "zone_redundant_registry",
)
"""Settings of a cluster and registry the stack creates (AKS, ACR): meaningless on your own cluster."""


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
        raise ValueError(
            f"{NAMESPACE}:kubernetes.{to_camel(created[0])} applies to the azure cloud (a cluster and registry "
            "the stack creates), not your own cluster; remove it"
        )
