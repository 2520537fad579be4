"""The mutation list: each entry weakens one secure setting of a shipped stack's graph.

``agentstage check`` must catch every one: a named rule fails on the named resource and blocks.
Entries select resources by type (every matching resource is mutated, one at a time), so a stack
that gains resources gains mutations.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from agentstage.graph import Resource, ResourceGraph
from agentstage.workloads import WEB_APP
from components.azure.roles import FORBIDDEN_ROLES
from policies.rules.predicates import DIAGNOSTIC_SETTING, referencing

ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
ROLE_PREFIX = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/"
)


def with_input(resource: Resource, path: str, value: Any) -> Resource:
    """A copy of ``resource`` with the input at dotted ``path`` set (``None`` removes it)."""
    inputs = copy.deepcopy(resource.inputs)
    *parents, leaf = path.split(".")
    node = inputs
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return replace(resource, inputs=inputs)


def with_app_setting(resource: Resource, name: str, value: str) -> Resource:
    settings = [s for s in resource.get("siteConfig.appSettings") or [] if s.get("name") != name]
    return with_input(resource, "siteConfig.appSettings", [*settings, {"name": name, "value": value}])


def _edit_agents(resource: Resource, edit: Callable[[list[dict[str, Any]]], None]) -> Resource:
    setting = next(s for s in resource.get("siteConfig.appSettings") if s["name"] == "AGENTSTAGE_AGENTS")
    agents = json.loads(setting["value"])
    edit(agents)
    return with_app_setting(resource, "AGENTSTAGE_AGENTS", json.dumps(agents))


def _weaken_filter(resource: Resource) -> Resource:
    filters = copy.deepcopy(resource.get("properties.contentFilters"))
    for entry in filters:
        if entry["name"] == "Jailbreak":
            entry["blocking"] = False
    return with_input(resource, "properties.contentFilters", filters)


@dataclass(frozen=True)
class Mutation:
    """Weaken every resource of ``type_`` (one per mutated graph); ``rule`` must then fail on ``target``.

    ``stacks``: the stack-name prefixes where the change is a weakening (all stacks when empty): a Premium
    vault is wrong in a pilot and allowed in the enterprise stage.
    """

    name: str
    rule: str
    type_: str
    change: Callable[[Resource, ResourceGraph], tuple[ResourceGraph, str]]
    stacks: tuple[str, ...] = ()

    def apply(self, graph: ResourceGraph) -> Iterator[tuple[ResourceGraph, str]]:
        """Each mutated copy of ``graph`` with the name of the resource the rule must fail on."""
        if self.stacks and not graph.stack.startswith(self.stacks):
            return
        for resource in graph.of_type(self.type_):
            yield self.change(copy.deepcopy(resource), _copy(graph))


def _copy(graph: ResourceGraph) -> ResourceGraph:
    return ResourceGraph(stack=graph.stack, project=graph.project, resources=copy.deepcopy(graph.resources))


def _swap(graph: ResourceGraph, old: Resource, new: Resource) -> ResourceGraph:
    graph.resources = [new if r.urn == old.urn else r for r in graph.resources]
    return graph


def setting(name: str, rule: str, type_: str, path: str, value: Any) -> Mutation:
    return Mutation(name, rule, type_, lambda r, g: (_swap(g, r, with_input(r, path, value)), r.name))


def edit(name: str, rule: str, type_: str, change: Callable[[Resource], Resource]) -> Mutation:
    return Mutation(name, rule, type_, lambda r, g: (_swap(g, r, change(r)), r.name))


def _drop_diagnostics(resource: Resource, graph: ResourceGraph) -> tuple[ResourceGraph, str]:
    settings = {s.urn for s in referencing(graph, DIAGNOSTIC_SETTING, "resourceUri", resource)}
    graph.resources = [r for r in graph.resources if r.urn not in settings]
    return graph, resource.name


def _grant_owner(resource: Resource, graph: ResourceGraph) -> tuple[ResourceGraph, str]:
    """Add an Owner assignment on ``resource`` (a resource group) for the agent's identity."""
    owner = Resource(
        urn=resource.urn.rsplit("::", 2)[0] + f"::{ROLE_ASSIGNMENT}::agent-owner",
        type=ROLE_ASSIGNMENT,
        name="agent-owner",
        custom=True,
        inputs={
            "roleDefinitionId": ROLE_PREFIX + FORBIDDEN_ROLES["Owner"],
            "scope": resource.mock_id,
            "principalType": "ServicePrincipal",
            "principalId": "<unknown>",
        },
        mock_id=f"/agentstage-plan/{ROLE_ASSIGNMENT}/agent-owner",
    )
    graph.resources.append(owner)
    return graph, owner.name


ACCOUNT = "azure-native:cognitiveservices:Account"
SEARCH = "azure-native:search:Service"
COSMOS = "azure-native:cosmosdb:DatabaseAccount"
STORAGE = "azure-native:storage:StorageAccount"
VAULT = "azure-native:keyvault:Vault"
WORKSPACE = "azure-native:operationalinsights:Workspace"
APP_INSIGHTS = "azure-native:applicationinsights:Component"
DEPLOYMENT = "azure-native:cognitiveservices:Deployment"

