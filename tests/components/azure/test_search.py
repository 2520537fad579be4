"""VectorSearch on its own: no API keys, sized from its args, queries, writes and index definitions granted
separately, and where the runtime finds the knowledge index."""

from __future__ import annotations

import pytest

from agent_runtime.settings_contract import env_for
from components.azure.role_ids import BUILTIN_ROLES
from components.azure.search import KNOWLEDGE_INDEX, VectorSearch, VectorSearchArgs
from core.graph import ResourceGraph

SERVICE = "azure-native:search:Service"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"


def _factory(context, identity):
    search = VectorSearch("memory", context, VectorSearchArgs(sku="standard", replicas=2, partitions=3))
    return {
        "query": search.grant_query(identity).id,
        "indexWrite": search.grant_index_write(identity).id,
        "indexManagement": search.grant_index_management(identity).id,
        "runtimeSettings": search.runtime_settings(),
        "serviceId": search.service_id,
        "serviceName": search.service_name,
        "endpoint": search.endpoint,
    }


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_factory)


@pytest.fixture(scope="module")
def isolated(build) -> ResourceGraph:
    return build(_factory, isolated=True)


def test_service_accepts_entra_id_only(graph, only):
    service = only(graph, SERVICE)
    assert service.get("disableLocalAuth") is True, service.urn
    assert service.get("authOptions") is None, f"{service.urn}: authOptions conflict with disableLocalAuth"


def test_service_is_sized_from_args_without_semantic_search(graph, only):
    service = only(graph, SERVICE)
    assert service.get("sku.name") == "standard", service.urn
    assert (service.get("replicaCount"), service.get("partitionCount")) == (2, 3), service.urn
    assert service.get("semanticSearch") == "disabled", service.urn
    assert service.get("identity") is None, service.urn


def test_public_access_follows_isolation(graph, isolated, only):
    assert only(graph, SERVICE).get("publicNetworkAccess") == "Enabled", only(graph, SERVICE).urn
    assert only(isolated, SERVICE).get("publicNetworkAccess") == "Disabled", only(isolated, SERVICE).urn


def test_diagnostics_go_to_the_workspace(graph, only, build, assert_diagnostics):
    assert_diagnostics(graph, only(graph, SERVICE), build.workspace_id)


@pytest.mark.parametrize(
    ("output", "role"),
    [
        ("query", "Search Index Data Reader"),
        ("indexWrite", "Search Index Data Contributor"),
        ("indexManagement", "Search Service Contributor"),
    ],
)
def test_each_grant_is_one_data_role_on_the_service(graph, only, outputs, assert_grant, output, role):
    assignments = [a for a in graph.of_type(ROLE_ASSIGNMENT) if a.mock_id == outputs(graph)[output]]
    assert len(assignments) == 1, f"{output}: {[a.urn for a in assignments]}"
    assert_grant(assignments[0], BUILTIN_ROLES[role], only(graph, SERVICE))


def test_three_grants_make_three_assignments(graph):
    assert len(graph.of_type(ROLE_ASSIGNMENT)) == 3, [a.urn for a in graph.of_type(ROLE_ASSIGNMENT)]


def test_the_runtime_finds_the_knowledge_index_on_this_service(graph, only, outputs):
    name = only(graph, SERVICE).get("searchServiceName")
    assert outputs(graph)["runtimeSettings"] == {
        "knowledge_backend": "aisearch",
        "search_endpoint": f"https://{name}.search.windows.net",
        "knowledge_index": KNOWLEDGE_INDEX,
    }
    env_for(outputs(graph)["runtimeSettings"], cloud=False)  # names of the runtime's settings contract


def test_outputs_are_known_before_deployment(graph, only, outputs):
    service = only(graph, SERVICE)
    name = service.get("searchServiceName")
    assert name == "agst-test-srch-memory-abcde", service.urn
    received = outputs(graph)
    assert (received["serviceId"], received["serviceName"]) == (service.mock_id, name)
    assert received["endpoint"] == f"https://{name}.search.windows.net"


def test_tags_propagate(graph, only, build):
    service = only(graph, SERVICE)
    assert service.get("tags") == build.tags, service.urn


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"replicas": 13}, "replicas must be between 1 and 12, got 13"),
        ({"partitions": 5}, "partitions must be one of"),
    ],
)
def test_sizes_azure_refuses_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        VectorSearchArgs(**args)
