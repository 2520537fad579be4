"""The foundation stack: the request path through the gateway, and least privilege for every identity.

Built offline from stacks/Pulumi.foundation-staging.yaml; assertions name the resource URN.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from agent_runtime.settings import env_name
from blueprints.foundation import task_queue
from core.graph import ResourceGraph
from tests.blueprints.graph_queries import app_settings, by_name, grants, runtime_catalog

STACK = "foundation-staging"
AGENTS = ("research", "analyst")
ORCHESTRATOR = "orchestrator"


@pytest.fixture(scope="module")
def graph(stack_graph: Callable[[str], ResourceGraph]) -> ResourceGraph:
    return stack_graph(STACK)


def test_every_agent_has_its_own_function_app_and_queue(graph: ResourceGraph) -> None:
    apps = {r.name for r in graph.of_type("azure-native:web:WebApp")}
    assert apps == {f"{name}-app" for name in (ORCHESTRATOR, *AGENTS)}
    queues = {q.get("queueName") for q in graph.of_type("azure-native:servicebus:Queue")}
    assert queues == {task_queue(name) for name in (ORCHESTRATOR, *AGENTS)}


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
    assert len(named) == 3, "the orchestrator's and both agents' identities must be allowed callers"


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
    } <= targets
