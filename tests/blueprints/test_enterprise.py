"""The enterprise stacks: nothing data-bearing is public, every private endpoint resolves, the hybrid agents
keep least privilege, and KEDA scales each worker on its own queue.

Built offline from stacks/Pulumi.enterprise-prod.yaml and stacks/Pulumi.enterprise-k8s.yaml.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent_runtime.settings_contract import env_name
from blueprints.foundation import INGEST, INGEST_QUEUE, task_queue
from core.graph import Resource, ResourceGraph
from tests.blueprints.graph_queries import app_settings, by_name, grants, runtime_catalog

STACK = "enterprise-prod"
ORCHESTRATOR, CONTAINERIZED, SERVERLESS = "orchestrator", "research", "analyst"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PRIVATE_ENDPOINT = "azure-native:network:PrivateEndpoint"
ZONE_GROUP = "azure-native:network:PrivateDnsZoneGroup"

# Every data service type and the private endpoint group it must be reached through.
DATA_SERVICES = {
    "azure-native:cognitiveservices:Account": "account",
    "azure-native:search:Service": "searchService",
    "azure-native:cosmosdb:DatabaseAccount": "Sql",
    "azure-native:servicebus:Namespace": "namespace",
    "azure-native:keyvault:Vault": "vault",
    "azure-native:storage:StorageAccount": "blob",
    "azure-native:containerregistry:Registry": "registry",
    "azure-native:web:WebApp": "sites",
}


@pytest.fixture(scope="module")
def graph(stack_graph: Callable[[str], ResourceGraph]) -> ResourceGraph:
    return stack_graph(STACK)


def public_access(resource: Resource) -> object:
    for key in ("publicNetworkAccess", "properties.publicNetworkAccess"):
        value = resource.get(key)
        if value is not None:
            return value
    return None


@pytest.mark.parametrize("type_", sorted(DATA_SERVICES))
def test_no_data_service_is_public(graph: ResourceGraph, type_: str) -> None:
    services = graph.of_type(type_)
    assert services, f"the enterprise stack has no {type_}"
    for service in services:
        assert public_access(service) == "Disabled", service.urn


@pytest.mark.parametrize("type_", sorted(DATA_SERVICES))
def test_every_data_service_has_a_private_endpoint_of_its_group(graph: ResourceGraph, type_: str) -> None:
    reached = {}
    for endpoint in graph.of_type(PRIVATE_ENDPOINT):
        for connection in endpoint.get("privateLinkServiceConnections"):
            target = graph.by_mock_id(connection["privateLinkServiceId"])
            if target is not None:
                reached.setdefault(target.urn, set()).update(connection["groupIds"])
    for service in graph.of_type(type_):
        assert DATA_SERVICES[type_] in reached.get(service.urn, set()), (
            f"{service.urn} has no private endpoint"
        )


def test_every_private_endpoint_resolves_through_a_linked_zone(graph: ResourceGraph) -> None:
    endpoints = graph.of_type(PRIVATE_ENDPOINT)
    groups = {g.get("privateEndpointName"): g for g in graph.of_type(ZONE_GROUP)}
    linked_zones = {
        graph.by_mock_id(link.get("privateZoneName")) or link.get("privateZoneName")
        for link in graph.of_type("azure-native:privatedns:VirtualNetworkLink")
    }
    linked_zone_names = {z.get("privateZoneName") if isinstance(z, Resource) else z for z in linked_zones}
    assert len(endpoints) >= len(DATA_SERVICES)
    for endpoint in endpoints:
        group = groups.get(endpoint.get("privateEndpointName"))
        assert group is not None, f"{endpoint.urn} has no DNS zone group"
        for config in group.get("privateDnsZoneConfigs"):
            zone = graph.by_mock_id(config["privateDnsZoneId"])
            assert zone is not None, f"{endpoint.urn}: its zone is not in the stack"
            assert zone.get("privateZoneName") in linked_zone_names, f"{zone.urn} is not linked to the VNet"


def test_function_apps_and_gateway_join_their_subnets(graph: ResourceGraph) -> None:
    subnets = {s.name: s.mock_id for s in graph.of_type("azure-native:network:Subnet")}
    for app in graph.of_type("azure-native:web:WebApp"):
        assert app.get("virtualNetworkSubnetId") == subnets["network-functions"], app.urn
    gateway = by_name(graph, "azure-native:apimanagement:ApiManagementService", "gateway")
    assert gateway.get("virtualNetworkType") == "External"
    assert gateway.get("virtualNetworkConfiguration.subnetResourceId") == subnets["network-gateway"]
    assert gateway.get("sku.name") == "StandardV2"
    cluster = by_name(graph, "azure-native:containerservice:ManagedCluster", "cluster")
    for pool in cluster.get("agentPoolProfiles"):
        assert pool["vnetSubnetID"] == subnets["network-aks"], pool["name"]


def test_hybrid_agents_containerized_research_serverless_analyst(graph: ResourceGraph) -> None:
    apps = {r.name for r in graph.of_type("azure-native:web:WebApp")}
    assert apps == {f"{ORCHESTRATOR}-app", f"{SERVERLESS}-app", f"{INGEST}-app"}
    assert [d.get("metadata.name") for d in graph.of_type(DEPLOYMENT)] == [CONTAINERIZED]


def test_the_worker_runs_as_its_agent_identity_through_workload_id(graph: ResourceGraph) -> None:
    (account,) = graph.of_type("kubernetes:core/v1:ServiceAccount")
    research = by_name(graph, "azure-native:managedidentity:UserAssignedIdentity", CONTAINERIZED)
    assert "azure.workload.identity/client-id" in account.get("metadata.annotations")
    identities = [u for u in account.dependencies if "UserAssignedIdentity" in u]
    assert identities == [research.urn], "the service account carries the agent's own identity, no other"
    federations = {
        f.get("subject"): f for f in graph.of_type("azure-native:managedidentity:FederatedIdentityCredential")
    }
    assert set(federations) == {
        f"system:serviceaccount:agents:{CONTAINERIZED}",
        "system:serviceaccount:kube-system:keda-operator",
    }
    cluster = by_name(graph, "azure-native:containerservice:ManagedCluster", "cluster")
    for federation in federations.values():
        assert cluster.urn in federation.dependencies, "the issuer is the cluster's OIDC issuer"
    assert research.urn in federations[f"system:serviceaccount:agents:{CONTAINERIZED}"].dependencies
    scaler = by_name(graph, "azure-native:managedidentity:UserAssignedIdentity", f"{CONTAINERIZED}-scaler")
    assert scaler.urn in federations["system:serviceaccount:kube-system:keda-operator"].dependencies


def test_each_identity_reaches_only_its_queue_its_memory_and_shared_services(graph: ResourceGraph) -> None:
    held = grants(graph)
    assert held[CONTAINERIZED] == {
        ("Azure Service Bus Data Receiver", f"bus-queue-{task_queue(CONTAINERIZED)}"),
        ("Azure Service Bus Data Sender", f"bus-queue-{task_queue(CONTAINERIZED)}"),
        ("Search Index Data Reader", "search-service"),
        ("Key Vault Secrets User", "secrets-vault"),
        ("Monitoring Metrics Publisher", "observability-app-insights"),
    }, "a containerized agent has no Function App storage, and nothing more"
    assert held[SERVERLESS] == {
        ("Azure Service Bus Data Receiver", f"bus-queue-{task_queue(SERVERLESS)}"),
        ("Azure Service Bus Data Sender", f"bus-queue-{task_queue(SERVERLESS)}"),
        ("Search Index Data Reader", "search-service"),
        ("Key Vault Secrets User", "secrets-vault"),
        ("Monitoring Metrics Publisher", "observability-app-insights"),
        ("Storage Blob Data Owner", f"{SERVERLESS}-storage"),
    }
    models = {h for h, roles in held.items() for role, _ in roles if role == "Cognitive Services OpenAI User"}
    assert models == {"gateway"}, "agents reach the models only through the gateway"


def test_event_grid_reaches_the_private_bus_as_a_trusted_service(graph: ResourceGraph) -> None:
    """Event Grid cannot deliver through a private endpoint; the namespace stays private and lets it through
    as a trusted service, with the system topic's identity holding Data Sender on the ingest queue alone."""
    namespace = by_name(graph, "azure-native:servicebus:Namespace", "bus-namespace")
    rules = by_name(graph, "azure-native:servicebus:NamespaceNetworkRuleSet", "bus-network-rules")
    assert namespace.get("publicNetworkAccess") == "Disabled"
    assert {key: rules.get(key) for key in rules.inputs if key != "resourceGroupName"} == {
        "namespaceName": namespace.get("namespaceName"),
        "publicNetworkAccess": "Disabled",
        "defaultAction": "Deny",
        "ipRules": [],
        "virtualNetworkRules": [],
        "trustedServiceAccessEnabled": True,
    }
    assert grants(graph)[f"bus-send-{INGEST_QUEUE}-documents-events"] == {
        ("Azure Service Bus Data Sender", f"bus-queue-{INGEST_QUEUE}")
    }


