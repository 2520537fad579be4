"""AKS: the cluster agents run on, with Entra ID for people and Workload ID for pods, and no local accounts.

What the cluster enforces by construction:

- **Identity.** Local accounts are off and the Kubernetes API authorizes with Azure RBAC on Entra ID
  tokens; the OIDC issuer and Workload ID let pods exchange their service account token for a managed
  identity's token (:meth:`KubernetesCluster.federate`). The control plane runs as a user-assigned
  identity that exists before the cluster, so its subnet grant is in place when nodes join.
- **Network.** Azure CNI Overlay with the Cilium dataplane: pod addresses come from a private overlay
  range (not the VNet, which stays small), and Cilium enforces NetworkPolicy in eBPF - the engine
  Microsoft recommends for new clusters, instead of the iptables-based Azure NPM. Optionally private:
  the API server then has no public endpoint; otherwise ``authorized_ip_ranges`` limits who reaches it.
- **Operations.** KEDA and Azure Policy add-ons; Container Insights sends to the shared workspace with
  managed identity auth (a data collection rule, no workspace key); control-plane audit logs go to the
  workspace too; the cluster and its node images upgrade themselves on the ``stable`` channel.
- **Pools.** A system pool tainted for critical add-ons only, and an autoscaling user pool for agents;
  both on ephemeral OS disks, spread over availability zones.

What a real ``pulumi up`` needs (the cluster has no local accounts, so no static credential exists):

- ``kubelogin`` on the deploying machine's PATH (``az aks install-cli`` installs it). :attr:`provider` is
  built from the cluster's user kubeconfig in exec format, rewritten the way ``kubelogin
  convert-kubeconfig -l <mode>`` does: ``azurecli`` (default; reuses ``az login``) or, in CI,
  ``workloadidentity`` / ``spn`` / ``msi`` via ``ClusterArgs.kubelogin_mode``.
- The deploying principal gets "Azure Kubernetes Service RBAC Cluster Admin" on this cluster (created
  here, from ``get_client_config``'s object id). Azure RBAC can take a minute or two to reach the API
  server: if the first apply of Kubernetes objects is refused with 403, run ``pulumi up`` again.
- For a private cluster, a machine that resolves and reaches the private API server (a runner in the VNet
  or a peered network).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi_azure_native import authorization, containerservice, managedidentity, monitor

from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.identity import ManagedIdentity
from components.azure.roles import assign_role, assign_role_to_principal
from components.base import Component

KubeloginMode = Literal["azurecli", "workloadidentity", "spn", "msi"]

TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
# The AKS KEDA add-on's operator: the service account a KEDA scaler's federated credential names.
KEDA_NAMESPACE = "kube-system"
KEDA_SERVICE_ACCOUNT = "keda-operator"
CONTAINER_INSIGHTS_STREAM = "Microsoft-ContainerInsights-Group-Default"


@dataclass(frozen=True)
class NodePoolArgs:
    """One autoscaling node pool.

    ``vm_size`` default ``Standard_D4ds_v5`` (4 vCPU, 16 GiB): its 150 GiB local disk holds an ephemeral
    OS disk of ``os_disk_size_gb`` (faster node starts and re-images, no managed-disk cost). ``zones``:
    availability zones the pool spreads over (empty in regions without zones). ``max_pods`` per node
    (overlay addresses are cheap; 110 is Kubernetes' tested limit).
    """

    vm_size: str = "Standard_D4ds_v5"
    min_count: int = 1
    max_count: int = 3
    zones: tuple[str, ...] = ("1", "2", "3")
    os_disk_size_gb: int = 128
    os_disk_type: Literal["Ephemeral", "Managed"] = "Ephemeral"
    max_pods: int = 110

    def __post_init__(self) -> None:
        if not 0 < self.min_count <= self.max_count:
            raise ValueError(
                f"node pool needs 0 < min_count <= max_count, got {self.min_count}..{self.max_count}"
            )
        if not 50 <= self.max_pods <= 250:
            raise ValueError(f"max_pods must be 50-250, got {self.max_pods}")


@dataclass(frozen=True)
class ClusterArgs:
    """The cluster's settings; every default is the production choice.

    ``kubernetes_version``: ``None`` takes AKS's default version. ``node_subnet_id``: the subnet nodes
    join (the network block's); ``None`` lets AKS create a VNet. ``private_cluster``: no public API
    endpoint. ``authorized_ip_ranges``: CIDRs allowed to a public API server (ignored when private).
    ``admin_group_object_ids``: Entra groups that are cluster admins. ``pod_cidr``/``service_cidr``/
    ``dns_service_ip``: overlay and service ranges, which must not overlap the VNet or its peers.
    ``tier``: ``Standard`` has the financially backed API server SLA. ``defender``: Microsoft Defender
    for Containers' sensor, reporting to the shared workspace. ``encryption_at_host`` needs the
    subscription feature ``Microsoft.Compute/EncryptionAtHost`` registered. ``kubelogin_mode`` and
    ``deployer_principal_type`` describe who runs ``pulumi up``: a person after ``az login`` (``azurecli``,
    ``User``) or a pipeline (e.g. ``workloadidentity``, ``ServicePrincipal``; managed identities are
    service principals) - ARM refuses a role assignment whose principal type is wrong.
    """

    system_pool: NodePoolArgs = field(default_factory=lambda: NodePoolArgs(min_count=2, max_count=3))
    user_pool: NodePoolArgs = field(default_factory=lambda: NodePoolArgs(min_count=1, max_count=5))
    kubernetes_version: str | None = None
    node_subnet_id: pulumi.Input[str] | None = None
    private_cluster: bool = False
    authorized_ip_ranges: tuple[str, ...] = ()
    admin_group_object_ids: tuple[str, ...] = ()
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "172.16.0.0/16"
    dns_service_ip: str = "172.16.0.10"
    tier: Literal["Free", "Standard"] = "Standard"
    defender: bool = True
    encryption_at_host: bool = False
    kubelogin_mode: KubeloginMode = "azurecli"
    deployer_principal_type: Literal["User", "ServicePrincipal"] = "User"

    def __post_init__(self) -> None:
        if self.private_cluster and self.authorized_ip_ranges:
            raise ValueError("authorized_ip_ranges apply to a public API server; a private cluster has none")


def control_plane_identity(cluster: str) -> str:
    """The name of the identity of cluster ``cluster``'s control plane (a :class:`ManagedIdentity`)."""
    return f"{cluster}-control-plane"


class KubernetesCluster(Component):
    """An AKS cluster (``agentstage:azure:KubernetesCluster``) as the module docstring describes.

    Outputs: ``cluster_id``, ``cluster_name``, ``oidc_issuer_url`` (issuer of every federated credential),
    ``kubelet_object_id`` (the identity that pulls images: give it to ``ContainerRegistry.grant_pull``),
    and ``provider`` (a ``pulumi_kubernetes.Provider`` for this cluster).
    """

    def __init__(
        self, name: str, context: AzureContext, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("azure", "KubernetesCluster", name, opts)
        if context.workspace_id is None:
            raise ValueError(
                f"cluster '{name}' needs the shared workspace: build the observability block first"
            )
        self.label = name
        self._context = context
        control_plane = ManagedIdentity(control_plane_identity(name), context, opts=self.child())
        subnet_grant = (
            [
                assign_role(
                    f"{name}-subnet-join",
                    context=context,
                    scope=args.node_subnet_id,
                    role="Network Contributor",
                    identity=control_plane,
                    parent=self,
                )
            ]
            if args.node_subnet_id is not None
            else []
        )
        cluster_name = context.naming.name("kubernetes_cluster", name)
        cluster = containerservice.ManagedCluster(
            name,
            resource_name_=cluster_name,
            resource_group_name=context.resource_group_name,
            location=context.location,
            dns_prefix=cluster_name,
            kubernetes_version=args.kubernetes_version,
            sku=containerservice.ManagedClusterSKUArgs(name="Base", tier=args.tier),
            identity=containerservice.ManagedClusterIdentityArgs(
                type=containerservice.ResourceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[control_plane.resource_id],
            ),
            agent_pool_profiles=[_system_pool(args)],
            network_profile=containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin="azure",
                network_plugin_mode="overlay",
                network_dataplane="cilium",
                network_policy="cilium",
                pod_cidr=args.pod_cidr,
                service_cidr=args.service_cidr,
                dns_service_ip=args.dns_service_ip,
                load_balancer_sku="standard",
            ),
            disable_local_accounts=True,
            enable_rbac=True,
            aad_profile=containerservice.ManagedClusterAADProfileArgs(
                managed=True,
                enable_azure_rbac=True,
                tenant_id=context.tenant_id,
                admin_group_object_ids=list(args.admin_group_object_ids) or None,
            ),
            api_server_access_profile=containerservice.ManagedClusterAPIServerAccessProfileArgs(
                enable_private_cluster=True,
                enable_private_cluster_public_fqdn=False,
                private_dns_zone="system",
            )
            if args.private_cluster
            else containerservice.ManagedClusterAPIServerAccessProfileArgs(
                authorized_ip_ranges=list(args.authorized_ip_ranges) or None
            ),
            oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            security_profile=containerservice.ManagedClusterSecurityProfileArgs(
                workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(
                    enabled=True
                ),
                image_cleaner=containerservice.ManagedClusterSecurityProfileImageCleanerArgs(
                    enabled=True, interval_hours=168
                ),
                defender=containerservice.ManagedClusterSecurityProfileDefenderArgs(
                    log_analytics_workspace_resource_id=context.workspace_id,
                    security_monitoring=containerservice.ManagedClusterSecurityProfileDefenderSecurityMonitoringArgs(
                        enabled=True
                    ),
                )
                if args.defender
                else None,
            ),
            workload_auto_scaler_profile=containerservice.ManagedClusterWorkloadAutoScalerProfileArgs(
                keda=containerservice.ManagedClusterWorkloadAutoScalerProfileKedaArgs(enabled=True)
            ),
            addon_profiles={
                "azurepolicy": containerservice.ManagedClusterAddonProfileArgs(enabled=True),
                "omsagent": containerservice.ManagedClusterAddonProfileArgs(
                    enabled=True,
                    config={"logAnalyticsWorkspaceResourceID": context.workspace_id, "useAADAuth": "true"},
                ),
            },
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel="stable", node_os_upgrade_channel="NodeImage"
            ),
            support_plan="KubernetesOfficial",
            tags=dict(context.tags),
            opts=self.child(depends_on=subnet_grant),
        )
        containerservice.AgentPool(
            f"{name}-user-pool",
            agent_pool_name="agents",
            resource_name_=cluster.name,
            resource_group_name=context.resource_group_name,
            mode="User",
            **_pool_settings(args.user_pool, args),
            opts=self.child(),
        )
        self._cluster = cluster
        self.cluster_id: pulumi.Output[str] = cluster.id
        self.cluster_name: pulumi.Output[str] = cluster.name
        # Both exist once AKS has created the cluster (unknown in its first preview).
        self.oidc_issuer_url: pulumi.Output[str] = cluster.oidc_issuer_profile.apply(
            lambda profile: profile.issuer_url if profile else None  # type: ignore[arg-type,return-value]
        )
        self.kubelet_object_id: pulumi.Output[str] = cluster.identity_profile.apply(
            lambda profiles: profiles["kubeletidentity"].object_id if profiles else None  # type: ignore[arg-type,return-value]
        )
        self._container_insights(name, cluster)
        send_diagnostics(
            name, context=context, resource_id=cluster.id, parent=self, log_category_groups=("audit",)
        )
        deployer = assign_role_to_principal(
            f"{name}-deployer-admin",
            context=context,
            scope=cluster.id,
            role="Azure Kubernetes Service RBAC Cluster Admin",
            principal_id=authorization.get_client_config_output(
                opts=pulumi.InvokeOutputOptions(parent=self)
            ).object_id,
            description="Kubernetes API access for the principal running pulumi up",
            parent=self,
            principal_type=args.deployer_principal_type,
        )
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=context.resource_group_name,
            resource_name=cluster.name,
            format="exec",
            opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[deployer]),
        )
        kubeconfig: pulumi.Output[str] = credentials.kubeconfigs.apply(
            lambda configs: kubeconfig_for(configs[0].value, args.kubelogin_mode)
        )
        self.provider: k8s.Provider = k8s.Provider(
            f"{name}-provider",
            # Not a credential (kubelogin fetches tokens), but it names the API server of a private cluster.
            kubeconfig=pulumi.Output.secret(kubeconfig),  # type: ignore[arg-type]  # mypy infers Never for T
            opts=self.child(depends_on=[deployer]),
        )
        self.register_outputs(
            {
                "cluster_id": self.cluster_id,
                "cluster_name": self.cluster_name,
                "oidc_issuer_url": self.oidc_issuer_url,
                "kubelet_object_id": self.kubelet_object_id,
            }
        )

    def _container_insights(self, name: str, cluster: containerservice.ManagedCluster) -> None:
        """Container Insights with managed identity auth needs a data collection rule tied to the cluster."""
        context = self._context
        rule = monitor.DataCollectionRule(
            f"{name}-container-insights",
            data_collection_rule_name=context.naming.name("data_collection_rule", f"{name}-ci"),
            resource_group_name=context.resource_group_name,
            location=context.location,
            kind="Linux",
            data_sources=monitor.DataCollectionRuleDataSourcesArgs(
                extensions=[
                    monitor.ExtensionDataSourceArgs(
                        name="ContainerInsightsExtension",
                        extension_name="ContainerInsights",
                        streams=[CONTAINER_INSIGHTS_STREAM],
                        extension_settings={
                            "dataCollectionSettings": {
                                "interval": "1m",
                                "namespaceFilteringMode": "Off",
                                "enableContainerLogV2": True,
                            }
                        },
                    )
                ]
            ),
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                log_analytics=[
                    monitor.LogAnalyticsDestinationArgs(
                        name="workspace", workspace_resource_id=context.workspace_id
                    )
                ]
            ),
            data_flows=[
                monitor.DataFlowArgs(streams=[CONTAINER_INSIGHTS_STREAM], destinations=["workspace"])
            ],
            tags=dict(context.tags),
            opts=self.child(),
        )
        monitor.DataCollectionRuleAssociation(
            f"{name}-container-insights",
            association_name="ContainerInsightsExtension",
            resource_uri=cluster.id,
            data_collection_rule_id=rule.id,
            opts=self.child(),
        )

    def federate(
        self, identity: ManagedIdentity, namespace: str, service_account: str
    ) -> managedidentity.FederatedIdentityCredential:
        """Let pods running as ``namespace/service_account`` on this cluster obtain ``identity``'s tokens.

        The credential trusts exactly one subject of this cluster's OIDC issuer, so no other service
        account - on this cluster or any other - can act as the identity. ``identity`` lives in the
        cluster's resource group, as every agentstage identity does.
        """
        return managedidentity.FederatedIdentityCredential(
            f"{self.label}-{namespace}-{service_account}-federation",
            # The identity's own name, read from its id: the last segment of an ARM resource id.
            resource_name_=identity.resource_id.apply(lambda resource_id: resource_id.rsplit("/", 1)[-1]),
            resource_group_name=self._context.resource_group_name,
            federated_identity_credential_resource_name=f"{self.label}-{namespace}-{service_account}",
            issuer=self.oidc_issuer_url,
            subject=f"system:serviceaccount:{namespace}:{service_account}",
            audiences=[TOKEN_EXCHANGE_AUDIENCE],
            # The issuer exists only once the cluster does; say so even where the URL is not known yet.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self._cluster]),
        )

    def federate_keda_operator(
        self, identity: ManagedIdentity
    ) -> managedidentity.FederatedIdentityCredential:
        """Let the KEDA add-on's operator act as ``identity`` when it reads queue lengths.

        ``identity`` is the one the scaler's ``TriggerAuthentication`` names (``identityId``); grant it the
        queue-reading role (Service Bus: "Azure Service Bus Data Owner" on the queue) and nothing else.
        """
        return self.federate(identity, KEDA_NAMESPACE, KEDA_SERVICE_ACCOUNT)


