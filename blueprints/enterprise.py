"""Stage 3 - the enterprise stage: hybrid agents on a private network, with cost and policy guard rails.

The foundation's system (gateway, orchestrator, agents over Service Bus, shared memory and state) is
built again with three changes:

- **Private network.** Every data service (models, search, Cosmos DB, Service Bus, Key Vault, the
  documents, the Function Apps and their storage, the registry) has public access off and a private
  endpoint with its DNS zone; the Function Apps and the gateway join the VNet. The gateway stays the one
  public, Entra ID-protected front door. Event Grid, which cannot deliver through a private endpoint,
  reaches the ingest queue as a trusted service with its own identity.
- **Hybrid agents.** Agents named in ``kubernetes.agents`` run as queue workers on AKS, pulled from
  ACR by the kubelet identity only, scaled by KEDA on their Service Bus queue (to zero when idle), with
  the same managed identity, grants and runtime settings they would have on Functions (Workload ID).
- **Guard rails.** A monthly budget with an action group, alert rules on 5xx rate, latency and model
  spend, and built-in Azure Policy assignments that deny or audit drift after deployment.
"""

from __future__ import annotations

import pulumi

from agent_runtime.settings_contract import env_for
from blueprints.azure_base import AzureFoundation
from blueprints.azure_names import Named, agent_keys, refuse_shared_names
from blueprints.foundation import OrchestratedAgents, stage_names
from blueprints.topology import task_queue
from components.azure.alerts import AlertArgs, ServiceAlerts
from components.azure.budgets import BudgetArgs, CostGuard
from components.azure.identity import ManagedIdentity
from components.azure.kubernetes import ClusterArgs, KubernetesCluster, NodePoolArgs, control_plane_identity
from components.azure.network import ExistingNetwork, Network, NetworkArgs
from components.azure.policy_assignments import PolicyArgs, PolicyGuard
from components.azure.private_link import PrivateLinkTarget
from components.azure.registry import ContainerRegistry, ContainerRegistryArgs
from components.azure.serverless_agent import RUNTIME_DEFAULTS
from components.kubernetes.identity import azure_workload_identity
from components.kubernetes.namespace import AgentNamespace, AgentNamespaceArgs
from components.kubernetes.network import Egress
from components.kubernetes.scaling import QueueScaling, servicebus_queue
from components.kubernetes.workload import AgentWorkload, AgentWorkloadArgs
from core.config import KubernetesConfig, NetworkConfig, NodePoolConfig, StackConfig

AGENT_EGRESS = Egress(cidrs=("0.0.0.0/0",), ports=(443, 5671))
"""Workers call Entra ID (token exchange) and the gateway over public HTTPS, and the private endpoints
of Service Bus (AMQP over TLS, 5671), Cosmos DB, Search and Key Vault on 443 inside the VNet. Entra ID
has no private endpoint, so 443 cannot be narrowed to the VNet; the instance metadata address is carved
out by the workload's policy."""


CLUSTER = "cluster"
"""The AKS cluster: its resources (and its control plane's identity) are named after it."""


def deploy_azure(config: StackConfig) -> None:
    assert config.kubernetes and config.network and config.budget  # guaranteed by StackConfig
    refuse_shared_names(config, enterprise_names(config, config.kubernetes))
    base = AzureFoundation(config, isolated=True)
    network = Network("network", base.context, network_args(config.network))
    system = OrchestratedAgents(base, containerized=config.kubernetes.agents, network=network)
    registry = ContainerRegistry(
        "registry",
        base.context,
        ContainerRegistryArgs(zone_redundant=config.kubernetes.zone_redundant_registry),
    )
    for target in private_link_targets(base, system, registry):
        network.connect(target)

    cluster = KubernetesCluster(CLUSTER, base.context, cluster_args(config.kubernetes, network))
    registry.grant_pull(cluster.kubelet_object_id)
    containerized_agents(base, system, cluster, config.kubernetes)

    guard = CostGuard(
        "cost",
        base.context,
        BudgetArgs(
            amount=config.budget.amount,
            contact_emails=config.budget.contact_emails,
            thresholds=config.budget.thresholds,
        ),
    )
    alerts = config.alerts
    ServiceAlerts(
        "alerts",
        base.context,
        AlertArgs()
        if alerts is None
        else AlertArgs(
            server_error_percent=alerts.server_error_percent,
            latency_p95_ms=float(alerts.latency_p95_ms),
            daily_spend_usd=alerts.daily_spend_usd,
        ),
        app_insights_id=base.observability.app_insights_id,
        action_group_id=guard.action_group_id,
    )
    PolicyGuard("policy", base.context, PolicyArgs(mode=config.policy.mode if config.policy else "enforce"))


