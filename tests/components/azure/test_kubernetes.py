"""AKS: Entra ID only, Workload ID, Cilium overlay, KEDA and Policy add-ons, insights, and a provider to deploy with."""

from __future__ import annotations

import base64

import pytest
import yaml
from pulumi.runtime import rpc

from components.azure.identity import ManagedIdentity
from components.azure.kubernetes import ClusterArgs, KubernetesCluster, NodePoolArgs, kubeconfig_for
from components.azure.registry import ContainerRegistry
from components.azure.role_ids import BUILTIN_ROLES
from components.kubernetes.identity import azure_workload_identity
from components.kubernetes.namespace import AgentNamespace, AgentNamespaceArgs
from components.kubernetes.workload import AgentWorkload, AgentWorkloadArgs
from core.graph import UNKNOWN, ResourceGraph
from core.mocks import OfflineMocks
from core.mocks import azure as azure_mocks

CLUSTER = "azure-native:containerservice:ManagedCluster"
AGENT_POOL = "azure-native:containerservice:AgentPool"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
FEDERATION = "azure-native:managedidentity:FederatedIdentityCredential"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
DCR = "azure-native:monitor:DataCollectionRule"
DCR_ASSOCIATION = "azure-native:monitor:DataCollectionRuleAssociation"
PROVIDER = "pulumi:providers:kubernetes"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
SUBNET_ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes"
ADMINS = ("00000000-0000-0000-0000-0000000ad001",)
DEPLOYER_OBJECT_ID = azure_mocks.INVOKES["azure-native:authorization:getClientConfig"]["objectId"]
CREDENTIALS = "azure-native:containerservice:listManagedClusterUserCredentials"
IMAGE = "cragsttest.azurecr.io/agentstage-runtime:1.0.0"
ISSUER = "https://westeurope.oic.prod-aks.azure.com/00000000-0000-0000-0000-0000000000aa/1b2c3d4e/"
KUBELET_OBJECT_ID = "00000000-0000-0000-0000-0000000cb1e7"


class _CreatedCluster(azure_mocks.AzureProfile):
    """The offline engine, plus the outputs ARM returns once a cluster exists (issuer URL, kubelet identity).

    A preview of a new cluster knows neither, so only this "second run" shows where each one is wired.
    """

    def new_resource(self, args):
        resource_id, state = super().new_resource(args)
        if args.typ == CLUSTER:
            state["oidcIssuerProfile"] = {"enabled": True, "issuerURL": ISSUER}
            state["identityProfile"] = {"kubeletidentity": {"objectId": KUBELET_OBJECT_ID}}
        return resource_id, state