MUTATIONS: tuple[Mutation, ...] = (
    setting("openai local auth on", "AGS-AZ-001", ACCOUNT, "properties.disableLocalAuth", False),
    setting("search api keys on", "AGS-AZ-002", SEARCH, "disableLocalAuth", False),
    setting("cosmos keys on", "AGS-AZ-004", COSMOS, "disableLocalAuth", False),
    setting("storage shared key on", "AGS-AZ-005", STORAGE, "allowSharedKeyAccess", True),
    setting("app insights ikey auth on", "AGS-AZ-006", APP_INSIGHTS, "disableLocalAuth", False),
    setting("log analytics shared key on", "AGS-AZ-007", WORKSPACE, "features.disableLocalAuth", False),
    setting("scm basic auth on", "AGS-AZ-012", "azure-native:web:WebAppScmAllowed", "allow", True),
    setting("ftp basic auth on", "AGS-AZ-012", "azure-native:web:WebAppFtpAllowed", "allow", True),
    setting("app identity removed", "AGS-AZ-009", WEB_APP, "identity", None),
    setting(
        "role widened to Contributor",
        "AGS-AZ-010",
        ROLE_ASSIGNMENT,
        "roleDefinitionId",
        ROLE_PREFIX + FORBIDDEN_ROLES["Contributor"],
    ),
    Mutation(
        "Owner granted on the resource group",
        "AGS-AZ-010",
        "azure-native:resources:ResourceGroup",
        _grant_owner,
    ),
    edit(
        "plaintext API key in app settings",
        "AGS-AZ-020",
        WEB_APP,
        lambda r: with_app_setting(r, "SEARCH_API_KEY", "2a4c6e8f0b1d3f5a7c9e1b3d5f7a9c0e"),
    ),
    edit(
        "storage connection string with key",
        "AGS-AZ-020",
        WEB_APP,
        lambda r: with_app_setting(
            r,
            "AzureWebJobsStorage",
            "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abcdefghijklmnop==",
        ),
    ),
    setting("vault purge protection off", "AGS-AZ-021", VAULT, "properties.enablePurgeProtection", False),
    setting("vault access policies", "AGS-AZ-022", VAULT, "properties.enableRbacAuthorization", False),
    setting("app TLS 1.0", "AGS-AZ-032", WEB_APP, "siteConfig.minTlsVersion", "1.0"),
    setting("storage TLS 1.0", "AGS-AZ-032", STORAGE, "minimumTlsVersion", "TLS1_0"),
    setting("cosmos TLS 1.0", "AGS-AZ-032", COSMOS, "minimalTlsVersion", "Tls"),
    setting("app accepts HTTP", "AGS-AZ-033", WEB_APP, "httpsOnly", False),
    setting("storage accepts HTTP", "AGS-AZ-033", STORAGE, "enableHttpsTrafficOnly", False),
    setting("plain FTP allowed", "AGS-AZ-034", WEB_APP, "siteConfig.ftpsState", "AllAllowed"),
    setting("anonymous blobs allowed", "AGS-AZ-035", STORAGE, "allowBlobPublicAccess", True),
    *(
        Mutation(f"diagnostic setting of {t.rsplit(':', 1)[-1]} dropped", "AGS-AZ-040", t, _drop_diagnostics)
        for t in (ACCOUNT, SEARCH, VAULT, COSMOS, STORAGE, WEB_APP, WORKSPACE)
    ),
    setting("retention below the stack minimum", "AGS-AZ-041", WORKSPACE, "retentionInDays", 7),
    setting("classic app insights", "AGS-AZ-042", APP_INSIGHTS, "workspaceResourceId", None),
    setting("capacity above the stage limit", "AGS-AZ-052", DEPLOYMENT, "sku.capacity", 5000),
    setting("free search tier", "AGS-AZ-053", SEARCH, "sku.name", "free"),
    replace(
        setting(
            "premium vault before the enterprise stage", "AGS-AZ-053", VAULT, "properties.sku.name", "premium"
        ),
        stacks=("pilot", "foundation"),
    ),
    setting("content filter removed", "AGS-AZ-060", DEPLOYMENT, "properties.raiPolicyName", None),
    setting(
        "content filter swapped for an undefined one",
        "AGS-AZ-060",
        DEPLOYMENT,
        "properties.raiPolicyName",
        "lenient",
    ),
    edit("jailbreaks not blocked", "AGS-AZ-061", "azure-native:cognitiveservices:RaiPolicy", _weaken_filter),
    edit(
        "agent token budget removed",
        "AGS-AI-001",
        WEB_APP,
        lambda r: _edit_agents(r, lambda agents: agents[0].pop("token_budget")),
    ),
    edit(
        "a ledger per instance",
        "AGS-AI-002",
        WEB_APP,
        lambda r: with_app_setting(r, "AGENTSTAGE_BUDGET_BACKEND", "sqlite"),
    ),
    edit(
        "a runtime budget below one call's hold",
        "AGS-AI-003",
        WEB_APP,
        lambda r: with_app_setting(
            r,
            "AGENTSTAGE_BUDGETS",
            '[{"name": "tiny", "scope": "tenant", "window_seconds": 60, "tokens": 1000}]',
        ),
    ),
)