def _pool_settings(pool: NodePoolArgs, args: ClusterArgs) -> dict[str, Any]:
    """The settings a system and a user pool share, as keyword arguments of either pool type."""
    return {
        "vm_size": pool.vm_size,
        "enable_auto_scaling": True,
        "count": pool.min_count,
        "min_count": pool.min_count,
        "max_count": pool.max_count,
        "availability_zones": list(pool.zones) or None,
        "os_type": "Linux",
        "os_sku": "AzureLinux",
        "os_disk_type": pool.os_disk_type,
        "os_disk_size_gb": pool.os_disk_size_gb,
        "max_pods": pool.max_pods,
        "type": "VirtualMachineScaleSets",
        "vnet_subnet_id": args.node_subnet_id,
        "enable_encryption_at_host": args.encryption_at_host,
        "enable_node_public_ip": False,
        "orchestrator_version": args.kubernetes_version,
        "upgrade_settings": containerservice.AgentPoolUpgradeSettingsArgs(max_surge="33%"),
    }


def _system_pool(args: ClusterArgs) -> containerservice.ManagedClusterAgentPoolProfileArgs:
    """The system pool: only critical add-ons (CoreDNS, KEDA, the Policy agent) schedule onto it."""
    return containerservice.ManagedClusterAgentPoolProfileArgs(
        name="system",
        mode="System",
        node_taints=["CriticalAddonsOnly=true:NoSchedule"],
        **_pool_settings(args.system_pool, args),
    )


