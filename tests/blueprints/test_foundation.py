"""The foundation stack: the request path through the gateway, the knowledge pipeline, and least privilege
for every identity.

Built offline from stacks/Pulumi.foundation-staging.yaml; assertions name the resource URN.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from agent_runtime.settings_contract import env_name
from blueprints.foundation import INGEST, INGEST_QUEUE, task_queue
from core.graph import ResourceGraph
from tests.blueprints.graph_queries import app_settings, by_name, grants, runtime_catalog

STACK = "foundation-staging"
AGENTS = ("research", "analyst")
ORCHESTRATOR = "orchestrator"
SEARCH_ROLES = ("Search Index Data Reader", "Search Index Data Contributor", "Search Service Contributor")
TOPIC_SENDS = f"bus-send-{INGEST_QUEUE}-documents-events"
"""The system topic's grant (its principal is no user-assigned identity, so it is keyed by its own name)."""
TOPIC_DEAD_LETTERS = "documents-undelivered-write-documents-events"


@pytest.fixture(scope="module")
def graph(stack_graph: Callable[[str], ResourceGraph]) -> ResourceGraph:
    return stack_graph(STACK)


def test_every_agent_and_the_ingestion_worker_have_their_own_function_app_and_queue(
    graph: ResourceGraph,
) -> None:
    apps = {r.name for r in graph.of_type("azure-native:web:WebApp")}
    assert apps == {f"{name}-app" for name in (ORCHESTRATOR, *AGENTS, INGEST)}
    queues = {q.get("queueName") for q in graph.of_type("azure-native:servicebus:Queue")}
    assert queues == {*(task_queue(name) for name in (ORCHESTRATOR, *AGENTS)), INGEST_QUEUE}


@pytest.mark.parametrize("agent", AGENTS)
def test_each_agent_reaches_only_its_queue_its_memory_and_shared_services(
    graph: ResourceGraph, agent: str
) -> None:
    assert grants(graph)[agent] == {
        ("Azure Service Bus Data Receiver", f"bus-queue-{task_queue(agent)}"),
        ("Azure Service Bus Data Sender", f"bus-queue-{task_queue(agent)}"),
        ("Search Index Data Reader", "search-service"),
        ("Key Vault Secrets User", "secrets-vault"),
        ("Monitoring Metrics Publisher", "observability-app-insights"),
        ("Storage Blob Data Owner", f"{agent}-storage"),
    }


def test_the_orchestrator_reaches_the_queues_it_delegates_to_and_only_queries_the_index(
    graph: ResourceGraph,
) -> None:
    assert grants(graph)[ORCHESTRATOR] == {
        ("Azure Service Bus Data Receiver", f"bus-queue-{task_queue(ORCHESTRATOR)}"),
        *(
            ("Azure Service Bus Data Sender", f"bus-queue-{task_queue(name)}")
            for name in (ORCHESTRATOR, *AGENTS)
        ),
        ("Search Index Data Reader", "search-service"),
        ("Key Vault Secrets User", "secrets-vault"),
        ("Monitoring Metrics Publisher", "observability-app-insights"),
        ("Storage Blob Data Owner", f"{ORCHESTRATOR}-storage"),
    }


def test_the_ingestion_worker_reads_documents_receives_events_and_alone_writes_and_defines_the_index(
    graph: ResourceGraph,
) -> None:
    assert grants(graph)[INGEST] == {
        ("Storage Blob Data Reader", "documents-container"),
        ("Search Index Data Contributor", "search-service"),
        ("Search Service Contributor", "search-service"),
        ("Azure Service Bus Data Receiver", f"bus-queue-{INGEST_QUEUE}"),
        ("Monitoring Metrics Publisher", "observability-app-insights"),
        ("Storage Blob Data Owner", f"{INGEST}-storage"),
    }
    on_search = {
        (holder, role)
        for holder, held in grants(graph).items()
        for role, scope in held
        if scope == "search-service"
    }
    assert on_search == {
        *((agent, "Search Index Data Reader") for agent in (ORCHESTRATOR, *AGENTS)),
        (INGEST, "Search Index Data Contributor"),
        (INGEST, "Search Service Contributor"),
    }


