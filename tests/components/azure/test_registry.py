"""The container registry: no admin user or anonymous pull, private in isolated stages, AcrPull for the kubelet only."""

from __future__ import annotations

import pytest

from components.azure.registry import ContainerRegistry, ContainerRegistryArgs
from components.azure.role_ids import BUILTIN_ROLES
from core.graph import ResourceGraph

REGISTRY = "azure-native:containerregistry:Registry"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
KUBELET_OBJECT_ID = "00000000-0000-0000-0000-00000000ku01"


def _factory(context, identity):
    registry = ContainerRegistry("images", context)
    registry.grant_pull(KUBELET_OBJECT_ID)
    return {"loginServer": registry.login_server, "registryId": registry.registry_id}


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_factory)


@pytest.fixture(scope="module")
def isolated(build) -> tuple[ResourceGraph, ContainerRegistry]:
    created: list[ContainerRegistry] = []

    def factory(context, identity):
        created.append(ContainerRegistry("images", context, ContainerRegistryArgs(zone_redundant=True)))

    return build(factory, isolated=True), created[0]


def test_no_credential_can_pull(graph, only) -> None:
    registry = only(graph, REGISTRY)
    assert registry.get("adminUserEnabled") is False, registry.urn
    assert registry.get("anonymousPullEnabled") is False, registry.urn


def test_open_stages_get_standard_with_public_access(graph, only) -> None:
    registry = only(graph, REGISTRY)
    assert registry.get("sku.name") == "Standard", registry.urn
    assert registry.get("publicNetworkAccess") == "Enabled", registry.urn
    assert registry.get("policies") is None, "retention and export policies are Premium-only"
    assert registry.get("registryName").isalnum(), "registry names are alphanumeric"


def test_isolated_stages_get_premium_without_public_access(isolated, only) -> None:
    graph, component = isolated
    registry = only(graph, REGISTRY)
    assert registry.get("sku.name") == "Premium", registry.urn
    assert registry.get("publicNetworkAccess") == "Disabled", registry.urn
    assert registry.get("networkRuleBypassOptions") == "None", registry.urn
    assert registry.get("dataEndpointEnabled") is True, registry.urn
    assert registry.get("zoneRedundancy") == "Enabled", registry.urn
    assert registry.get("policies.exportPolicy.status") == "disabled", registry.urn
    assert registry.get("policies.retentionPolicy") == {"days": 7, "status": "enabled"}, registry.urn
    (target,) = component.private_link_targets
    assert (target.name, target.group_id, target.dns_zone) == (
        "registry",
        "registry",
        "privatelink.azurecr.io",
    )


def test_acr_pull_goes_to_the_kubelet_identity_only(graph, only, assert_grant) -> None:
    registry = only(graph, REGISTRY)
    (assignment,) = graph.of_type(ROLE_ASSIGNMENT)
    assert_grant(assignment, BUILTIN_ROLES["AcrPull"], registry)
    assert assignment.get("principalId") == KUBELET_OBJECT_ID, assignment.urn


def test_diagnostics_go_to_the_workspace(graph, only, assert_diagnostics, build) -> None:
    assert_diagnostics(graph, only(graph, REGISTRY), build.workspace_id)


@pytest.mark.parametrize(
    ("args", "isolated", "message"),
    [
        (ContainerRegistryArgs(sku="Standard"), True, "needs the Premium registry"),
        (ContainerRegistryArgs(zone_redundant=True), False, "zone_redundant needs the Premium"),
        (ContainerRegistryArgs(untagged_retention_days=400), False, "untagged_retention_days"),
    ],
)
def test_impossible_settings_are_refused(args, isolated, message) -> None:
    with pytest.raises(ValueError, match=message):
        args.resolved_sku(isolated)
