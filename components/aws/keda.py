"""KEDA on EKS: the operator that scales each containerized agent on its SQS queue, one identity per queue.

KEDA (``kedacore/keda`` chart, pinned) runs its operator as the service account ``keda/keda-operator``.
Its Pod Identity role may do one thing: assume the scaler roles this component makes. Each scaler role is
trusted by the operator's role alone and may read one queue's attributes (``sqs:GetQueueAttributes``,
which gives KEDA ``ApproximateNumberOfMessages``): an operator compromised through one ``ScaledObject``
reads queue depths, nothing else, and no agent's pod role is ever handed to KEDA.

How this works with EKS Pod Identity (verified in KEDA's source, ``pkg/scalers/aws``): a
``TriggerAuthentication`` with ``podIdentity: {provider: aws, roleArn: <scaler role>}`` (KEDA >= 2.13, the
``aws`` provider; ``identityOwner`` left at its default ``keda``, which ``roleArn`` requires) makes the
operator load the AWS SDK's default credentials - under Pod Identity the container credentials the Pod
Identity Agent serves - and, with no web identity token present, call ``sts:AssumeRole`` on ``roleArn``
(session ``KEDA``). That is ``components.kubernetes.scaling.sqs_queue(role_arn=...)`` as it is.

EKS Pod Identity's session tags (cluster, namespace, service account) are transitive: they ride along into
the chained ``AssumeRole``, which therefore needs ``sts:TagSession`` beside ``sts:AssumeRole`` - in the
scaler role's trust and the operator's policy, as AWS documents for chaining from a Pod Identity role.

Images come from ``ghcr.io`` (operator, metrics API server, admission webhooks) through the pull-through
cache; the chart (``kedacore.github.io/charts``) is fetched by the machine running ``pulumi up``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_aws import iam

from components.aws.context import AwsContext
from components.aws.eks import EksCluster
from components.aws.iam import Statement, policy_document
from components.aws.registry import ImageCache
from components.base import Component

VERSION = "2.18.0"
"""KEDA 2.18 is tested on Kubernetes 1.31-1.33 (KEDA's compatibility matrix); chart and app versions match."""
KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33")
NAMESPACE = "keda"
OPERATOR_SERVICE_ACCOUNT = "keda-operator"
"""The chart's default name for the operator's service account."""
CHART_REPOSITORY = "https://kedacore.github.io/charts"
IMAGE_UPSTREAM = "ghcr.io"
IMAGES: Mapping[str, str] = MappingProxyType(
    {
        "keda": "kedacore/keda",
        "metricsApiServer": "kedacore/keda-metrics-apiserver",
        "webhooks": "kedacore/keda-admission-webhooks",
    }
)
"""The chart's image values and their repositories on ghcr.io."""
CHAIN_ACTIONS = ("sts:AssumeRole", "sts:TagSession")
QUEUE_DEPTH_ACTIONS = ("sqs:GetQueueAttributes",)
_GRANT = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class Keda(Component):
    """``agentstage:aws:Keda``: the operator's role and association, the Helm release, and a scaler role per
    queue (:meth:`scaler_role`).

    Outputs: ``operator_role_arn``.
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        cluster: EksCluster,
        cache: ImageCache,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "Keda", name, opts)
        if cluster.kubernetes_version not in KUBERNETES_VERSIONS:
            raise ValueError(
                f"kubernetes_version: KEDA {VERSION} is tested on Kubernetes {list(KUBERNETES_VERSIONS)}, not "
                f"{cluster.kubernetes_version}; pin the KEDA release made for it"
            )
        self._name = name
        self._context = context
        self.operator = cluster.pod_role(f"{name}-operator", NAMESPACE, OPERATOR_SERVICE_ACCOUNT)
        association = cluster.grant_pod_identity(self.operator, NAMESPACE, OPERATOR_SERVICE_ACCOUNT)
        import_grant = cache.grant_pull_through(cluster.node_role)
        for path in IMAGES.values():
            cache.pin(IMAGE_UPSTREAM, path, VERSION)
        self.release = k8s.helm.v3.Release(
            name,
            name=name,
            chart="keda",
            version=VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            namespace=NAMESPACE,
            create_namespace=True,
            values=chart_values(cache),
            atomic=True,
            opts=self.child(
                provider=cluster.provider,
                depends_on=[association, import_grant, cluster.node_group, *cache.rules],
            ),
        )
        self.scalers: dict[str, iam.Role] = {}
        self.operator_role_arn: pulumi.Output[str] = self.operator.arn
        self.register_outputs({"operator_role_arn": self.operator_role_arn})

    def scaler_role(self, name: str, queue_arn: pulumi.Input[str]) -> iam.Role:
        """A role for one queue's ``TriggerAuthentication`` (its ARN goes to ``sqs_queue(role_arn=...)``):
        trusted by the KEDA operator's role only, allowed ``sqs:GetQueueAttributes`` on ``queue_arn`` only.
        The operator's role gets ``sts:AssumeRole`` on exactly this role."""
        if not _GRANT.fullmatch(name):
            raise ValueError(f"name: '{name}' must be lowercase letters, digits and single dashes")
        if name in self.scalers:
            raise ValueError(f"name: {self._name} already has the scaler role '{name}'")
        physical = self._context.name(name)
        if len(physical) > 64:
            raise ValueError(
                f"name: the role name '{physical}' is over IAM's 64 characters; shorten '{name}'"
            )
        role = iam.Role(
            f"{name}-role",
            name=physical,
            assume_role_policy=self.operator.arn.apply(operator_trust),
            max_session_duration=3600,
            tags=self._context.tags,
            opts=self.child(),
        )
        iam.RolePolicy(
            f"{name}-queue-depth",
            role=role.id,
            name="read-queue-depth",
            policy=policy_document([Statement("ReadQueueDepth", QUEUE_DEPTH_ACTIONS, (queue_arn,))]),
            opts=self.child(),
        )
        self.operator.allow(f"assume-{name}", Statement("AssumeScalerRole", CHAIN_ACTIONS, (role.arn,)))
        self.scalers[name] = role
        return role


def operator_trust(operator_role_arn: str) -> str:
    """The scaler role's trust: the KEDA operator's role, assuming it with its transitive session tags."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "KedaOperatorOnly",
                    "Effect": "Allow",
                    "Principal": {"AWS": operator_role_arn},
                    "Action": sorted(CHAIN_ACTIONS),
                }
            ],
        },
        sort_keys=True,
    )


def chart_values(cache: ImageCache) -> dict[str, Any]:
    """Every image from the cache (``registry`` + ``repository``, the chart's split); the operator's
    Kubernetes service account left to Pod Identity (no IRSA annotation)."""
    prefix = cache.prefix(IMAGE_UPSTREAM)
    images: dict[str, Any] = {
        value: {"registry": cache.registry, "repository": f"{prefix}/{path}", "tag": VERSION}
        for value, path in IMAGES.items()
    }
    return {
        "image": {**images, "pullPolicy": "IfNotPresent"},
        "podIdentity": {"aws": {"irsa": {"enabled": False}}},
    }