def test_document_events_are_sent_by_the_system_topic_alone_and_received_by_the_worker_alone(
    graph: ResourceGraph,
) -> None:
    on_ingest_queue = {
        (holder, role)
        for holder, held in grants(graph).items()
        for role, scope in held
        if scope == f"bus-queue-{INGEST_QUEUE}"
    }
    assert on_ingest_queue == {
        (TOPIC_SENDS, "Azure Service Bus Data Sender"),
        (INGEST, "Azure Service Bus Data Receiver"),
    }
    assert grants(graph)[TOPIC_DEAD_LETTERS] == {
        ("Storage Blob Data Contributor", "documents-undelivered-container")
    }
    on_documents = {
        (holder, role)
        for holder, held in grants(graph).items()
        for role, scope in held
        if scope.startswith("documents")
    }
    assert on_documents == {
        (INGEST, "Storage Blob Data Reader"),
        (TOPIC_DEAD_LETTERS, "Storage Blob Data Contributor"),
    }, "nothing in the stack may write documents: uploaders are granted by the estate"


def test_blob_events_of_the_documents_container_reach_the_ingest_queue_as_the_topic(
    graph: ResourceGraph,
) -> None:
    account = by_name(graph, "azure-native:storage:StorageAccount", "documents-account")
    topic = by_name(graph, "azure-native:eventgrid:SystemTopic", "documents-events")
    subscription = by_name(
        graph, "azure-native:eventgrid:SystemTopicEventSubscription", f"documents-events-to-{INGEST_QUEUE}"
    )
    queue = by_name(graph, "azure-native:servicebus:Queue", f"bus-queue-{INGEST_QUEUE}")
    assert (topic.get("source"), topic.get("identity")) == (account.mock_id, {"type": "SystemAssigned"})
    assert subscription.get("systemTopicName") == topic.get("systemTopicName")
    assert subscription.get("filter") == {
        "includedEventTypes": ["Microsoft.Storage.BlobCreated", "Microsoft.Storage.BlobDeleted"],
        "subjectBeginsWith": "/blobServices/default/containers/documents/",
        "isSubjectCaseSensitive": False,
    }
    assert subscription.get("eventDeliverySchema") == "EventGridSchema"
    assert subscription.get("deliveryWithResourceIdentity") == {
        "identity": {"type": "SystemAssigned"},
        "destination": {"endpointType": "ServiceBusQueue", "resourceId": queue.mock_id},
    }
    assert subscription.get("retryPolicy") == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    assert subscription.get("deadLetterWithResourceIdentity") == {
        "identity": {"type": "SystemAssigned"},
        "deadLetterDestination": {
            "endpointType": "StorageBlob",
            "resourceId": account.mock_id,
            "blobContainerName": "undelivered-events",
        },
    }
    tasks = by_name(graph, "azure-native:servicebus:Queue", f"bus-queue-{task_queue(ORCHESTRATOR)}")
    for setting in (
        "maxDeliveryCount",
        "deadLetteringOnMessageExpiration",
        "lockDuration",
        "defaultMessageTimeToLive",
    ):
        assert queue.get(setting) == tasks.get(setting), (
            f"poison documents dead-letter like poison tasks: {setting}"
        )


def test_the_documents_account_takes_entra_id_only_and_keeps_what_was_deleted(graph: ResourceGraph) -> None:
    account = by_name(graph, "azure-native:storage:StorageAccount", "documents-account")
    assert account.get("allowSharedKeyAccess") is False and account.get("allowBlobPublicAccess") is False
    assert (account.get("minimumTlsVersion"), account.get("sku.name")) == ("TLS1_2", "Standard_LRS")
    service = by_name(graph, "azure-native:storage:BlobServiceProperties", "documents-blob-service")
    assert service.get("isVersioningEnabled") is True
    assert service.get("deleteRetentionPolicy") == {"enabled": True, "days": 30}


def test_the_ingestion_worker_runs_no_agent_and_consumes_document_events(graph: ResourceGraph) -> None:
    settings = app_settings(graph, INGEST)
    gateway = by_name(graph, "azure-native:apimanagement:ApiManagementService", "gateway")
    search = by_name(graph, "azure-native:search:Service", "search-service")
    account = by_name(graph, "azure-native:storage:StorageAccount", "documents-account")
    expected = {
        "agents": "[]",
        "tasks_enabled": "false",
        "knowledge_backend": "aisearch",
        "search_endpoint": f"https://{search.get('searchServiceName')}.search.windows.net",
        "knowledge_index": "knowledge",
        "knowledge_manage_index": "true",
        "knowledge_source": f"https://{account.get('accountName')}.blob.core.windows.net/documents",
        "ingest_queue": INGEST_QUEUE,
        "embedding_model": "embeddings",
        "embedding_dimensions": "1536",
        "llm_provider": "azure_openai",
        "llm_auth": "entra",
        "llm_endpoint": f"https://{gateway.get('serviceName')}.azure-api.net",
        "llm_token_scope": "api://ags-stg/.default",
        "bus_backend": "servicebus",
    }
    assert {name: settings[env_name(name)] for name in expected} == expected
    for absent in ("task_queue", "agent_queues", "cosmos_endpoint", "budget_backend", "budgets"):
        assert env_name(absent) not in settings, f"the worker has no {absent}"
    assert settings["ServiceBusConnection__credential"] == "managedidentity"
    assert (
        settings["ServiceBusConnection__fullyQualifiedNamespace"]
        == settings[env_name("servicebus_namespace")]
    )
    assert settings["ServiceBusConnection__clientId"] == settings[env_name("identity_client_id")]
    assert list(runtime_catalog(settings)) == [], "the runtime starts with these settings, serving no agent"


