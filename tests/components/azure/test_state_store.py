"""The state store on its own: Entra-only Cosmos DB with the container layout the runtime uses."""

from __future__ import annotations

import uuid

import pytest
from pulumi_azure_native import resources

from agent_runtime.memory.cosmos import CONVERSATION_PARTITION_KEY
from agent_runtime.settings import Settings
from agent_runtime.settings_contract import env_for
from agent_runtime.tasks.store_cosmos import TASKS_PARTITION_KEY
from components.azure.state_store import StateStore, StateStoreArgs
from core.graph import ResourceGraph

ACCOUNT = "azure-native:cosmosdb:DatabaseAccount"
DATABASE = "azure-native:cosmosdb:SqlResourceSqlDatabase"
CONTAINER = "azure-native:cosmosdb:SqlResourceSqlContainer"
SQL_ROLE_ASSIGNMENT = "azure-native:cosmosdb:SqlResourceSqlRoleAssignment"
WORKSPACE = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-obs/providers/Microsoft.OperationalInsights/workspaces/log-state"
DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"

# What the runtime's stores key on (agent_runtime.memory.base): conversations by id, vectors by namespace.
EXPECTED_VECTOR_POLICY = {
    "vectorEmbeddings": [
        {"path": "/embedding", "dataType": "float32", "dimensions": 384, "distanceFunction": "cosine"}
    ]
}


def _program(isolated: bool = False, **args: object):
    def factory(context, identity):
        store = StateStore("state", context, StateStoreArgs(embedding_dimensions=384, **args))  # type: ignore[arg-type]
        store.grant_data_access(identity)
        # A stand-in for the Function App's app settings: what a consumer of the settings receives.
        resources.ResourceGroup("consumer", tags=store.runtime_settings())

    return factory


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_program(), workspace_id=WORKSPACE)


def _container(graph: ResourceGraph, container: str):
    [found] = [c for c in graph.of_type(CONTAINER) if c.get("containerName") == container]
    return found


def test_account_is_entra_only_tls12_session_and_continuously_backed_up(graph, only):
    account = only(graph, ACCOUNT)
    assert account.get("disableLocalAuth") is True, account.urn
    assert account.get("disableKeyBasedMetadataWriteAccess") is True, account.urn
    assert account.get("minimalTlsVersion") == "Tls12", account.urn
    assert account.get("publicNetworkAccess") == "Enabled", account.urn
    assert account.get("kind") == "GlobalDocumentDB", account.urn
    assert account.get("databaseAccountOfferType") == "Standard", account.urn
    assert account.get("consistencyPolicy.defaultConsistencyLevel") == "Session", account.urn
    assert account.get("locations") == [
        {"locationName": "westeurope", "failoverPriority": 0, "isZoneRedundant": False}
    ], account.urn
    assert account.get("backupPolicy") == {
        "type": "Continuous",
        "continuousModeProperties": {"tier": "Continuous7Days"},
    }, account.urn
    assert account.get("tags") == {"project": "agentstage", "environment": "test"}, account.urn


def test_serverless_with_vector_search(graph, only):
    account = only(graph, ACCOUNT)
    capabilities = [c["name"] for c in account.get("capabilities")]
    assert capabilities == ["EnableServerless", "EnableNoSQLVectorSearch"], account.urn
    for container in graph.of_type(CONTAINER):
        assert container.get("options") is None, f"{container.urn}: serverless containers take no throughput"


def test_conversations_partitioned_by_owner_as_the_runtime_expects_without_ttl(graph, only):
    conversations = _container(graph, "conversations-by-owner")
    database = only(graph, DATABASE)
    assert database.get("databaseName") == "agentstage", database.urn
    assert conversations.get("databaseName") == "agentstage", conversations.urn
    assert conversations.get("resource.id") == "conversations-by-owner", conversations.urn
    assert conversations.get("resource.partitionKey") == {
        "paths": CONVERSATION_PARTITION_KEY,
        "kind": "MultiHash",
        "version": 2,
    }, conversations.urn
    assert conversations.get("resource.defaultTtl") is None, conversations.urn
    assert conversations.get("resource.vectorEmbeddingPolicy") is None, conversations.urn
    assert database.urn in conversations.dependencies, f"{conversations.urn}: created before its database"


def test_every_container_outlives_a_rename_or_replacement_in_code(graph):
    """The history written before conversations had owners stays in the old container when the new one
    replaces it; no refactor of the program deletes data."""
    for container in graph.of_type(CONTAINER):
        assert container.retain_on_delete, container.urn


def test_memories_hold_cosine_vectors_with_a_quantized_flat_index(graph):
    memories = _container(graph, "memories")
    assert memories.get("resource.id") == "memories", memories.urn
    assert memories.get("resource.partitionKey.paths") == ["/namespace"], memories.urn
    assert memories.get("resource.defaultTtl") is None, memories.urn
    assert memories.get("resource.vectorEmbeddingPolicy") == EXPECTED_VECTOR_POLICY, memories.urn
    index = memories.get("resource.indexingPolicy")
    assert [(v["path"], v["type"]) for v in index["vectorIndexes"]] == [("/embedding", "quantizedFlat")], (
        memories.urn
    )
    assert {"path": "/embedding/*"} in index["excludedPaths"], (
        f"{memories.urn}: vectors must stay out of the range index"
    )
    assert index["includedPaths"] == [{"path": "/*"}], memories.urn
    assert index["indexingMode"] == "consistent", memories.urn