def test_documents_are_private_and_zone_redundant_and_only_the_worker_reads_them(
    graph: ResourceGraph,
) -> None:
    account = by_name(graph, "azure-native:storage:StorageAccount", "documents-account")
    assert (account.get("publicNetworkAccess"), account.get("sku.name")) == ("Disabled", "Standard_ZRS")
    endpoint = by_name(graph, PRIVATE_ENDPOINT, "network-documents-blob")
    (connection,) = endpoint.get("privateLinkServiceConnections")
    assert (connection["privateLinkServiceId"], connection["groupIds"]) == (account.mock_id, ["blob"])
    assert grants(graph)[INGEST] == {
        ("Storage Blob Data Reader", "documents-container"),
        ("Search Index Data Contributor", "search-service"),
        ("Search Service Contributor", "search-service"),
        ("Azure Service Bus Data Receiver", f"bus-queue-{INGEST_QUEUE}"),
        ("Monitoring Metrics Publisher", "observability-app-insights"),
        ("Storage Blob Data Owner", f"{INGEST}-storage"),
    }


def test_the_ingestion_worker_scales_to_zero_where_the_agents_stay_warm_in_every_zone(
    graph: ResourceGraph,
) -> None:
    """A background app: documents wait in the queue, so it keeps no instance warm and no zone copy."""
    for app, warm in ((SERVERLESS, True), (INGEST, False)):
        plan = by_name(graph, "azure-native:web:AppServicePlan", f"{app}-plan")
        scale = by_name(graph, "azure-native:web:WebApp", f"{app}-app").get(
            "functionAppConfig.scaleAndConcurrency"
        )
        assert plan.get("zoneRedundant") is warm, plan.urn
        assert bool(scale.get("alwaysReady")) is warm, app


