"""Stage 3 on a cluster you already run (``agentstage:cloud: kubernetes``): the agent workers alone.

The cluster, the models, the message bus and the state store exist already; the stack file's
``runtimeSettings`` point the runtime at them (names checked against the runtime's contract), and the
Secret named by ``kubernetes.settingsSecret`` carries what is secret. For each agent in ``kubernetes.agents``
this deploys a hardened, KEDA-scaled worker on the agent's queue (``tasks-<agent>``) into a
default-deny namespace - the same workload the Azure enterprise stage runs on AKS.

Cloud identity comes from ``kubernetes.serviceAccountAnnotations`` (EKS IRSA role, Entra Workload ID
client id); the KEDA operator reads queue depth with the same identity reference, so that identity (or
the role the operator assumes) needs read access to the queue's length.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi_kubernetes as k8s

from agent_runtime.settings_contract import env_for
from blueprints.topology import Topology, task_queue
from components.kubernetes.identity import (
    AWS_ROLE_ANNOTATION,
    AZURE_CLIENT_ID_ANNOTATION,
    AZURE_USE_LABEL,
    PodIdentity,
)
from components.kubernetes.namespace import AgentNamespace, AgentNamespaceArgs
from components.kubernetes.network import Egress
from components.kubernetes.scaling import (
    QueueScaling,
    QueueTrigger,
    servicebus_queue,
    sqs_queue,
    storage_queue,
)
from components.kubernetes.workload import AgentWorkload, AgentWorkloadArgs
from core.config import KubernetesConfig, StackConfig
from core.config.sections import servicebus_namespace_name, storage_queue_account

WORKER_DEFAULTS: Mapping[str, str] = {"sqlite_path": "/tmp/agentstage/state.db"}
"""The container's root filesystem is read-only: anything embedded lives on the pod's /tmp volume."""

EGRESS = Egress(cidrs=("0.0.0.0/0",), ports=(443, 5671))
"""The services a user's cluster reaches are outside it and their addresses are not known here: HTTPS
(and AMQP over TLS for Service Bus) anywhere, nothing else; the instance metadata address stays blocked."""


def deploy_kubernetes(config: StackConfig) -> None:
    kubernetes, settings = config.kubernetes, config.runtime_settings
    assert kubernetes is not None and settings is not None  # guaranteed by StackConfig
    provider = k8s.Provider("cluster", context=kubernetes.kubeconfig_context)
    namespace = AgentNamespace("agents", AgentNamespaceArgs(name=kubernetes.namespace), provider=provider)
    identity = pod_identity(kubernetes.service_account_annotations)
    topology = Topology(config)
    for name in kubernetes.agents:
        AgentWorkload(
            name,
            AgentWorkloadArgs(
                namespace=namespace.name,
                image=kubernetes.image,
                env=env_for(
                    {
                        **WORKER_DEFAULTS,
                        **topology.agent_settings(name),
                        **settings,  # the user's cluster: its settings win over the stack-file defaults
                        "agents": topology.agents_json(name),
                        "task_queue": task_queue(name),
                    },
                    cloud=False,
                ),
                settings_secret=kubernetes.settings_secret,
                role="worker",
                identity=identity,
                egress=EGRESS,
                scaling=QueueScaling(
                    trigger=queue_trigger(settings, kubernetes, task_queue(name)),
                    max_replicas=kubernetes.max_replicas,
                ),
            ),
            provider=provider,
        )


def pod_identity(annotations: Mapping[str, str]) -> PodIdentity:
    """The service account annotations as given; Entra Workload ID also needs its label on the pods."""
    labels = {AZURE_USE_LABEL: "true"} if AZURE_CLIENT_ID_ANNOTATION in annotations else {}
    return PodIdentity(annotations=dict(annotations), pod_labels=labels)


def queue_trigger(settings: Mapping[str, str], kubernetes: KubernetesConfig, queue: str) -> QueueTrigger:
    """The KEDA trigger for ``queue`` on the bus the runtime settings name, authenticated like the pods.

    StackConfig has checked that the settings and annotations each bus needs are present, in their form.
    """
    annotations = kubernetes.service_account_annotations
    per_replica = kubernetes.messages_per_replica
    match settings["bus_backend"]:
        case "sqs":
            return sqs_queue(
                queue_url=queue,  # KEDA resolves a plain queue name in the region
                queue=queue,
                region=settings["aws_region"],
                role_arn=annotations[AWS_ROLE_ANNOTATION],
                messages_per_replica=per_replica,
            )
        case "servicebus":
            return servicebus_queue(
                namespace=servicebus_namespace_name(settings["servicebus_namespace"]),
                queue=queue,
                identity_client_id=annotations[AZURE_CLIENT_ID_ANNOTATION],
                messages_per_replica=per_replica,
            )
        case _:
            return storage_queue(
                account=storage_queue_account(settings["storage_queue_account_url"]),
                queue=queue,
                identity_client_id=annotations[AZURE_CLIENT_ID_ANNOTATION],
                messages_per_replica=per_replica,
            )
