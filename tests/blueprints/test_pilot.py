"""The pilot stacks, built offline from their stack files: secure by construction, wired least-privilege.

Every assertion reads the recorded resource graph - what ``pulumi up`` would send to Azure - and puts
the resource URN in its message.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from agent_runtime.settings_contract import cloud_required_fields, env_name
from components.azure.role_ids import BUILTIN_ROLES, FORBIDDEN_ROLES
from core.config import StackConfig, parse_stack_config
from core.graph import Resource, ResourceGraph
from core.stacks import PROJECT_DIR, available_stacks, read_stack_config, stack_file


def config_of(stack: str) -> StackConfig:
    raw, _ = read_stack_config(stack_file(stack))
    return parse_stack_config(raw, stack)


PILOT_STACKS = [
    s for s in available_stacks() if (c := config_of(s)).blueprint == "pilot" and c.cloud == "azure"
]
"""The Azure pilot stacks; the AWS pilot has its own tests (test_aws_pilot.py)."""


@pytest.fixture(params=PILOT_STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def graph(stack: str, stack_graph: Callable[[str], ResourceGraph]) -> ResourceGraph:
    return stack_graph(stack)


def one(graph: ResourceGraph, type_: str) -> Resource:
    found = graph.of_type(type_)
    assert len(found) == 1, f"expected one {type_}, found {[r.urn for r in found]}"
    return found[0]


def app_settings(graph: ResourceGraph) -> dict[str, str]:
    app = one(graph, "azure-native:web:WebApp")
    return {s["name"]: s["value"] for s in app.get("siteConfig.appSettings")}


def test_pilot_stacks_exist() -> None:
    assert {"pilot-dev", "pilot-prod"} <= set(PILOT_STACKS)


def test_models_accept_only_entra_tokens_behind_a_content_filter(graph: ResourceGraph) -> None:
    account = one(graph, "azure-native:cognitiveservices:Account")
    assert account.get("kind") == "OpenAI", account.urn
    assert account.get("properties.disableLocalAuth") is True, account.urn
    assert account.get("properties.customSubDomainName"), (
        f"{account.urn}: Entra auth needs a custom subdomain"
    )
    policies = {p.get("raiPolicyName") for p in graph.of_type("azure-native:cognitiveservices:RaiPolicy")}
    deployments = graph.of_type("azure-native:cognitiveservices:Deployment")
    assert deployments
    for deployment in deployments:
        assert deployment.get("properties.raiPolicyName") in policies, deployment.urn


def test_deployments_match_the_stack_file(stack: str, graph: ResourceGraph) -> None:
    deployed = {
        d.get("deploymentName"): (d.get("properties.model.name"), d.get("sku.capacity"))
        for d in graph.of_type("azure-native:cognitiveservices:Deployment")
    }
    assert deployed == {m.name: (m.model, m.capacity) for m in config_of(stack).models}


def test_vault_uses_rbac_with_purge_protection(graph: ResourceGraph) -> None:
    vault = one(graph, "azure-native:keyvault:Vault")
    assert vault.get("properties.enableRbacAuthorization") is True, vault.urn
    assert vault.get("properties.enablePurgeProtection") is True, vault.urn
    assert vault.get("properties.enableSoftDelete") is True, vault.urn


def test_telemetry_needs_entra_and_lands_in_the_workspace(stack: str, graph: ResourceGraph) -> None:
    workspace = one(graph, "azure-native:operationalinsights:Workspace")
    insights = one(graph, "azure-native:applicationinsights:Component")
    assert workspace.get("retentionInDays") == config_of(stack).log_retention_days, workspace.urn
    assert workspace.get("features.disableLocalAuth") is True, workspace.urn
    assert insights.get("disableLocalAuth") is True, insights.urn
    assert insights.get("workspaceResourceId") == workspace.mock_id, insights.urn


def test_state_store_accepts_only_entra_tokens(graph: ResourceGraph) -> None:
    account = one(graph, "azure-native:cosmosdb:DatabaseAccount")
    assert account.get("disableLocalAuth") is True, account.urn
    assert account.get("minimalTlsVersion") == "Tls12", account.urn


def test_the_pilot_runs_no_tasks_so_it_has_no_task_container(graph: ResourceGraph) -> None:
    containers = {
        c.get("resource.id") for c in graph.of_type("azure-native:cosmosdb:SqlResourceSqlContainer")
    }
    assert containers == {"conversations-by-owner", "memories", "ledger"}
    settings = app_settings(graph)
    assert settings["AGENTSTAGE_TASKS_ENABLED"] == "false"
    assert "AGENTSTAGE_COSMOS_TASKS_CONTAINER" not in settings


def test_function_storage_refuses_keys_and_anonymous_access(graph: ResourceGraph) -> None:
    account = one(graph, "azure-native:storage:StorageAccount")
    assert account.get("allowSharedKeyAccess") is False, account.urn
    assert account.get("allowBlobPublicAccess") is False, account.urn
    assert account.get("minimumTlsVersion") == "TLS1_2", account.urn
    assert account.get("enableHttpsTrafficOnly") is True, account.urn


def test_function_app_is_flex_consumption_https_only_with_identity(graph: ResourceGraph) -> None:
    plan = one(graph, "azure-native:web:AppServicePlan")
    app = one(graph, "azure-native:web:WebApp")
    identity = one(graph, "azure-native:managedidentity:UserAssignedIdentity")
    assert (plan.get("sku.name"), plan.get("sku.tier")) == ("FC1", "FlexConsumption"), plan.urn
    assert app.get("serverFarmId") == plan.mock_id, app.urn
    assert app.get("httpsOnly") is True, app.urn
    assert app.get("siteConfig.minTlsVersion") == "1.2", app.urn
    assert app.get("siteConfig.ftpsState") == "Disabled", app.urn
    assert app.get("identity") == {"type": "UserAssigned", "userAssignedIdentities": [identity.mock_id]}, (
        app.urn
    )
    storage = app.get("functionAppConfig.deployment.storage")
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": identity.mock_id,
    }, app.urn
    assert app.get("functionAppConfig.runtime") == {"name": "python", "version": "3.11"}, app.urn
    for type_ in ("azure-native:web:WebAppFtpAllowed", "azure-native:web:WebAppScmAllowed"):
        assert one(graph, type_).get("allow") is False, f"{type_}: basic publishing credentials must be off"


def test_function_sizing_follows_the_stack_file(stack: str, graph: ResourceGraph) -> None:
    sizing = config_of(stack).functions
    scale = one(graph, "azure-native:web:WebApp").get("functionAppConfig.scaleAndConcurrency")
    assert scale["instanceMemoryMB"] == sizing.instance_memory_mb
    assert scale["maximumInstanceCount"] == sizing.maximum_instance_count
    assert scale.get("alwaysReady", []) == (
        [{"name": "http", "instanceCount": sizing.always_ready}] if sizing.always_ready else []
    )


def test_runtime_settings_cover_the_runtime_contract(stack: str, graph: ResourceGraph) -> None:
    settings = app_settings(graph)
    missing = {field for field in cloud_required_fields() if env_name(field) not in settings}
    assert not missing, f"the Function App does not set runtime settings {sorted(missing)}"
    assert settings[env_name("llm_auth")] == "entra"
    assert env_name("llm_api_key") not in settings
    agents = json.loads(settings[env_name("agents")])
    assert [a["name"] for a in agents] == [a.name for a in config_of(stack).agents]
    assert all(a["token_budget"] > 0 for a in agents)


def test_the_entra_tenant_whose_tokens_are_accepted_is_the_platform_tenant(graph: ResourceGraph) -> None:
    """Every accepted token's ``tid`` is the issuer's tenant: the runtime counts its callers' roles as the
    platform's (reviewers, operators, the knowledge index's restricted documents), not as another tenant's."""
    settings = app_settings(graph)
    issuer_tenant = settings[env_name("jwt_issuer")].split("/")[3]
    assert settings[env_name("platform_tenant")] == issuer_tenant != ""


