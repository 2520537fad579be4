"""The architecture as a Mermaid flowchart, derived from the resource graph alone.

Nodes are the building blocks (agentstage components); edges are what actually connects them in the
deployment, so the diagram cannot drift from the code:

- a role assignment: the block whose compute runs as the identity -> the block holding the scope;
- an API gateway backend whose URL is another block's app: gateway -> that app;
- an app setting whose value names another block's resource (an endpoint, a namespace): app -> block.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator

from agentstage.graph import Resource, ResourceGraph
from agentstage.render import role_name

ROLE_ASSIGNMENTS = ("azure-native:authorization:RoleAssignment", "azure-native:cosmosdb:SqlResourceSqlRoleAssignment")
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
COSMOS_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"


def mermaid_lines(graph: ResourceGraph) -> Iterator[str]:
    """``flowchart LR`` with one node per block and one labelled edge per connection."""
    blocks = _Blocks(graph)
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for source, target, label in (*_access(graph, blocks), *_routes(graph, blocks), *_settings(graph, blocks)):
        if source != target:
            edges[(source, target)].add(label)
    used = {urn for edge in edges for urn in edge}
    yield "flowchart LR"
    for urn in sorted(used, key=blocks.order):
        yield f'  {blocks.node_id(urn)}["{blocks.label(urn)}"]'
    for (source, target), labels in sorted(edges.items(), key=lambda e: (blocks.order(e[0][0]), blocks.order(e[0][1]))):
        yield f'  {blocks.node_id(source)} -->|"{", ".join(sorted(labels))}"| {blocks.node_id(target)}'


class _Blocks:
    """Which block (top-level agentstage component) each resource belongs to."""

    def __init__(self, graph: ResourceGraph) -> None:
        self.graph = graph
        self._position = {r.urn: i for i, r in enumerate(graph.resources)}
        self._ids: dict[str, str] = {}

    def of(self, resource: Resource) -> str | None:
        block = None
        current: Resource | None = resource
        while current is not None:
            if current.type.startswith("agentstage:") and not current.type.endswith(":Identity"):
                block = current.urn
            current = self.graph.by_urn(current.parent) if current.parent else None
        return block

    def order(self, urn: str) -> int:
        return self._position.get(urn, 0)

    def node_id(self, urn: str) -> str:
        if urn not in self._ids:
            self._ids[urn] = re.sub(r"\W", "_", self.graph.by_urn(urn).name) + f"_{len(self._ids)}"
        return self._ids[urn]

    def label(self, urn: str) -> str:
        resource = self.graph.by_urn(urn)
        return f"{resource.type.rsplit(':', 1)[-1]}: {resource.name}"


def _identity_users(graph: ResourceGraph, blocks: _Blocks) -> dict[str, str]:
    """Managed identity id -> the block whose compute runs as it."""
    users: dict[str, str] = {}
    for resource in graph.cloud_resources():
        identity = resource.inputs.get("identity")
        assigned = identity.get("userAssignedIdentities") if isinstance(identity, dict) else None
        block = blocks.of(resource)
        for identity_id in assigned or ():
            if block is not None:
                users[identity_id] = block
    return users


def _access(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    identities = {r.urn: r.mock_id for r in graph.of_type(IDENTITY)}
    users = _identity_users(graph, blocks)
    for assignment in (r for type_ in ROLE_ASSIGNMENTS for r in graph.of_type(type_)):
        holders = [identities[urn] for urn in assignment.dependencies if urn in identities]
        scope = _scope_resource(graph, assignment)
        target = blocks.of(scope) if scope is not None else None
        role = str(assignment.inputs.get("roleDefinitionId", ""))
        label = "data access" if role.endswith(COSMOS_DATA_CONTRIBUTOR) else role_name(role)
        for holder in holders:
            if holder in users and target is not None:
                yield users[holder], target, label


def _scope_resource(graph: ResourceGraph, assignment: Resource) -> Resource | None:
    scope = graph.by_mock_id(str(assignment.inputs.get("scope", "")))
    if scope is not None:
        return scope
    # Cosmos data-plane scopes are paths below the account ("<account id>/dbs/<db>").
    account = str(assignment.inputs.get("scope", "")).split("/dbs/")[0]
    return graph.by_mock_id(account)


def _routes(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    apps = {f"https://{a.inputs.get('name')}.azurewebsites.net": a for a in graph.of_type("azure-native:web:WebApp")}
    for backend in graph.of_type("azure-native:apimanagement:Backend"):
        app = apps.get(str(backend.inputs.get("url", "")).rstrip("/"))
        source, target = blocks.of(backend), blocks.of(app) if app else None
        if source and target:
            yield source, target, f"routes {backend.inputs.get('backendId')}"


def _settings(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    """App settings naming another block's resource, e.g. the gateway URL as the model endpoint."""
    named = {
        str(r.inputs.get(key)): r
        for r in graph.cloud_resources()
        for key in ("serviceName", "namespaceName", "accountName", "name")
        if key in r.inputs and len(str(r.inputs.get(key))) > 8 and not r.type.endswith("RoleAssignment")
    }
    for app in graph.of_type("azure-native:web:WebApp"):
        settings = app.inputs.get("siteConfig", {})
        for setting in settings.get("appSettings", []) if isinstance(settings, dict) else []:
            value, source = str(setting.get("value", "")), blocks.of(app)
            for name, resource in named.items():
                target = blocks.of(resource)
                if name in value and source and target and target != source:
                    yield source, target, setting["name"].removeprefix("AGENTSTAGE_").lower()
