"""How a pod proves who it is to its cloud: the service account annotations and pod labels of each scheme.

Kubernetes workloads never hold cloud keys. Each cloud exchanges the pod's projected service account token
for its own credentials, and tells its admission webhook which identity to use through a service account
annotation (and, on Azure, a pod label that opts the pod in to token injection).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

AZURE_CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
AZURE_USE_LABEL = "azure.workload.identity/use"
AWS_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


@dataclass(frozen=True)
class PodIdentity:
    """What a workload's service account carries (``annotations``) and its pods carry (``pod_labels``).

    ``PodIdentity()`` is a workload without cloud identity (a cluster the user brings, reaching only
    endpoints that need no cloud token).
    """

    annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)


def azure_workload_identity(client_id: pulumi.Input[str]) -> PodIdentity:
    """Microsoft Entra Workload ID: the pod gets tokens of the user-assigned identity ``client_id``.

    The identity also needs a federated credential for this service account
    (``KubernetesCluster.federate``). The AKS webhook injects ``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``,
    ``AZURE_FEDERATED_TOKEN_FILE`` and a projected token volume of its own into labelled pods, so the
    service account token itself need not be mounted.
    """
    return PodIdentity(
        annotations={AZURE_CLIENT_ID_ANNOTATION: client_id}, pod_labels={AZURE_USE_LABEL: "true"}
    )


def aws_role(role_arn: pulumi.Input[str]) -> PodIdentity:
    """IAM roles for service accounts (EKS): the pod assumes ``role_arn``."""
    return PodIdentity(annotations={AWS_ROLE_ANNOTATION: role_arn})
