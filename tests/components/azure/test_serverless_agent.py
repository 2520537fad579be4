"""ServerlessAgent on Flex Consumption: its security and deployment contract, asserted on the offline graph."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from agent_runtime.settings_contract import cloud_required_fields, env_name
from components.azure import serverless_agent as module
from components.azure.context import AzureContext
from components.azure.identity import ManagedIdentity
from components.azure.naming import Naming
from components.azure.network import Network, NetworkArgs
from components.azure.role_ids import BUILTIN_ROLES
from components.azure.serverless_agent import ServerlessAgent, ServerlessAgentArgs
from components.packaging import Package
from core.engine import record
from core.graph import UNKNOWN, Resource, ResourceGraph

RUNTIME_SETTINGS = {
    "environment": "dev",
    "llm_provider": "azure_openai",
    "llm_endpoint": "https://oai-test.openai.azure.com/",
    "llm_auth": "entra",
    "agents": '[{"name": "helper", "instructions": "Help.", "model": "gpt-4o-mini"}]',
    "auth_mode": "jwt",
    "jwt_issuer": "https://login.microsoftonline.com/tenant/v2.0",
    "jwt_audience": "api://test",
    "jwt_jwks_url": "https://login.microsoftonline.com/tenant/discovery/v2.0/keys",
}
CONNECTION_STRING = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://x/"
PACKAGE = Package(path=Path("/build/function-app-lean.zip"), sha256="ab" * 32, vendored=False)
FLEX_REJECTED_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
}


def _context(*, isolated: bool = False) -> AzureContext:
    return AzureContext(
        resource_group_name="rg-agents-dev",
        location="swedencentral",
        naming=Naming(prefix="ags", environment="dev", suffix="x7k2q"),
        subscription_id="00000000-0000-0000-0000-000000000000",
        tenant_id="00000000-0000-0000-0000-0000000000aa",
        tags={"environment": "dev"},
        workspace_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/log",
        isolated=isolated,
    )


def _build(
    captured: list[ServerlessAgent] | None = None,
    *,
    isolated: bool = False,
    network: bool = False,
    **overrides: Any,
) -> Callable[[], None]:
    def program() -> None:
        context = _context(isolated=isolated)
        identity = ManagedIdentity("helper", context)
        if network:
            overrides["network"] = Network("network", context, NetworkArgs())
        args = ServerlessAgentArgs(
            identity=identity,
            package=PACKAGE,
            runtime_settings=RUNTIME_SETTINGS,
            telemetry_connection_string=CONNECTION_STRING,
            **overrides,
        )
        agent = ServerlessAgent("helper", context, args)
        if captured is not None:
            captured.append(agent)

    return program


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    return record(_build(always_ready=1))


def _one(graph: ResourceGraph, type_: str) -> Resource:
    found = graph.of_type(type_)
    assert len(found) == 1, f"expected one {type_}, found {[r.urn for r in found]}"
    return found[0]


def _app_settings(app: Resource) -> dict[str, Any]:
    return {pair["name"]: pair["value"] for pair in app.get("siteConfig.appSettings")}


def test_everything_is_parented_to_the_component(graph: ResourceGraph) -> None:
    agent = _one(graph, "agentstage:azure:ServerlessAgent")
    identity = _one(graph, "agentstage:azure:Identity")
    for resource in graph.cloud_resources():
        assert resource.parent in {agent.urn, identity.urn}, resource.urn


def test_storage_account_refuses_keys_public_blobs_and_old_tls(graph: ResourceGraph) -> None:
    account = _one(graph, "azure-native:storage:StorageAccount")
    assert account.get("allowSharedKeyAccess") is False, account.urn
    assert account.get("minimumTlsVersion") == "TLS1_2", account.urn
    assert account.get("allowBlobPublicAccess") is False, account.urn
    assert account.get("enableHttpsTrafficOnly") is True, account.urn
    assert account.get("kind") == "StorageV2" and account.get("sku.name") == "Standard_LRS", account.urn
    assert account.get("publicNetworkAccess") == "Enabled", account.urn
    container = _one(graph, "azure-native:storage:BlobContainer")
    assert container.get("publicAccess") == "None", container.urn


@pytest.fixture(scope="module")
def isolated() -> ResourceGraph:
    return record(_build(isolated=True, network=True))


def test_isolated_stage_turns_public_access_off_on_the_app_and_its_storage(isolated: ResourceGraph) -> None:
    account = _one(isolated, "azure-native:storage:StorageAccount")
    assert account.get("publicNetworkAccess") == "Disabled", account.urn
    assert account.get("networkRuleSet.defaultAction") == "Deny", account.urn
    app = _one(isolated, "azure-native:web:WebApp")
    assert app.get("publicNetworkAccess") == "Disabled", app.urn


def test_public_stage_keeps_the_app_public_and_out_of_any_vnet(graph: ResourceGraph) -> None:
    app = _one(graph, "azure-native:web:WebApp")
    assert app.get("publicNetworkAccess") == "Enabled", app.urn
    assert app.get("virtualNetworkSubnetId") is None, app.urn
    assert app.get("outboundVnetRouting") is None, app.urn


def test_isolated_app_joins_the_functions_subnet_and_routes_everything_through_it(
    isolated: ResourceGraph,
) -> None:
    app = _one(isolated, "azure-native:web:WebApp")
    [functions] = [
        s for s in isolated.of_type("azure-native:network:Subnet") if s.name == "network-functions"
    ]
    assert app.get("virtualNetworkSubnetId") == functions.mock_id, app.urn
    assert app.get("outboundVnetRouting") == {"allTraffic": True}, app.urn


def test_an_explicit_subnet_wins_over_the_network_default() -> None:
    subnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/apps"
    app = _one(record(_build(isolated=True, network=True, subnet_id=subnet)), "azure-native:web:WebApp")
    assert app.get("virtualNetworkSubnetId") == subnet, app.urn


def test_isolated_app_and_storage_get_private_endpoints_with_dns(isolated: ResourceGraph) -> None:
    app = _one(isolated, "azure-native:web:WebApp")
    account = _one(isolated, "azure-native:storage:StorageAccount")
    zones = {
        z.mock_id: z.get("privateZoneName") for z in isolated.of_type("azure-native:privatedns:PrivateZone")
    }
    groups = {
        g.get("privateEndpointName"): g for g in isolated.of_type("azure-native:network:PrivateDnsZoneGroup")
    }
    found = set()
    for endpoint in isolated.of_type("azure-native:network:PrivateEndpoint"):
        [connection] = endpoint.get("privateLinkServiceConnections")
        [config] = groups[endpoint.get("privateEndpointName")].get("privateDnsZoneConfigs")
        found |= {
            (connection["privateLinkServiceId"], g, zones[config["privateDnsZoneId"]])
            for g in connection["groupIds"]
        }
    assert found == {
        (app.mock_id, "sites", "privatelink.azurewebsites.net"),
        (account.mock_id, "blob", "privatelink.blob.core.windows.net"),
        (account.mock_id, "queue", "privatelink.queue.core.windows.net"),
    }


def test_isolated_package_is_published_after_the_endpoints_and_their_dns(isolated: ResourceGraph) -> None:
    publish = _one(isolated, "command:local:Command")
    needed = [
        *isolated.of_type("azure-native:network:PrivateEndpoint"),
        *isolated.of_type("azure-native:network:PrivateDnsZoneGroup"),
        *isolated.of_type("azure-native:privatedns:VirtualNetworkLink"),
    ]
    assert len(needed) == 3 + 3 + 3
    missing = [r.urn for r in needed if r.urn not in publish.dependencies]
    assert not missing, f"{publish.urn} does not wait for {missing}"
    assert "inside its virtual network" in publish.get("environment.PRIVATE_APP_HINT"), publish.urn


def test_public_package_publish_carries_no_private_hint(graph: ResourceGraph) -> None:
    assert _one(graph, "command:local:Command").get("environment.PRIVATE_APP_HINT") is None


def test_isolated_stage_without_a_network_is_refused() -> None:
    with pytest.raises(Exception, match="isolated stage needs ServerlessAgentArgs.network"):
        record(_build(isolated=True))


def test_private_link_targets_are_the_site_and_the_storage_services() -> None:
    captured: list[ServerlessAgent] = []
    record(_build(captured))
    targets = [(t.name, t.group_id, t.dns_zone) for t in captured[0].private_link_targets]
    assert targets == [
        ("helper", "sites", "privatelink.azurewebsites.net"),
        ("helper-storage", "blob", "privatelink.blob.core.windows.net"),
        ("helper-storage", "queue", "privatelink.queue.core.windows.net"),
    ]


def test_plan_is_flex_consumption_on_linux(graph: ResourceGraph) -> None:
    plan = _one(graph, "azure-native:web:AppServicePlan")
    assert plan.get("sku") == {"tier": "FlexConsumption", "name": "FC1"}, plan.urn
    assert plan.get("kind") == "functionapp" and plan.get("reserved") is True, plan.urn


def test_app_is_https_only_with_tls12_and_no_ftp(graph: ResourceGraph) -> None:
    app = _one(graph, "azure-native:web:WebApp")
    assert app.get("kind") == "functionapp,linux", app.urn
    assert app.get("httpsOnly") is True, app.urn
    assert app.get("siteConfig.minTlsVersion") == "1.2", app.urn
    assert app.get("siteConfig.scmMinTlsVersion") == "1.2", app.urn
    assert app.get("siteConfig.ftpsState") == "Disabled", app.urn
    assert app.get("siteConfig.http20Enabled") is True, app.urn
    assert "netFrameworkVersion" not in app.get("siteConfig"), f"{app.urn}: Flex rejects netFrameworkVersion"


def test_app_runs_as_the_user_assigned_identity_only(graph: ResourceGraph) -> None:
    app = _one(graph, "azure-native:web:WebApp")
    identity = _one(graph, "azure-native:managedidentity:UserAssignedIdentity")
    assert app.get("identity") == {"type": "UserAssigned", "userAssignedIdentities": [identity.mock_id]}, (
        app.urn
    )


def test_function_app_config_loads_the_package_with_the_identity(graph: ResourceGraph) -> None:
    app = _one(graph, "azure-native:web:WebApp")
    identity = _one(graph, "azure-native:managedidentity:UserAssignedIdentity")
    storage = app.get("functionAppConfig.deployment.storage")
    assert storage["type"] == "blobContainer", app.urn
    assert storage["value"] == UNKNOWN, f"{app.urn}: the container URL comes from the account's endpoints"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": identity.mock_id,
    }, app.urn
    assert app.get("functionAppConfig.runtime") == {"name": "python", "version": "3.11"}, app.urn
    assert app.get("functionAppConfig.scaleAndConcurrency") == {
        "instanceMemoryMB": 2048,
        "maximumInstanceCount": 100,
        "alwaysReady": [{"name": "http", "instanceCount": 1}],
    }, app.urn


def test_host_storage_is_reached_by_identity(graph: ResourceGraph) -> None:
    app = _one(graph, "azure-native:web:WebApp")
    account = _one(graph, "azure-native:storage:StorageAccount")
    settings = _app_settings(app)
    assert settings["AzureWebJobsStorage__accountName"] == account.get("accountName"), app.urn
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity", app.urn
    assert "AzureWebJobsStorage__clientId" in settings, app.urn
    assert "AzureWebJobsStorage" not in settings, f"{app.urn}: no connection string"


def test_no_app_setting_flex_rejects(graph: ResourceGraph) -> None:
    app = _one(graph, "azure-native:web:WebApp")
    assert not FLEX_REJECTED_SETTINGS & _app_settings(app).keys(), app.urn


def test_no_app_setting_carries_a_key(graph: ResourceGraph) -> None:
    app = _one(graph, "azure-native:web:WebApp")
    settings = _app_settings(app)
    for name, value in settings.items():
        assert not re.search(r"AccountKey=|SharedAccessSignature|sig=", str(value)), f"{app.urn}: {name}"
    assert not {env_name("llm_api_key"), env_name("api_key"), env_name("api_keys")} & settings.keys(), app.urn


def test_every_cloud_required_runtime_setting_is_set(graph: ResourceGraph) -> None:
    settings = _app_settings(_one(graph, "azure-native:web:WebApp"))
    missing = {env_name(field) for field in cloud_required_fields()} - settings.keys()
    assert not missing, f"missing runtime settings: {sorted(missing)}"
    assert settings[env_name("llm_auth")] == "entra"
    assert settings[env_name("sqlite_path")].startswith("/tmp/"), "the package mount is read-only on Flex"


def test_runtime_authenticates_as_the_identity_the_app_runs_as() -> None:
    def program() -> None:
        context = _context()
        identity = ManagedIdentity("helper", context)
        settings = {**RUNTIME_SETTINGS, "identity_client_id": "someone-else"}
        args = ServerlessAgentArgs(
            identity=identity,
            package=PACKAGE,
            runtime_settings=settings,
            telemetry_connection_string=CONNECTION_STRING,
        )
        ServerlessAgent("helper", context, args)

    app = _one(record(program), "azure-native:web:WebApp")
    assert _app_settings(app)[env_name("identity_client_id")] == UNKNOWN, (
        "the identity's client id, not the caller's"
    )


SERVICE_BUS = {"bus_backend": "servicebus", "servicebus_namespace": "sb-test.servicebus.windows.net"}


@pytest.mark.parametrize(
    ("consumed", "connected"),
    [
        ({**SERVICE_BUS, "task_queue": "tasks-helper"}, True),
        ({**SERVICE_BUS, "ingest_queue": "knowledge-ingest", "tasks_enabled": "false"}, True),
        (SERVICE_BUS, False),  # sends only (an API that queues tasks elsewhere): no trigger, no connection
        ({"task_queue": "tasks-helper"}, False),  # the embedded bus: no Service Bus trigger
    ],
    ids=["task-queue", "ingest-queue", "no-queue", "not-service-bus"],
)
def test_an_app_that_consumes_a_service_bus_queue_gets_the_identity_connection(
    consumed: dict[str, str], connected: bool
) -> None:
    """runtime/function_app.py registers a trigger on AGENTSTAGE_TASK_QUEUE or AGENTSTAGE_INGEST_QUEUE over
    the ``ServiceBusConnection`` connection, whose settings name the namespace and the app's identity."""

    def program() -> None:
        context = _context()
        args = ServerlessAgentArgs(
            identity=ManagedIdentity("helper", context),
            package=PACKAGE,
            runtime_settings={**RUNTIME_SETTINGS, **consumed},
            telemetry_connection_string=CONNECTION_STRING,
        )
        ServerlessAgent("helper", context, args)

    settings = _app_settings(_one(record(program), "azure-native:web:WebApp"))
    connection = {name: value for name, value in settings.items() if name.startswith("ServiceBusConnection")}
    if not connected:
        assert connection == {}
        return
    assert connection == {
        "ServiceBusConnection__fullyQualifiedNamespace": "sb-test.servicebus.windows.net",
        "ServiceBusConnection__credential": "managedidentity",
        "ServiceBusConnection__clientId": settings[env_name("identity_client_id")],
    }


