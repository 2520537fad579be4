"""Secrets on its own: an RBAC-only vault that cannot be purged, public only when the stage is not isolated."""

from __future__ import annotations

import pytest

from components.azure.role_ids import BUILTIN_ROLES
from components.azure.secrets import Secrets, SecretsArgs
from core.graph import ResourceGraph

VAULT = "azure-native:keyvault:Vault"


def _factory(context, identity):
    secrets = Secrets("secrets", context, SecretsArgs(soft_delete_retention_days=30))
    return {
        "grant": secrets.grant_secrets_read(identity).id,
        "vaultId": secrets.vault_id,
        "vaultName": secrets.vault_name,
        "vaultUri": secrets.vault_uri,
    }


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_factory)


@pytest.fixture(scope="module")
def isolated(build) -> ResourceGraph:
    return build(_factory, isolated=True)


def test_vault_is_rbac_only_soft_deleted_and_purge_protected(graph, only, build):
    vault = only(graph, VAULT)
    assert vault.get("properties.enableRbacAuthorization") is True, vault.urn
    assert vault.get("properties.enableSoftDelete") is True, vault.urn
    assert vault.get("properties.softDeleteRetentionInDays") == 30, vault.urn
    assert vault.get("properties.enablePurgeProtection") is True, vault.urn
    assert vault.get("properties.accessPolicies") is None, vault.urn
    assert vault.get("properties.sku") == {"family": "A", "name": "standard"}, vault.urn
    assert vault.get("properties.tenantId") == build.tenant_id, vault.urn


def test_outputs_are_known_before_deployment(graph, only, outputs):
    vault = only(graph, VAULT)
    name = vault.get("vaultName")
    assert 3 <= len(name) <= 24 and name.endswith("-abcde"), f"{vault.urn}: {name}"
    assert outputs(graph) | {"grant": None} == {
        "grant": None,
        "vaultId": vault.mock_id,
        "vaultName": name,
        "vaultUri": f"https://{name}.vault.azure.net/",
    }


def test_public_access_is_allowed_but_trusted_services_only_bypass(graph, only):
    vault = only(graph, VAULT)
    assert vault.get("properties.publicNetworkAccess") == "Enabled", vault.urn
    assert vault.get("properties.networkAcls") == {"defaultAction": "Allow", "bypass": "AzureServices"}, (
        vault.urn
    )


def test_isolated_turns_public_access_off(isolated, only):
    vault = only(isolated, VAULT)
    assert vault.get("properties.publicNetworkAccess") == "Disabled", vault.urn
    assert vault.get("properties.networkAcls") == {"defaultAction": "Deny", "bypass": "None"}, vault.urn


def test_diagnostics_go_to_the_workspace(graph, only, build, assert_diagnostics):
    assert_diagnostics(graph, only(graph, VAULT), build.workspace_id)


def test_grant_secrets_read_is_secrets_user_on_the_vault(graph, only, outputs, assert_grant):
    assignment = only(graph, "azure-native:authorization:RoleAssignment")
    assert_grant(assignment, BUILTIN_ROLES["Key Vault Secrets User"], only(graph, VAULT))
    assert outputs(graph)["grant"] == assignment.mock_id, (
        f"grant_secrets_read did not return {assignment.urn}"
    )


def test_tags_propagate(graph, only, build):
    vault = only(graph, VAULT)
    assert vault.get("tags") == build.tags, vault.urn


@pytest.mark.parametrize("days", [6, 91])
def test_retention_out_of_range_is_refused(days):
    with pytest.raises(ValueError, match=f"soft_delete_retention_days must be between 7 and 90, got {days}"):
        SecretsArgs(soft_delete_retention_days=days)
