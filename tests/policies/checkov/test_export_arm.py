"""ARM exporter: exact type casing, SDK API versions, properties nesting, names, waivers, unmapped types."""

from __future__ import annotations

import inspect
import json
import re
from string import Formatter
from typing import Any

import pytest
from checkov_graphs import azure_pilot, hand_built

from core.graph import SECRET, UNKNOWN, ResourceGraph
from policies.export.arm import api_version, export_arm
from policies.export.arm_types import ARM_TYPES
from policies.export.base import Suppression


@pytest.fixture(scope="module")
def pilot() -> ResourceGraph:
    return azure_pilot()


@pytest.fixture(scope="module")
def templates(pilot: ResourceGraph) -> dict[str, dict[str, Any]]:
    """The exported ARM resource of each fixture resource, by logical name."""
    export = export_arm(pilot.cloud_resources(), {})
    return {
        owner.name: json.loads(export.files[name])["resources"][0] for name, owner in export.owners.items()
    }


def _camel(name: str) -> str:
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@pytest.mark.parametrize("token", sorted(ARM_TYPES))
def test_every_mapped_type_exists_in_the_sdk_with_an_api_version(token: str) -> None:
    """A typo in a token or a name template would silently never match; the SDK itself is the reference."""
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", api_version(token)), token
    _, module, class_name = token.split(":")
    sdk_class = getattr(__import__(f"pulumi_azure_native.{module}", fromlist=[class_name]), class_name)
    inputs = {_camel(p) for p in inspect.signature(sdk_class._internal_init).parameters}
    spec = ARM_TYPES[token]
    fields = {f for _, f, _, _ in Formatter().parse(spec.name) if f} | ({spec.scope} if spec.scope else set())
    assert fields <= inputs, f"{token}: {sorted(fields - inputs)} are not inputs of {class_name}"
    assert re.fullmatch(r"Microsoft\.[A-Za-z]+(/[a-z][A-Za-z]+)+", spec.type), spec.type


def test_api_version_is_the_one_in_the_sdk_docstring() -> None:
    from pulumi_azure_native import keyvault

    documented = re.search(r"Uses Azure REST API version (\S+)\.", inspect.getsource(keyvault.Vault))
    assert documented and api_version("azure-native:keyvault:Vault") == documented.group(1)


def test_types_have_exact_arm_casing_and_an_api_version(templates: dict[str, dict[str, Any]]) -> None:
    expected = {
        "rg": "Microsoft.Resources/resourceGroups",
        "workspace": "Microsoft.OperationalInsights/workspaces",
        "app-insights": "Microsoft.Insights/components",
        "vault": "Microsoft.KeyVault/vaults",
        "openai": "Microsoft.CognitiveServices/accounts",
        "openai-chat": "Microsoft.CognitiveServices/accounts/deployments",
        "cosmos": "Microsoft.DocumentDB/databaseAccounts",
        "storage": "Microsoft.Storage/storageAccounts",
        "package-container": "Microsoft.Storage/storageAccounts/blobServices/containers",
        "plan": "Microsoft.Web/serverfarms",
        "app": "Microsoft.Web/sites",
        "ftp-basic-auth": "Microsoft.Web/sites/basicPublishingCredentialsPolicies",
        "storage-access": "Microsoft.Authorization/roleAssignments",
        "vault-diagnostics": "Microsoft.Insights/diagnosticSettings",
    }
    assert {name: templates[name]["type"] for name in expected} == expected
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", t["apiVersion"]) for t in templates.values())


def test_child_resources_are_named_parent_first(templates: dict[str, dict[str, Any]]) -> None:
    assert templates["openai-chat"]["name"] == "oai-ags-test/chat"
    assert templates["package-container"]["name"] == "stagstest/default/app-package"
    assert templates["ftp-basic-auth"]["name"] == "func-ags-test/ftp"


def test_flattened_inputs_are_nested_under_properties(templates: dict[str, dict[str, Any]]) -> None:
    app = templates["app"]
    assert set(app) == {"type", "apiVersion", "name", "location", "kind", "properties"}
    assert app["properties"]["httpsOnly"] is True
    assert app["properties"]["siteConfig"]["minTlsVersion"] == "1.2"
    assert "resourceGroupName" not in app["properties"] and "name" not in app["properties"]
    storage = templates["storage"]
    assert storage["sku"] == {"name": "Standard_LRS"} and storage["kind"] == "StorageV2"
    assert storage["properties"]["allowSharedKeyAccess"] is False
    assert storage["properties"]["minimumTlsVersion"] == "TLS1_2"
    assert storage["properties"]["supportsHttpsTrafficOnly"] is True  # the SDK's enableHttpsTrafficOnly
    assert "accountName" not in storage["properties"]