# Flags the exec arguments lose: the login mode is set anew; the public client id (AKS's own, used only by
# interactive logins) would otherwise override AZURE_CLIENT_ID in the spn and workloadidentity modes.
_REPLACED_FLAGS = frozenset({"--login", "-l", "--client-id"})


def kubeconfig_for(encoded: str, mode: KubeloginMode) -> str:
    """The cluster's exec-format kubeconfig (base64, as ARM returns it) set to log in with ``mode``.

    AKS returns ``kubelogin get-token --login devicecode ...``, which waits for a person at a browser.
    As ``kubelogin convert-kubeconfig -l <mode>`` does, the login mode is replaced and, outside the
    interactive modes, the public client id dropped; the server id (the AKS AAD server application),
    tenant and environment stay.
    """
    config = yaml.safe_load(base64.b64decode(encoded))
    for user in config.get("users") or []:
        exec_config = (user.get("user") or {}).get("exec")
        if not exec_config or "kubelogin" not in str(exec_config.get("command", "")):
            continue
        exec_config["args"] = _with_login(list(exec_config.get("args") or []), mode)
    return yaml.safe_dump(config, sort_keys=False)


def _with_login(arguments: Sequence[str], mode: KubeloginMode) -> list[str]:
    """``arguments`` without their login mode and public client id (``--flag value`` or ``--flag=value``)."""
    kept: list[str] = []
    skip_value = False
    for argument in arguments:
        if skip_value:
            skip_value = False
        elif argument in _REPLACED_FLAGS:
            skip_value = True
        elif argument.split("=", 1)[0] not in _REPLACED_FLAGS:
            kept.append(argument)
    return [*kept, "--login", mode]