def enterprise_names(config: StackConfig, kubernetes: KubernetesConfig) -> list[Named]:
    """What the stage names after its agents and its own blocks: the foundation's, privately reached, and for
    the containerized agents their queue readers' identities; the cluster's control plane has one too."""
    keys = agent_keys(config)
    return [
        *stage_names(config, containerized=kubernetes.agents, private=True),
        *(
            Named(f"the queue reader of {keys[name]}", "identity", scaler_identity(name))
            for name in kubernetes.agents
        ),
        Named("the AKS cluster's control plane", "identity", control_plane_identity(CLUSTER)),
    ]


def scaler_identity(agent: str) -> str:
    """The name of the identity that reads the queue depth of ``agent`` for KEDA."""
    return f"{agent}-scaler"


def network_args(network: NetworkConfig) -> NetworkArgs:
    """The stack file's network: a VNet to create, or the one (and the DNS zones) a hub already has."""
    existing = (
        ExistingNetwork(network.existing_vnet_id, dict(network.existing_subnet_ids))
        if network.existing_vnet_id
        else None
    )
    return NetworkArgs(
        address_space=network.address_space, existing=existing, dns_zone_ids=network.dns_zone_ids
    )


def private_link_targets(
    base: AzureFoundation, system: OrchestratedAgents, registry: ContainerRegistry
) -> tuple[PrivateLinkTarget, ...]:
    """Every data service's private endpoint. Function Apps connect their own (they publish through them)."""
    return (
        *base.models.private_link_targets,
        *base.secrets.private_link_targets,
        *base.state.private_link_targets,
        *system.search.private_link_targets,
        *system.knowledge.private_link_targets,
        *system.bus.private_link_targets,
        *registry.private_link_targets,
    )


def cluster_args(kubernetes: KubernetesConfig, network: Network) -> ClusterArgs:
    return ClusterArgs(
        system_pool=node_pool(kubernetes.system_pool),
        user_pool=node_pool(kubernetes.user_pool),
        kubernetes_version=kubernetes.kubernetes_version,
        node_subnet_id=network.subnet_ids["aks"],
        private_cluster=kubernetes.private_cluster,
        admin_group_object_ids=kubernetes.admin_group_object_ids,
        encryption_at_host=kubernetes.encryption_at_host,
    )


def node_pool(pool: NodePoolConfig) -> NodePoolArgs:
    return NodePoolArgs(vm_size=pool.vm_size, min_count=pool.min_count, max_count=pool.max_count)


def containerized_agents(
    base: AzureFoundation,
    system: OrchestratedAgents,
    cluster: KubernetesCluster,
    kubernetes: KubernetesConfig,
) -> None:
    """Each containerized agent: a KEDA-scaled worker running as its own identity through Workload ID.

    The queue-length reader is a separate identity per queue (Data Owner on that queue is the narrowest
    role that reads its message count), federated to the KEDA operator, never to the agent's pods.
    """
    namespace = AgentNamespace(
        "agents", AgentNamespaceArgs(name=kubernetes.namespace), provider=cluster.provider
    )
    for name in kubernetes.agents:
        identity = system.identities[name]
        cluster.federate(identity, kubernetes.namespace, name)
        scaler = ManagedIdentity(scaler_identity(name), base.context)
        system.bus.grant_queue_metrics(scaler, task_queue(name))
        cluster.federate_keda_operator(scaler)
        AgentWorkload(
            name,
            AgentWorkloadArgs(
                namespace=namespace.name,
                image=kubernetes.image,
                env=agent_env(base, system, name),
                role="worker",
                identity=azure_workload_identity(identity.client_id),
                egress=AGENT_EGRESS,
                scaling=QueueScaling(
                    trigger=servicebus_queue(
                        namespace=system.bus.namespace_name,
                        queue=task_queue(name),
                        identity_client_id=scaler.client_id,
                        messages_per_replica=kubernetes.messages_per_replica,
                    ),
                    max_replicas=kubernetes.max_replicas,
                ),
            ),
            provider=cluster.provider,
        )


def agent_env(base: AzureFoundation, system: OrchestratedAgents, name: str) -> dict[str, pulumi.Input[str]]:
    """The same runtime settings the agent would get on Functions, as container environment variables.

    The container's root filesystem is read-only, so the embedded store lives on its writable /tmp like
    on Functions. Telemetry goes to the same Application Insights, through the variable Azure Monitor's
    exporter reads itself (the connection string identifies the resource; ingestion needs the identity).
    """
    settings = env_for(
        {**RUNTIME_DEFAULTS, **system.agent_settings(name), "telemetry_exporter": "azure_monitor"}
    )
    return {**settings, "APPLICATIONINSIGHTS_CONNECTION_STRING": base.observability.connection_string}