def test_sdk_properties_objects_are_not_nested_twice(templates: dict[str, dict[str, Any]]) -> None:
    vault = templates["vault"]["properties"]
    assert vault["enablePurgeProtection"] is True and "properties" not in vault
    assert templates["openai-chat"]["properties"]["raiPolicyName"] == "openai-content-filter"
    assert templates["openai-chat"]["sku"] == {"name": "GlobalStandard", "capacity": 10}


def test_type_specific_shapes(templates: dict[str, dict[str, Any]]) -> None:
    workspace = templates["workspace"]
    assert "sku" not in workspace and workspace["properties"]["sku"] == {"name": "PerGB2018"}
    insights = templates["app-insights"]["properties"]
    assert insights["DisableLocalAuth"] is True and insights["Application_Type"] == "web"
    assert (
        insights["WorkspaceResourceId"]
        == "/agentstage-plan/azure-native:operationalinsights:Workspace/workspace"
    )
    diagnostics = templates["vault-diagnostics"]
    assert diagnostics["name"] == "to-workspace" and diagnostics["scope"].endswith("/vault")
    assert "resourceUri" not in diagnostics["properties"]
    assignment = templates["storage-access"]
    assert assignment["name"] == "storage-access" and assignment["scope"].endswith("StorageAccount/storage")


def test_whole_floats_become_ints_and_markers_stay_strings() -> None:
    graph = hand_built(
        "floats",
        (
            "azure-native:search:Service",
            "search",
            {"searchServiceName": "srch", "replicaCount": 3.0, "partitionCount": 1.5, "endpoint": UNKNOWN},
        ),
        (
            "azure-native:keyvault:Secret",
            "secret",
            {"vaultName": "kv", "secretName": "s", "properties": {"value": SECRET}},
        ),
    )
    export = export_arm(graph.resources, {})
    search, secret = (json.loads(content)["resources"][0] for content in export.files.values())
    assert search["properties"]["replicaCount"] == 3 and isinstance(search["properties"]["replicaCount"], int)
    assert search["properties"]["partitionCount"] == 1.5
    assert search["properties"]["endpoint"] == UNKNOWN
    assert secret["properties"]["value"] == SECRET


def test_a_body_unknown_at_plan_time_is_kept_as_the_marker() -> None:
    graph = hand_built(
        "unknown", ("azure-native:keyvault:Vault", "vault", {"vaultName": "kv", "properties": UNKNOWN})
    )
    (content,) = export_arm(graph.resources, {}).files.values()
    assert json.loads(content)["resources"][0]["properties"] == UNKNOWN


def test_user_assigned_identities_become_an_object_keyed_by_id() -> None:
    graph = hand_built(
        "identity",
        (
            "azure-native:web:WebApp",
            "app",
            {"name": "app", "identity": {"type": "UserAssigned", "userAssignedIdentities": ["/ids/agent"]}},
        ),
    )
    (content,) = export_arm(graph.resources, {}).files.values()
    assert json.loads(content)["resources"][0]["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": {"/ids/agent": {}},
    }


def test_unmapped_types_are_reported_not_dropped(pilot: ResourceGraph) -> None:
    export = export_arm(pilot.cloud_resources(), {})
    assert export.unmapped == ["azure-native:storage:Blob"]
    assert export.expected == len(export.files) == len(pilot.cloud_resources()) - 1


def test_waivers_are_written_inline_on_one_line(pilot: ResourceGraph) -> None:
    vault = next(r for r in pilot.cloud_resources() if r.name == "vault")
    export = export_arm(
        [vault], {vault.urn: [Suppression("CKV_AZURE_189", "public by design:\n serverless egress")]}
    )
    (content,) = export.files.values()
    assert json.loads(content)["resources"][0]["metadata"] == {
        "checkov": ["CKV_AZURE_189:public by design: serverless egress"]
    }