@pytest.mark.parametrize("app", (ORCHESTRATOR, *AGENTS))
def test_every_agent_searches_the_knowledge_index_and_manages_none(graph: ResourceGraph, app: str) -> None:
    settings = app_settings(graph, app)
    worker = app_settings(graph, INGEST)
    for name in ("knowledge_backend", "search_endpoint", "knowledge_index"):
        assert settings[env_name(name)] == worker[env_name(name)], name
    for absent in ("knowledge_manage_index", "knowledge_source", "ingest_queue"):
        assert env_name(absent) not in settings, absent


def test_only_the_orchestrator_may_send_tasks_to_the_agents(graph: ResourceGraph) -> None:
    """Besides its own queue (its API queues tasks there, its worker re-queues a deferred message)."""
    orchestrator = grants(graph)[ORCHESTRATOR]
    for agent in AGENTS:
        assert ("Azure Service Bus Data Sender", f"bus-queue-{task_queue(agent)}") in orchestrator
    for agent in AGENTS:
        senders = {
            holder
            for holder, held in grants(graph).items()
            if ("Azure Service Bus Data Sender", f"bus-queue-{task_queue(agent)}") in held
        }
        assert senders == {ORCHESTRATOR, agent}, task_queue(agent)


def test_only_the_gateway_identity_may_call_the_models(graph: ResourceGraph) -> None:
    holders = {
        holder
        for holder, held in grants(graph).items()
        for role, scope in held
        if role == "Cognitive Services OpenAI User"
    }
    assert holders == {"gateway"}
    assert grants(graph)["gateway"] == {
        ("Cognitive Services OpenAI User", "models-account"),
        ("Monitoring Metrics Publisher", "observability-app-insights"),
    }


def test_cosmos_data_access_is_per_identity_and_scoped_to_the_database(graph: ResourceGraph) -> None:
    assignments = graph.of_type("azure-native:cosmosdb:SqlResourceSqlRoleAssignment")
    holders = set()
    for assignment in assignments:
        holders |= {
            urn.rsplit("::", 1)[-1] for urn in assignment.dependencies if "UserAssignedIdentity" in urn
        }
        assert str(assignment.get("scope")).endswith("/dbs/agentstage"), assignment.urn
    assert holders == {ORCHESTRATOR, *AGENTS}


@pytest.mark.parametrize("app", (ORCHESTRATOR, *AGENTS))
def test_agents_call_models_through_the_gateway_and_tasks_through_the_bus(
    graph: ResourceGraph, app: str
) -> None:
    settings = app_settings(graph, app)
    gateway = by_name(graph, "azure-native:apimanagement:ApiManagementService", "gateway")
    assert settings[env_name("llm_endpoint")] == f"https://{gateway.get('serviceName')}.azure-api.net"
    assert settings[env_name("llm_token_scope")] == "api://ags-stg/.default"
    assert settings[env_name("bus_backend")] == "servicebus"
    assert settings[env_name("servicebus_namespace")].endswith(".servicebus.windows.net")
    assert settings[env_name("task_queue")] == task_queue(app)
    queue = by_name(graph, "azure-native:servicebus:Queue", f"bus-queue-{task_queue(app)}")
    assert settings[env_name("bus_max_delivery_count")] == str(queue.get("maxDeliveryCount")), (
        "a worker acts on the last delivery it will see: it must know how many the queue allows"
    )
    assert settings[env_name("cosmos_tasks_container")] == "tasks", "task records live in the state store"


@pytest.mark.parametrize("agent", AGENTS)
def test_an_agent_app_runs_its_own_agent_only(graph: ResourceGraph, agent: str) -> None:
    agents = json.loads(app_settings(graph, agent)[env_name("agents")])
    assert [(a["name"], a.get("kind", "agent")) for a in agents] == [(agent, "agent")]


def test_the_orchestrator_app_runs_an_orchestrator_delegating_to_every_agent(graph: ResourceGraph) -> None:
    agents = json.loads(app_settings(graph, ORCHESTRATOR)[env_name("agents")])
    orchestrator, *delegates = agents
    assert (orchestrator["name"], orchestrator["kind"]) == (ORCHESTRATOR, "orchestrator")
    assert orchestrator["orchestration"]["delegates"] == list(AGENTS)
    assert [a["name"] for a in delegates] == list(AGENTS), "it routes by their definitions"


