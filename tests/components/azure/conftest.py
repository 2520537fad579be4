"""Shared fixtures: build one Azure component on its own, under mocks, and read the resulting graph."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pulumi
import pytest
from pulumi_azure_native import resources

from components.azure.context import AzureContext
from components.azure.identity import ManagedIdentity
from components.azure.naming import Naming
from core.engine import record
from core.graph import Resource, ResourceGraph

SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
WORKSPACE_ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-shared/providers/Microsoft.OperationalInsights/workspaces/log-shared"
TAGS = {"project": "agentstage", "environment": "test"}
DIAGNOSTIC_SETTING = "azure-native:monitor:DiagnosticSetting"

OUTPUTS = "agentstage:test:Outputs"

Factory = Callable[[AzureContext, ManagedIdentity], Mapping[str, pulumi.Input[object]] | None]


class Builder:
    """Builds the graph of a small program around one component; its attributes are the context's values.

    The program creates a resource group, an :class:`AzureContext` on it and an agent identity, then
    calls ``factory(context, identity)`` to build the component under test (and call its grants).
    What the factory returns is recorded as the inputs of a test-only ``agentstage:test:Outputs``
    resource: exactly what a consumer of those outputs would receive (known, unknown or secret).
    """

    subscription_id = SUBSCRIPTION_ID
    tenant_id = TENANT_ID
    workspace_id = WORKSPACE_ID
    tags = TAGS

    def __call__(
        self,
        factory: Factory,
        *,
        isolated: bool = False,
        workspace_id: str | None = WORKSPACE_ID,
        mocks: pulumi.runtime.Mocks | None = None,
    ) -> ResourceGraph:
        def program() -> None:
            group = resources.ResourceGroup(
                "rg", resource_group_name="rg-agentstage-test", location="westeurope"
            )
            context = AzureContext(
                resource_group_name=group.name,
                location="westeurope",
                naming=Naming(prefix="agst", environment="test", suffix="abcde"),
                subscription_id=SUBSCRIPTION_ID,
                tenant_id=TENANT_ID,
                tags=TAGS,
                workspace_id=workspace_id,
                isolated=isolated,
            )
            outputs = factory(context, ManagedIdentity("agent", context))
            if outputs:
                pulumi.CustomResource(OUTPUTS, "outputs", dict(outputs))

        return record(program, mocks=mocks)


@pytest.fixture(scope="session")
def build() -> Builder:
    """``build(factory, isolated=False, workspace_id=..., mocks=...)``: the graph of one component's program."""
    return Builder()


@pytest.fixture(scope="session")
def only() -> Callable[[ResourceGraph, str], Resource]:
    """``only(graph, type)``: the one resource of ``type``, failing if there are none or several."""

    def _only(graph: ResourceGraph, type_: str) -> Resource:
        found = graph.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, found {[r.urn for r in found]}"
        return found[0]

    return _only


@pytest.fixture(scope="session")
def outputs(only) -> Callable[[ResourceGraph], dict[str, object]]:
    """``outputs(graph)``: the component outputs the factory returned, as a consumer receives them."""
    return lambda graph: only(graph, OUTPUTS).inputs


@pytest.fixture(scope="session")
def assert_grant() -> Callable[[Resource, str, Resource], None]:
    """``assert_grant(assignment, role_guid, target)``: the assignment gives ``role_guid`` on exactly ``target``."""

    def _assert(assignment: Resource, role_guid: str, target: Resource) -> None:
        role = assignment.get("roleDefinitionId")
        assert (
            role
            == f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"
        ), f"{assignment.urn}: role {role}"
        assert assignment.get("scope") == target.mock_id, (
            f"{assignment.urn}: scope {assignment.get('scope')} is not {target.urn}"
        )
        assert assignment.get("principalType") == "ServicePrincipal", assignment.urn

    return _assert


@pytest.fixture(scope="session")
def assert_diagnostics() -> Callable[[ResourceGraph, Resource, str], None]:
    """``assert_diagnostics(graph, target, workspace_id)``: ``target`` has one setting sending to the workspace."""

    def _assert(graph: ResourceGraph, target: Resource, workspace_id: str) -> None:
        settings = [d for d in graph.of_type(DIAGNOSTIC_SETTING) if d.get("resourceUri") == target.mock_id]
        assert len(settings) == 1, f"{target.urn}: expected one diagnostic setting, found {len(settings)}"
        assert settings[0].get("workspaceId") == workspace_id, (
            f"{settings[0].urn}: workspace {settings[0].get('workspaceId')}"
        )
        assert settings[0].get("logs"), f"{settings[0].urn}: sends no logs"

    return _assert
