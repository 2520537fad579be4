"""Queue-driven scaling with KEDA: a ``ScaledObject`` on the agent's task queue and how KEDA authenticates.

KEDA reads the queue's depth and drives a HorizontalPodAutoscaler it creates and owns; it also takes the
Deployment from zero to one replica and back, which an HPA alone cannot. "HPA fallback" is implemented
with what KEDA really offers:

- ``fallback``: when the queue cannot be read ``failure_threshold`` times in a row (the bus unreachable, a
  role missing), KEDA holds the workload at ``fallback_replicas`` instead of freezing it at whatever it
  last computed - or at zero, where nothing would ever drain the queue;
- ``advanced.horizontalPodAutoscalerConfig.behavior``: the generated HPA's scale-down is slowed (a
  five-minute window, at most half the pods a minute), so a queue drained by a burst does not bounce
  pods that are still finishing long agent runs.

A CPU trigger is deliberately not added: it cannot wake a workload from zero, a worker waiting on a model
burns almost no CPU, and KEDA's fallback does not apply to CPU/memory triggers.

KEDA authenticates to the queue itself - the KEDA operator, not the agent pod - through a
``TriggerAuthentication``; :class:`QueueTrigger` carries what that needs for each cloud.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

KEDA_API_VERSION = "keda.sh/v1alpha1"


@dataclass(frozen=True)
class QueueTrigger:
    """One KEDA scaler: its ``type``, ``metadata`` (strings, as KEDA reads them) and ``pod_identity``.

    ``queue`` names the queue the trigger reads, for reports and tests. Build one with
    :func:`servicebus_queue`, :func:`storage_queue` or :func:`sqs_queue`.
    """

    type: str
    queue: str
    metadata: Mapping[str, pulumi.Input[str]]
    pod_identity: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


def _positive(name: str, value: int) -> str:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return str(value)


def servicebus_queue(
    *,
    namespace: pulumi.Input[str],
    queue: str,
    identity_client_id: pulumi.Input[str],
    messages_per_replica: int = 5,
) -> QueueTrigger:
    """Azure Service Bus queue ``queue`` in ``namespace`` (the namespace's name, not its host name).

    KEDA's operator authenticates with Entra Workload ID as the managed identity ``identity_client_id``,
    which needs a federated credential for the operator's service account (on AKS's add-on:
    ``kube-system/keda-operator``) and the "Azure Service Bus Data Owner" role on the queue: reading a
    queue's message count is a management operation, which neither Sender nor Receiver includes.
    """
    return QueueTrigger(
        type="azure-servicebus",
        queue=queue,
        metadata={
            "namespace": namespace,
            "queueName": queue,
            "messageCount": _positive("messages_per_replica", messages_per_replica),
        },
        pod_identity={"provider": "azure-workload", "identityId": identity_client_id},
    )


def storage_queue(
    *,
    account: pulumi.Input[str],
    queue: str,
    identity_client_id: pulumi.Input[str],
    messages_per_replica: int = 5,
) -> QueueTrigger:
    """Azure Storage queue ``queue`` in storage account ``account``.

    As for Service Bus, the operator uses Workload ID as ``identity_client_id``, which needs the
    "Storage Queue Data Reader" role on the queue (approximate message count, peek).
    """
    return QueueTrigger(
        type="azure-queue",
        queue=queue,
        metadata={
            "accountName": account,
            "queueName": queue,
            "queueLength": _positive("messages_per_replica", messages_per_replica),
        },
        pod_identity={"provider": "azure-workload", "identityId": identity_client_id},
    )


def sqs_queue(
    *,
    queue_url: pulumi.Input[str],
    queue: str,
    region: str,
    role_arn: pulumi.Input[str],
    messages_per_replica: int = 5,
) -> QueueTrigger:
    """Amazon SQS queue ``queue_url`` (named ``queue``) in ``region``.

    The KEDA operator (its own IRSA role) assumes ``role_arn``, which needs ``sqs:GetQueueAttributes`` on
    the queue and a trust policy that lets the operator's role assume it.
    """
    return QueueTrigger(
        type="aws-sqs-queue",
        queue=queue,
        metadata={
            "queueURL": queue_url,
            "awsRegion": region,
            "queueLength": _positive("messages_per_replica", messages_per_replica),
        },
        pod_identity={"provider": "aws", "roleArn": role_arn},
    )


@dataclass(frozen=True)
class QueueScaling:
    """How a worker follows its queue.

    ``min_replicas`` 0 lets an idle agent cost nothing; ``max_replicas`` caps spend (and the model quota a
    burst can consume); ``fallback_replicas`` run while the queue cannot be read.
    """

    trigger: QueueTrigger
    min_replicas: int = 0
    max_replicas: int = 10
    fallback_replicas: int = 1
    polling_seconds: int = 15
    cooldown_seconds: int = 300

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(
                f"scaling needs 0 <= min_replicas <= max_replicas and max_replicas >= 1, "
                f"got {self.min_replicas}..{self.max_replicas}"
            )
        if not 1 <= self.fallback_replicas <= self.max_replicas:
            raise ValueError(
                f"fallback_replicas must be between 1 and max_replicas ({self.max_replicas}), "
                f"got {self.fallback_replicas}"
            )


def keda_scaling(
    name: str,
    *,
    namespace: pulumi.Input[str],
    deployment_name: pulumi.Input[str],
    scaling: QueueScaling,
    opts: pulumi.ResourceOptions,
) -> tuple[k8s.apiextensions.CustomResource, k8s.apiextensions.CustomResource]:
    """The ``TriggerAuthentication`` and the ``ScaledObject`` that scales ``deployment_name`` on the queue."""
    auth = k8s.apiextensions.CustomResource(
        f"{name}-trigger-auth",
        api_version=KEDA_API_VERSION,
        kind="TriggerAuthentication",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace),
        spec={"podIdentity": dict(scaling.trigger.pod_identity)},
        opts=opts,
    )
    scaled = k8s.apiextensions.CustomResource(
        f"{name}-scaler",
        api_version=KEDA_API_VERSION,
        kind="ScaledObject",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace),
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": scaling.polling_seconds,
            "cooldownPeriod": scaling.cooldown_seconds,
            "fallback": {"failureThreshold": 3, "replicas": scaling.fallback_replicas},
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": 300,
                            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
                        }
                    }
                }
            },
            "triggers": [
                {
                    "type": scaling.trigger.type,
                    "metadata": dict(scaling.trigger.metadata),
                    "authenticationRef": {"name": name},
                }
            ],
        },
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[auth])),
    )
    return auth, scaled