def test_telemetry_authenticates_with_entra(graph: ResourceGraph) -> None:
    settings = _app_settings(_one(graph, "azure-native:web:WebApp"))
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == CONNECTION_STRING
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in settings


def test_basic_publishing_credentials_are_disabled(graph: ResourceGraph) -> None:
    app = _one(graph, "azure-native:web:WebApp")
    for type_ in ("azure-native:web:WebAppFtpAllowed", "azure-native:web:WebAppScmAllowed"):
        policy = _one(graph, type_)
        assert policy.get("allow") is False, policy.urn
        assert policy.get("name") == app.get("name"), policy.urn


def test_identity_gets_blob_data_owner_on_the_account_only(graph: ResourceGraph) -> None:
    grant = _one(graph, "azure-native:authorization:RoleAssignment")
    account = _one(graph, "azure-native:storage:StorageAccount")
    assert grant.get("roleDefinitionId").endswith(BUILTIN_ROLES["Storage Blob Data Owner"]), grant.urn
    assert grant.get("scope") == account.mock_id, grant.urn
    assert grant.get("principalType") == "ServicePrincipal", grant.urn


def test_app_starts_after_its_role_and_container_exist(graph: ResourceGraph) -> None:
    app = _one(graph, "azure-native:web:WebApp")
    grant = _one(graph, "azure-native:authorization:RoleAssignment")
    container = _one(graph, "azure-native:storage:BlobContainer")
    assert {grant.urn, container.urn} <= set(app.dependencies), app.urn