@pytest.mark.parametrize("app", (ORCHESTRATOR, *AGENTS))
def test_the_runtime_accepts_each_apps_settings(graph: ResourceGraph, app: str) -> None:
    """A wrong AGENTSTAGE_AGENT_QUEUES, delegate or task store would fail the app at start."""
    assert app in [agent.name for agent in runtime_catalog(app_settings(graph, app))]


def test_the_orchestrator_knows_every_agent_queue(graph: ResourceGraph) -> None:
    queues = json.loads(app_settings(graph, ORCHESTRATOR)[env_name("agent_queues")])
    assert queues == {agent: task_queue(agent) for agent in AGENTS}


def test_no_key_or_connection_string_anywhere(graph: ResourceGraph) -> None:
    text = graph.to_json()
    for marker in (
        "SharedAccessKey",
        "AccountKey=",
        "Endpoint=sb://",
        'api-key": "',
        "Ocp-Apim-Subscription-Key",
    ):
        assert marker not in text, marker
    for resource in graph.of_type("azure-native:servicebus:Namespace"):
        assert resource.get("disableLocalAuth") is True, resource.urn
        assert resource.get("minimumTlsVersion") == "1.2", resource.urn


def policy_xml(graph: ResourceGraph, api: str) -> ET.Element:
    return ET.fromstring(
        by_name(graph, "azure-native:apimanagement:ApiPolicy", f"gateway-{api}-policy").get("value")
    )


def test_gateway_model_api_carries_jwt_token_limit_metric_and_identity(graph: ResourceGraph) -> None:
    inbound = policy_xml(graph, "openai").find("inbound")
    assert inbound.find("validate-azure-ad-token/audiences/audience").text == "{{gateway-audience}}"
    assert inbound.find("llm-token-limit").get("tokens-per-minute") == "50000"
    assert inbound.find("llm-emit-token-metric/dimension[@name='Agent']") is not None
    assert (
        inbound.find("authentication-managed-identity").get("resource")
        == "https://cognitiveservices.azure.com"
    )
    assert inbound.find("set-backend-service").get("backend-id") == "models-pool"


def test_gateway_pools_the_models_behind_a_circuit_breaker(graph: ResourceGraph) -> None:
    account = by_name(graph, "azure-native:cognitiveservices:Account", "models-account")
    backend = by_name(graph, "azure-native:apimanagement:Backend", "gateway-model-models")
    assert (
        backend.get("url")
        == f"https://{account.get('properties.customSubDomainName')}.openai.azure.com/openai"
    )
    (rule,) = backend.get("circuitBreaker.rules")
    assert {"min": 429, "max": 429} in rule["failureCondition"]["statusCodeRanges"]
    pool = by_name(graph, "azure-native:apimanagement:Backend", "gateway-models-pool")
    assert pool.get("type") == "Pool"
    assert [s["id"] for s in pool.get("pool.services")] == [backend.mock_id]


def test_gateway_fronts_the_orchestrator_with_token_validation(graph: ResourceGraph) -> None:
    backend = by_name(graph, "azure-native:apimanagement:Backend", "gateway-agent-orchestrator-backend")
    orchestrator = by_name(graph, "azure-native:web:WebApp", "orchestrator-app")
    assert backend.get("url") == f"https://{orchestrator.get('name')}.azurewebsites.net"
    inbound = policy_xml(graph, "agent-orchestrator").find("inbound")
    assert [child.tag for child in inbound] == ["base", "validate-azure-ad-token", "set-backend-service"]
    named = {
        r.get("namedValueId")
        for r in graph.of_type("azure-native:apimanagement:NamedValue")
        if str(r.get("namedValueId")).startswith("gateway-client-app-")
    }
    assert len(named) == 4, "the orchestrator's, both agents' and the worker's identities are allowed callers"


def test_dashboard_and_diagnostics_cover_the_new_blocks(graph: ResourceGraph) -> None:
    assert graph.of_type("azure-native:applicationinsights:Workbook")
    targets = {
        graph.by_mock_id(s.get("resourceUri")).type
        for s in graph.of_type("azure-native:monitor:DiagnosticSetting")
        if graph.by_mock_id(s.get("resourceUri"))
    }
    assert {
        "azure-native:apimanagement:ApiManagementService",
        "azure-native:servicebus:Namespace",
        "azure-native:search:Service",
        "azure-native:storage:StorageAccount",
        "azure-native:eventgrid:SystemTopic",
    } <= targets