def test_the_queue_reader_is_its_own_identity_scoped_to_one_queue(graph: ResourceGraph) -> None:
    held = grants(graph)
    assert held[f"{CONTAINERIZED}-scaler"] == {
        ("Azure Service Bus Data Owner", f"bus-queue-{task_queue(CONTAINERIZED)}")
    }
    owners = {h for h, roles in held.items() for role, _ in roles if role == "Azure Service Bus Data Owner"}
    assert owners == {f"{CONTAINERIZED}-scaler"}


def test_only_the_kubelet_pulls_images(graph: ResourceGraph) -> None:
    pulls = {h for h, roles in grants(graph).items() for role, _ in roles if role == "AcrPull"}
    assert len(pulls) == 1 and "kubelet" in next(iter(pulls))


def test_keda_scales_the_worker_on_its_own_queue(graph: ResourceGraph) -> None:
    (scaled,) = graph.of_type(SCALED_OBJECT)
    (trigger,) = scaled.get("spec.triggers")
    namespace = by_name(graph, "azure-native:servicebus:Namespace", "bus-namespace")
    assert trigger["type"] == "azure-servicebus"
    assert trigger["metadata"]["queueName"] == task_queue(CONTAINERIZED)
    assert trigger["metadata"]["namespace"] == namespace.get("namespaceName")
    assert trigger["metadata"]["messageCount"] == "5"
    assert scaled.get("spec.minReplicaCount") == 0 and scaled.get("spec.maxReplicaCount") == 20
    assert scaled.get("spec.scaleTargetRef.name") == CONTAINERIZED