def test_no_key_or_connection_secret_in_app_settings(graph: ResourceGraph) -> None:
    for name, value in app_settings(graph).items():
        text = str(value)
        for marker in ("AccountKey=", "SharedAccessSignature", "sig=", "api-key", "Password="):
            assert marker not in text, f"app setting {name} carries a credential ({marker})"


def test_every_role_assignment_is_narrow_and_for_the_agent(graph: ResourceGraph) -> None:
    identity = one(graph, "azure-native:managedidentity:UserAssignedIdentity")
    assignments = graph.of_type("azure-native:authorization:RoleAssignment")
    assert assignments
    allowed = set(BUILTIN_ROLES.values())
    for assignment in assignments:
        guid = assignment.get("roleDefinitionId").rsplit("/", 1)[-1]
        assert guid in allowed and guid not in FORBIDDEN_ROLES.values(), assignment.urn
        assert identity.urn in assignment.dependencies, f"{assignment.urn} is not for the agent identity"
        scope = graph.by_mock_id(assignment.get("scope"))
        assert scope is not None and scope.type != "azure-native:resources:ResourceGroup", (
            f"{assignment.urn}: scoped to {assignment.get('scope')}, not to one resource"
        )


def test_every_data_service_sends_diagnostics_to_the_workspace(graph: ResourceGraph) -> None:
    workspace = one(graph, "azure-native:operationalinsights:Workspace")
    settings = graph.of_type("azure-native:monitor:DiagnosticSetting")
    assert all(s.get("workspaceId") == workspace.mock_id for s in settings)
    covered = {
        graph.by_mock_id(s.get("resourceUri")).type
        for s in settings
        if graph.by_mock_id(s.get("resourceUri"))
    }
    expected = {
        "azure-native:keyvault:Vault",
        "azure-native:cognitiveservices:Account",
        "azure-native:cosmosdb:DatabaseAccount",
        "azure-native:storage:StorageAccount",
        "azure-native:web:WebApp",
        "azure-native:operationalinsights:Workspace",
    }
    assert expected <= covered, f"no diagnostics for {sorted(expected - covered)}"