@pytest.fixture(scope="module", autouse=True)
def _credentials_pending_creation():
    """Answer the kubeconfig invoke as a real first preview does: unknown, the cluster is pending creation.

    The offline engine answers only ``getClientConfig``; the real engine gates an output-form invoke on
    its dependencies and returns an unknown result while they are being created.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(
            azure_mocks.INVOKES,
            CREDENTIALS,
            {"kubeconfigs": [{"name": "clusterUser", "value": rpc.UNKNOWN}]},
        )
        yield


def _cluster_factory(args: ClusterArgs):
    def factory(context, identity):
        cluster = KubernetesCluster("aks", context, args)
        cluster.federate(identity, "agents", "research-worker")
        cluster.federate_keda_operator(ManagedIdentity("keda", context))
        registry = ContainerRegistry("images", context)
        registry.grant_pull(cluster.kubelet_object_id)

    return factory


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    args = ClusterArgs(
        node_subnet_id=SUBNET_ID, admin_group_object_ids=ADMINS, authorized_ip_ranges=("203.0.113.0/24",)
    )
    return build(_cluster_factory(args))


@pytest.fixture(scope="module")
def private(build) -> ResourceGraph:
    return build(_cluster_factory(ClusterArgs(private_cluster=True, defender=False)), isolated=True)


@pytest.fixture(scope="module")
def created(build) -> ResourceGraph:
    return build(_cluster_factory(ClusterArgs()), mocks=OfflineMocks([_CreatedCluster()]))


def test_only_entra_id_reaches_the_api(graph, only, build) -> None:
    cluster = only(graph, CLUSTER)
    assert cluster.get("disableLocalAccounts") is True, cluster.urn
    assert cluster.get("enableRBAC") is True, cluster.urn
    assert cluster.get("aadProfile") == {
        "managed": True,
        "enableAzureRBAC": True,
        "tenantID": build.tenant_id,
        "adminGroupObjectIDs": list(ADMINS),
    }, cluster.urn


def test_workload_identity_and_oidc_issuer_are_on(graph, only) -> None:
    cluster = only(graph, CLUSTER)
    assert cluster.get("oidcIssuerProfile.enabled") is True, cluster.urn
    assert cluster.get("securityProfile.workloadIdentity.enabled") is True, cluster.urn


def test_network_is_cilium_on_azure_cni_overlay(graph, only) -> None:
    profile = only(graph, CLUSTER).get("networkProfile")
    assert (profile["networkPlugin"], profile["networkPluginMode"]) == ("azure", "overlay")
    assert (profile["networkDataplane"], profile["networkPolicy"]) == ("cilium", "cilium")
    assert (profile["podCidr"], profile["serviceCidr"], profile["dnsServiceIP"]) == (
        "10.244.0.0/16",
        "172.16.0.0/16",
        "172.16.0.10",
    )


def test_keda_policy_and_container_insights_add_ons(graph, only, build) -> None:
    cluster = only(graph, CLUSTER)
    assert cluster.get("workloadAutoScalerProfile.keda.enabled") is True, cluster.urn
    addons = cluster.get("addonProfiles")
    assert addons["azurepolicy"]["enabled"] is True
    assert addons["omsagent"] == {
        "enabled": True,
        "config": {"logAnalyticsWorkspaceResourceID": build.workspace_id, "useAADAuth": "true"},
    }
    assert cluster.get("securityProfile.defender.logAnalyticsWorkspaceResourceId") == build.workspace_id


def test_container_insights_collects_into_the_shared_workspace(graph, only, build) -> None:
    rule = only(graph, DCR)
    assert rule.get("destinations.logAnalytics") == [
        {"name": "workspace", "workspaceResourceId": build.workspace_id}
    ]
    assert rule.get("dataFlows") == [
        {"streams": ["Microsoft-ContainerInsights-Group-Default"], "destinations": ["workspace"]}
    ]
    association = only(graph, DCR_ASSOCIATION)
    assert association.get("resourceUri") == only(graph, CLUSTER).mock_id
    assert association.get("dataCollectionRuleId") == rule.mock_id


def test_audit_logs_go_to_the_workspace(graph, only, build, assert_diagnostics) -> None:
    cluster = only(graph, CLUSTER)
    assert_diagnostics(graph, cluster, build.workspace_id)
    (setting,) = [
        d
        for d in graph.of_type("azure-native:monitor:DiagnosticSetting")
        if d.get("resourceUri") == cluster.mock_id
    ]
    assert setting.get("logs") == [{"categoryGroup": "audit", "enabled": True}]


def test_cluster_upgrades_itself(graph, only) -> None:
    assert only(graph, CLUSTER).get("autoUpgradeProfile") == {
        "upgradeChannel": "stable",
        "nodeOSUpgradeChannel": "NodeImage",
    }


def test_system_and_user_pools_autoscale(graph, only) -> None:
    cluster = only(graph, CLUSTER)
    (system,) = cluster.get("agentPoolProfiles")
    assert (system["name"], system["mode"]) == ("system", "System")
    assert system["nodeTaints"] == ["CriticalAddonsOnly=true:NoSchedule"]
    user = only(graph, AGENT_POOL)
    assert user.get("mode") == "User" and user.get("resourceName") == cluster.get("resourceName"), user.urn
    for pool, (low, high) in ((system, (2, 3)), (user.inputs, (1, 5))):
        assert pool["enableAutoScaling"] is True
        assert (pool["minCount"], pool["maxCount"], pool["count"]) == (low, high, low)
        assert pool["availabilityZones"] == ["1", "2", "3"]
        assert (pool["osDiskType"], pool["osSKU"], pool["enableNodePublicIP"]) == (
            "Ephemeral",
            "AzureLinux",
            False,
        )
        assert pool["vnetSubnetID"] == SUBNET_ID


def test_control_plane_identity_joins_the_node_subnet_before_the_cluster(graph, only) -> None:
    cluster = only(graph, CLUSTER)
    (control_plane,) = [i for i in graph.of_type(IDENTITY) if i.name == "aks-control-plane"]
    assert cluster.get("identity") == {
        "type": "UserAssigned",
        "userAssignedIdentities": [control_plane.mock_id],
    }
    (grant,) = [a for a in graph.of_type(ROLE_ASSIGNMENT) if a.get("scope") == SUBNET_ID]
    assert grant.get("roleDefinitionId").endswith(BUILTIN_ROLES["Network Contributor"]), grant.urn
    assert grant.urn in cluster.dependencies, "nodes join the subnet only once the grant exists"


def test_public_api_server_is_limited_to_authorized_ranges(graph, only) -> None:
    assert only(graph, CLUSTER).get("apiServerAccessProfile") == {"authorizedIPRanges": ["203.0.113.0/24"]}


def test_private_cluster_has_no_public_endpoint(private, only) -> None:
    cluster = only(private, CLUSTER)
    assert cluster.get("apiServerAccessProfile") == {
        "enablePrivateCluster": True,
        "enablePrivateClusterPublicFQDN": False,
        "privateDNSZone": "system",
    }, cluster.urn
    assert cluster.get("securityProfile.defender") is None
    assert not [a for a in private.of_type(ROLE_ASSIGNMENT) if "Network" in (a.get("description") or "")]


def test_deployer_is_cluster_admin_on_this_cluster_only(graph, only) -> None:
    cluster = only(graph, CLUSTER)
    (admin,) = [a for a in graph.of_type(ROLE_ASSIGNMENT) if a.get("principalId") == DEPLOYER_OBJECT_ID]
    assert admin.get("roleDefinitionId").endswith(
        BUILTIN_ROLES["Azure Kubernetes Service RBAC Cluster Admin"]
    )
    assert admin.get("scope") == cluster.mock_id and admin.get("principalType") == "User", admin.urn
    provider = only(graph, PROVIDER)
    assert provider.get("kubeconfig") in (UNKNOWN, "<secret>"), provider.urn
    assert admin.urn in provider.dependencies, "the provider must not be used before the deployer may"


def _acr_pull(graph: ResourceGraph):
    (pull,) = [
        a
        for a in graph.of_type(ROLE_ASSIGNMENT)
        if a.get("roleDefinitionId").endswith(BUILTIN_ROLES["AcrPull"])
    ]
    return pull


def test_acr_pull_goes_to_the_kubelet_identity(graph, created, only) -> None:
    pull = _acr_pull(graph)
    assert pull.get("scope") == only(graph, "azure-native:containerregistry:Registry").mock_id
    assert pull.get("principalId") == UNKNOWN, "the kubelet identity exists only once AKS has created it"
    assert only(graph, CLUSTER).urn in pull.dependencies, pull.urn
    assert _acr_pull(created).get("principalId") == KUBELET_OBJECT_ID


@pytest.mark.parametrize(
    ("identity", "subject"),
    [
        ("agent", "system:serviceaccount:agents:research-worker"),
        ("keda", "system:serviceaccount:kube-system:keda-operator"),
    ],
)
def test_federated_credentials_trust_one_service_account_of_this_cluster(
    graph, only, build, identity, subject
) -> None:
    (credential,) = [f for f in graph.of_type(FEDERATION) if f.get("subject") == subject]
    assert credential.get("audiences") == ["api://AzureADTokenExchange"], credential.urn
    assert credential.get("resourceGroupName") == "rg-agentstage-test", credential.urn
    # The issuer is the cluster's OIDC issuer URL, an output only a created cluster has.
    assert only(graph, CLUSTER).urn in credential.dependencies, credential.urn
    (owner,) = [i for i in graph.of_type(IDENTITY) if i.name == identity]
    assert owner.urn in credential.dependencies, credential.urn


def test_federated_credentials_name_the_cluster_issuer(created) -> None:
    credentials = created.of_type(FEDERATION)
    assert len(credentials) == 2
    for credential in credentials:
        assert credential.get("issuer") == ISSUER, credential.urn


def test_workloads_deploy_through_the_cluster_provider_as_their_identity(build, only) -> None:
    def factory(context, identity):
        cluster = KubernetesCluster("aks", context, ClusterArgs())
        namespace = AgentNamespace("agents", AgentNamespaceArgs(name="agents"), cluster.provider)
        AgentWorkload(
            "research",
            AgentWorkloadArgs(
                namespace=namespace.name,
                image=IMAGE,
                env={},
                identity=azure_workload_identity(identity.client_id),
            ),
            cluster.provider,
        )
        cluster.federate(identity, "agents", "research")

    graph = build(factory)
    provider = only(graph, PROVIDER)
    kubernetes = [r for r in graph.resources if r.type.startswith("kubernetes:")]
    assert kubernetes and all(r.provider == provider.urn for r in kubernetes)
    account = only(graph, SERVICE_ACCOUNT)
    (agent,) = [i for i in graph.of_type(IDENTITY) if i.name == "agent"]
    assert agent.urn in account.dependencies, "the annotation is the agent identity's client id"
    (credential,) = graph.of_type(FEDERATION)
    namespace, name = account.get("metadata.namespace"), account.get("metadata.name")
    assert credential.get("subject") == f"system:serviceaccount:{namespace}:{name}"


def _kubeconfig(args: list[str]) -> str:
    config = {
        "apiVersion": "v1",
        "clusters": [{"name": "aks", "cluster": {"server": "https://aks.example:443"}}],
        "users": [
            {
                "name": "clusterUser_rg_aks",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "kubelogin",
                        "args": args,
                    }
                },
            }
        ],
    }
    return base64.b64encode(yaml.safe_dump(config).encode()).decode()


def test_kubeconfig_login_mode_is_rewritten_like_kubelogin_convert() -> None:
    aks_args = [
        "get-token", "--login", "devicecode", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630",
        "--client-id=80faf920-1908-4b52-b5ef-a8e7bedfc67a", "--tenant-id", "tenant", "--environment", "AzurePublicCloud",
    ]  # fmt: skip
    converted = yaml.safe_load(kubeconfig_for(_kubeconfig(aks_args), "workloadidentity"))
    assert converted["users"][0]["user"]["exec"]["args"] == [
        "get-token", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630", "--tenant-id", "tenant",
        "--environment", "AzurePublicCloud", "--login", "workloadidentity",
    ]  # fmt: skip
    assert converted["clusters"] == [{"name": "aks", "cluster": {"server": "https://aks.example:443"}}]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: NodePoolArgs(min_count=4, max_count=3), "min_count <= max_count"),
        (lambda: NodePoolArgs(max_pods=20), "max_pods"),
        (
            lambda: ClusterArgs(private_cluster=True, authorized_ip_ranges=("1.2.3.4/32",)),
            "private cluster has none",
        ),
    ],
)
def test_impossible_cluster_settings_are_refused(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_cluster_needs_the_shared_workspace(build) -> None:
    with pytest.raises(Exception, match="needs the shared workspace"):
        build(lambda context, identity: KubernetesCluster("aks", context, ClusterArgs()), workspace_id=None)