def test_package_is_published_after_the_app_and_role_and_on_every_change(graph: ResourceGraph) -> None:
    publish = _one(graph, "command:local:Command")
    app = _one(graph, "azure-native:web:WebApp")
    grant = _one(graph, "azure-native:authorization:RoleAssignment")
    assert {app.urn, grant.urn} <= set(publish.dependencies), publish.urn
    assert publish.get("triggers") == [PACKAGE.sha256], publish.urn
    assert "az functionapp deployment source config-zip" in publish.get("create"), publish.urn
    assert "--build-remote false" in publish.get("create"), f"{publish.urn}: the package is ready to run"
    assert publish.get("environment.PACKAGE_PATH") == str(PACKAGE.path), publish.urn
    assert publish.get("environment.APP_NAME") == app.get("name"), publish.urn


def test_diagnostics_cover_the_app_the_account_and_its_blobs(graph: ResourceGraph) -> None:
    app = _one(graph, "azure-native:web:WebApp")
    account = _one(graph, "azure-native:storage:StorageAccount")
    settings = {r.name: r for r in graph.of_type("azure-native:monitor:DiagnosticSetting")}
    assert settings["helper-app-diagnostics"].get("resourceUri") == app.mock_id
    assert settings["helper-app-diagnostics"].get("logs") == [{"categoryGroup": "allLogs", "enabled": True}]
    assert settings["helper-storage-diagnostics"].get("resourceUri") == account.mock_id
    assert settings["helper-storage-diagnostics"].get("logs") == []
    assert (
        settings["helper-storage-blob-diagnostics"].get("resourceUri")
        == f"{account.mock_id}/blobServices/default"
    )


