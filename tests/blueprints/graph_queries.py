"""Questions the blueprint tests ask of a stack's graph: a resource by name, an app's settings, who holds what."""

from __future__ import annotations

from collections import defaultdict

from agentstage.graph import Resource, ResourceGraph
from components.azure.roles import BUILTIN_ROLES

IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"


def by_name(graph: ResourceGraph, type_: str, name: str) -> Resource:
    matches = [r for r in graph.of_type(type_) if r.name == name]
    assert len(matches) == 1, f"expected one {type_} named {name}, found {[r.urn for r in matches]}"
    return matches[0]


def identity(graph: ResourceGraph, name: str) -> Resource:
    return by_name(graph, IDENTITY, name)


def app_settings(graph: ResourceGraph, app: str) -> dict[str, str]:
    web_app = by_name(graph, "azure-native:web:WebApp", f"{app}-app")
    return {s["name"]: s["value"] for s in web_app.get("siteConfig.appSettings")}


def grants(graph: ResourceGraph) -> dict[str, set[tuple[str, str]]]:
    """Managed identity name -> {(role name, scoped resource name)} over ARM role assignments.

    Assignments to principals that are not this stack's managed identities (the AKS kubelet identity,
    the deployer) are keyed by the assignment's own name instead.
    """
    roles = {guid: name for name, guid in BUILTIN_ROLES.items()}
    identities = {r.urn: r.name for r in graph.of_type(IDENTITY)}
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for assignment in graph.of_type("azure-native:authorization:RoleAssignment"):
        holders = [identities[urn] for urn in assignment.dependencies if urn in identities]
        assert len(holders) <= 1, f"{assignment.urn}: depends on several identities {holders}"
        scope = graph.by_mock_id(assignment.get("scope"))
        assert scope is not None, f"{assignment.urn}: scope is not a resource of this stack"
        role = roles[assignment.get("roleDefinitionId").rsplit("/", 1)[-1]]
        found[holders[0] if holders else assignment.name].add((role, scope.name))
    return found