def test_every_taggable_resource_carries_the_stack_tags(stack: str, graph: ResourceGraph) -> None:
    required = {"agentstage-blueprint": "pilot", **config_of(stack).tags}
    for resource in graph.cloud_resources():
        tags = resource.inputs.get("tags")
        if isinstance(tags, dict):
            assert required.items() <= tags.items(), resource.urn


def test_vector_search_only_where_the_stack_enables_it(stack: str, graph: ResourceGraph) -> None:
    services = graph.of_type("azure-native:search:Service")
    if config_of(stack).vector_search_enabled:
        assert len(services) == 1
        assert services[0].get("disableLocalAuth") is True, services[0].urn
    else:
        assert services == []


def test_the_agent_only_queries_the_knowledge_index_and_nothing_ingests_in_the_pilot(
    stack: str, graph: ResourceGraph
) -> None:
    """Documents reach a pilot's index by `agentstage ingest`, run by an operator (blueprints/pilot.py)."""
    settings = app_settings(graph)
    roles = {BUILTIN_ROLES_BY_ID[a.get("roleDefinitionId").rsplit("/", 1)[-1]] for a in search_grants(graph)}
    if config_of(stack).vector_search_enabled:
        service = one(graph, "azure-native:search:Service")
        assert settings[env_name("knowledge_backend")] == "aisearch"
        assert (
            settings[env_name("search_endpoint")]
            == f"https://{service.get('searchServiceName')}.search.windows.net"
        )
        assert settings[env_name("knowledge_index")] == "knowledge"
        assert roles == {"Search Index Data Reader"}
    else:
        assert settings[env_name("knowledge_backend")] == "none", "no shared index to search"
        assert env_name("search_endpoint") not in settings and roles == set()
    for absent in ("knowledge_manage_index", "knowledge_source", "ingest_queue"):
        assert env_name(absent) not in settings, absent
    assert graph.of_type("azure-native:eventgrid:SystemTopic") == []


def search_grants(graph: ResourceGraph) -> list[Resource]:
    services = {s.mock_id for s in graph.of_type("azure-native:search:Service")}
    return [
        a for a in graph.of_type("azure-native:authorization:RoleAssignment") if a.get("scope") in services
    ]


BUILTIN_ROLES_BY_ID = {guid: name for name, guid in BUILTIN_ROLES.items()}


def test_graph_exports_no_secret_values(graph: ResourceGraph) -> None:
    text = graph.to_json()
    assert "InstrumentationKey=" not in text and "AccountKey=" not in text


def test_dev_and_prod_differ_in_sizing_and_retention() -> None:
    dev, prod = config_of("pilot-dev"), config_of("pilot-prod")
    assert prod.log_retention_days > dev.log_retention_days
    assert prod.functions.always_ready > dev.functions.always_ready
    assert str(stack_file("pilot-dev").relative_to(PROJECT_DIR)) == "stacks/Pulumi.pilot-dev.yaml"