def test_url_is_known_before_deployment() -> None:
    captured: list[ServerlessAgent] = []
    urls: list[str] = []

    def program() -> None:
        _build(captured)()
        captured[0].url.apply(urls.append)

    record(program)
    assert urls == ["https://ags-dev-func-helper-x7k2q.azurewebsites.net"]


def test_missing_cloud_required_setting_fails_the_plan() -> None:
    def program() -> None:
        context = _context()
        ServerlessAgent(
            "helper",
            context,
            ServerlessAgentArgs(
                identity=ManagedIdentity("helper", context),
                package=PACKAGE,
                runtime_settings={k: v for k, v in RUNTIME_SETTINGS.items() if k != "llm_endpoint"},
                telemetry_connection_string=CONNECTION_STRING,
            ),
        )

    with pytest.raises(Exception, match="llm_endpoint"):
        record(program)


def test_lean_package_is_refused_when_a_real_engine_deploys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "vendoring_needed", lambda: True)
    with pytest.raises(Exception, match="vendor_dependencies=True"):
        record(_build())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"instance_memory_mb": 1024}, "instance_memory_mb must be one of 512, 2048, 4096; got 1024"),
        ({"maximum_instance_count": 0}, "maximum_instance_count must be 1..1000; got 0"),
        (
            {"always_ready": 5, "maximum_instance_count": 2},
            r"always_ready must be 0..maximum_instance_count \(2\)",
        ),
        ({"python_version": "3.12"}, "built for Python 3.11, but python_version is 3.12"),
    ],
)
def test_args_name_the_setting_the_range_and_the_value(overrides: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "identity": object(),
        "package": PACKAGE,
        "runtime_settings": RUNTIME_SETTINGS,
        "telemetry_connection_string": CONNECTION_STRING,
    }
    with pytest.raises(ValueError, match=message):
        ServerlessAgentArgs(**{**fields, **overrides})


def test_outputs_are_pulumi_outputs() -> None:
    captured: list[ServerlessAgent] = []
    record(_build(captured))
    agent = captured[0]
    for output in (agent.app_name, agent.app_id, agent.default_hostname, agent.url):
        assert isinstance(output, pulumi.Output)
    assert isinstance(agent.identity, ManagedIdentity)
