"""Small programs around the cloud-agnostic Kubernetes blocks, recorded against any cluster's provider."""

from __future__ import annotations

from collections.abc import Callable

import pulumi_kubernetes as k8s

from components.kubernetes.identity import azure_workload_identity
from components.kubernetes.namespace import AgentNamespace, AgentNamespaceArgs
from components.kubernetes.network import Egress
from components.kubernetes.scaling import QueueScaling, servicebus_queue
from components.kubernetes.workload import AgentWorkload, AgentWorkloadArgs
from core.engine import record
from core.graph import ResourceGraph

IMAGE = "cragstprod.azurecr.io/agentstage-runtime@sha256:" + "0123456789abcdef" * 4
AGENT_CLIENT_ID = "11111111-1111-1111-1111-111111111111"
KEDA_CLIENT_ID = "22222222-2222-2222-2222-222222222222"
ENV = {"AGENTSTAGE_ENVIRONMENT": "prod", "AGENTSTAGE_TASK_QUEUE": "research-tasks"}

Program = Callable[[k8s.Provider], object]


def record_with_cluster(program: Program) -> ResourceGraph:
    """The graph of ``program(provider)``, with a provider built from a brought-your-own kubeconfig."""
    return record(lambda: program(k8s.Provider("cluster", kubeconfig="~/.kube/config")))


def agent_program(provider: k8s.Provider) -> None:
    """A namespace with one agent as an API and as a KEDA-scaled Service Bus worker: the enterprise shape."""
    namespace = AgentNamespace("agents", AgentNamespaceArgs(name="agents"), provider)
    identity = azure_workload_identity(AGENT_CLIENT_ID)
    AgentWorkload(
        "research-api",
        AgentWorkloadArgs(
            namespace=namespace.name,
            image=IMAGE,
            env=ENV,
            identity=identity,
            egress=Egress(cidrs=("10.20.0.0/16", "0.0.0.0/0")),
            ingress_namespaces=("ingress",),
        ),
        provider,
    )
    AgentWorkload(
        "research-worker",
        AgentWorkloadArgs(
            namespace=namespace.name,
            image=IMAGE,
            env=ENV,
            role="worker",
            identity=identity,
            egress=Egress(cidrs=("10.20.0.0/16",)),
            scaling=QueueScaling(
                servicebus_queue(
                    namespace="sb-agst-prod", queue="research-tasks", identity_client_id=KEDA_CLIENT_ID
                ),
                max_replicas=20,
                fallback_replicas=2,
            ),
        ),
        provider,
    )