def test_the_worker_gets_the_same_settings_as_a_serverless_agent(graph: ResourceGraph) -> None:
    (deployment,) = graph.of_type(DEPLOYMENT)
    (container,) = deployment.get("spec.template.spec.containers")
    env = {e["name"]: e.get("value") for e in container["env"]}
    serverless = app_settings(graph, SERVERLESS)
    shared = (
        "llm_endpoint",
        "llm_token_scope",
        "bus_backend",
        "servicebus_namespace",
        "bus_max_delivery_count",
        "auth_mode",
    )
    knowledge = ("knowledge_backend", "search_endpoint", "knowledge_index")
    for name in (*shared, *knowledge):
        assert env[env_name(name)] == serverless[env_name(name)], name
    assert env[env_name("task_queue")] == task_queue(CONTAINERIZED)
    assert env[env_name("sqlite_path")].startswith("/tmp/")
    assert container["command"] == ["python", "-m", "agent_runtime.worker"]
    literal = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert [agent.name for agent in runtime_catalog(literal)] == [CONTAINERIZED], "the worker would start"


def test_the_worker_pod_is_hardened(graph: ResourceGraph) -> None:
    (deployment,) = graph.of_type(DEPLOYMENT)
    pod = deployment.get("spec.template.spec")
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(container["resources"])
    assert container["livenessProbe"] and container["readinessProbe"]


def test_function_apps_consume_their_queue_through_the_trigger_with_their_identity(
    graph: ResourceGraph,
) -> None:
    for app in (ORCHESTRATOR, SERVERLESS, INGEST):
        settings = app_settings(graph, app)
        assert settings["ServiceBusConnection__credential"] == "managedidentity"
        assert (
            settings["ServiceBusConnection__fullyQualifiedNamespace"]
            == settings[env_name("servicebus_namespace")]
        )
        assert settings["ServiceBusConnection__clientId"] == settings[env_name("identity_client_id")]


def test_guard_rails_budget_alerts_and_policies(graph: ResourceGraph) -> None:
    (budget,) = graph.of_type("azure-native:consumption:Budget")
    assert budget.get("amount") == 5000
    rules = graph.of_type("azure-native:monitor:ScheduledQueryRule")
    assert len(rules) == 3
    assignments = graph.of_type("azure-native:authorization:PolicyAssignment")
    effects = {a.get("parameters")["effect"]["value"] for a in assignments}
    assert "Deny" in effects, "enforce mode denies where it is safe"


@pytest.fixture(scope="module")
def own(stack_graph: Callable[[str], ResourceGraph]) -> ResourceGraph:
    """enterprise-k8s: the workers alone on a cluster the user runs, reading SQS with their IRSA role."""
    return stack_graph("enterprise-k8s")


class TestOwnCluster:
    def test_only_kubernetes_resources(self, own: ResourceGraph) -> None:
        assert {r.type.split(":")[0] for r in own.cloud_resources()} == {"kubernetes"}

    def test_each_agent_scales_on_its_own_sqs_queue(self, own: ResourceGraph) -> None:
        triggers = {
            s.get("spec.scaleTargetRef.name"): s.get("spec.triggers")[0] for s in own.of_type(SCALED_OBJECT)
        }
        assert set(triggers) == {"research", "analyst"}
        for agent, trigger in triggers.items():
            assert trigger["type"] == "aws-sqs-queue"
            assert trigger["metadata"]["queueURL"] == task_queue(agent)

    def test_secrets_come_from_the_named_secret_not_the_stack(self, own: ResourceGraph) -> None:
        for deployment in own.of_type(DEPLOYMENT):
            (container,) = deployment.get("spec.template.spec.containers")
            assert "envFrom" not in container
            (volume,) = [v for v in deployment.get("spec.template.spec.volumes") if "secret" in v]
            assert volume["secret"]["secretName"] == "agentstage-runtime"
            names = {e["name"] for e in container["env"]}
            assert env_name("llm_api_key") not in names and env_name("redis_url") not in names
