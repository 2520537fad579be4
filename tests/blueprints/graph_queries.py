"""Questions the blueprint tests ask of a stack's graph: a resource by name, an app's settings, who holds what,
and whether the runtime would start with what a workload is given."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import pytest

from agent_runtime.agents import AgentCatalog
from agent_runtime.orchestrator.queues import check_agent_queues
from agent_runtime.settings import Settings
from agent_runtime.tasks.factory import check_task_settings
from agent_runtime.tools import default_registry
from components.azure.role_ids import BUILTIN_ROLES
from core.graph import Resource, ResourceGraph

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


def runtime_catalog(environment: Mapping[str, str]) -> AgentCatalog:
    """What a runtime started with ``environment`` (its ``AGENTSTAGE_*`` variables) would run, assembled by
    the runtime itself: settings, agents, orchestrations and ``agent_queues`` validate together, and the
    task store the worker needs is one the settings can open. Raises what the runtime would at start."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            if name.startswith("AGENTSTAGE_"):
                patch.setenv(name, value)
        settings = Settings()
        catalog = AgentCatalog.from_settings(settings, default_registry)
        check_agent_queues(settings.agent_queues, (agent.name for agent in catalog))
        check_task_settings(settings)
    return catalog