def test_tasks_are_partitioned_as_the_runtime_reads_them(graph):
    tasks = _container(graph, "tasks")
    assert tasks.get("resource.partitionKey.paths") == [TASKS_PARTITION_KEY], tasks.urn
    assert tasks.get("resource.defaultTtl") is None, (
        f"{tasks.urn}: a task must outlive any TTL its caller polls within"
    )
    assert tasks.get("resource.vectorEmbeddingPolicy") is None, tasks.urn


def test_grant_is_data_contributor_on_the_database_not_the_account(graph, only):
    account, assignment = only(graph, ACCOUNT), only(graph, SQL_ROLE_ASSIGNMENT)
    assert assignment.get("roleDefinitionId") == f"{account.mock_id}/sqlRoleDefinitions/{DATA_CONTRIBUTOR}", (
        assignment.urn
    )
    assert assignment.get("scope") == f"{account.mock_id}/dbs/agentstage", (
        f"{assignment.urn}: {assignment.get('scope')}"
    )
    assert assignment.get("accountName") == account.get("accountName"), assignment.urn
    identity = only(graph, "azure-native:managedidentity:UserAssignedIdentity")
    assert identity.urn in assignment.dependencies, f"{assignment.urn}: principal is not the agent identity"
    assert uuid.UUID(assignment.get("roleAssignmentId")).version == 5, assignment.urn
    assert not graph.of_type("azure-native:authorization:RoleAssignment"), "no ARM role assignment is needed"


def test_role_assignment_name_is_stable_across_runs(graph, build, only):
    again = only(build(_program(), workspace_id=WORKSPACE), SQL_ROLE_ASSIGNMENT)
    first = only(graph, SQL_ROLE_ASSIGNMENT)
    assert again.get("roleAssignmentId") == first.get("roleAssignmentId"), first.urn


def test_diagnostics_send_all_logs_and_metrics_to_the_workspace(graph, only, assert_diagnostics):
    account = only(graph, ACCOUNT)
    assert_diagnostics(graph, account, WORKSPACE)
    setting = only(graph, "azure-native:monitor:DiagnosticSetting")
    assert [log["categoryGroup"] for log in setting.get("logs")] == ["allLogs"], setting.urn
    assert [m["category"] for m in setting.get("metrics")] == ["AllMetrics"], setting.urn


def test_runtime_settings_are_contract_fields_and_wait_for_the_containers(graph, only):
    consumer = next(r for r in graph.of_type("azure-native:resources:ResourceGroup") if r.name == "consumer")
    settings = consumer.get("tags")
    assert settings == {
        "state_backend": "cosmos",
        "vector_backend": "cosmos",
        "cosmos_endpoint": "https://agst-test-cosmos-state-abcde.documents.azure.com:443/",
        "cosmos_database": "agentstage",
        "cosmos_conversations_container": "conversations-by-owner",
        "cosmos_memories_container": "memories",
        "cosmos_tasks_container": "tasks",
        "budget_backend": "cosmos",
        "cosmos_ledger_container": "ledger",
    }, consumer.urn
    assert set(settings) <= set(Settings.model_fields), consumer.urn
    env_for(settings, cloud=False)  # the names pass the runtime's own check
    for container in graph.of_type(CONTAINER):
        assert container.urn in consumer.dependencies, (
            f"{consumer.urn} may start before {container.urn} exists"
        )


def test_isolated_turns_public_access_off(build, only):
    account = only(build(_program(), isolated=True, workspace_id=WORKSPACE), ACCOUNT)
    assert account.get("publicNetworkAccess") == "Disabled", account.urn


def test_provisioned_autoscales_each_container_never_the_database(build, only):
    graph = build(
        _program(serverless=False, max_throughput=2000, continuous_backup=False), workspace_id=WORKSPACE
    )
    account = only(graph, ACCOUNT)
    assert [c["name"] for c in account.get("capabilities")] == ["EnableNoSQLVectorSearch"], account.urn
    assert account.get("backupPolicy.type") == "Periodic", account.urn
    database = only(graph, DATABASE)
    assert database.get("options") is None, (
        f"{database.urn}: vector search does not support shared throughput"
    )
    for container in graph.of_type(CONTAINER):
        assert container.get("options.autoscaleSettings.maxThroughput") == 2000, container.urn


@pytest.mark.parametrize(
    "args",
    [
        {"embedding_dimensions": 0},
        {"embedding_dimensions": 4097},
        {"embedding_dimensions": 384, "max_throughput": 1500},
    ],
)
def test_args_refuse_what_cosmos_rejects(args):
    with pytest.raises(ValueError, match="embedding_dimensions|max_throughput"):
        StateStoreArgs(**args)  # type: ignore[arg-type]
