"""Human-readable views of a resource graph: the component tree and a summary by type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from core.graph import Resource, ResourceGraph, short_type

# Leaf input keys worth showing beside a resource: what it is and how it is secured. Searched at any
# depth, so a new resource type shows its settings without a table entry of its own.
NOTABLE_KEYS = (
    "kind",
    "tier",
    "capacity",
    "retentionInDays",
    "disableLocalAuth",
    "localAuthDisabled",
    "publicNetworkAccess",
    "httpsOnly",
    "enableHttpsTrafficOnly",
    "minTlsVersion",
    "minimumTlsVersion",
    "ftpsState",
    "allowSharedKeyAccess",
    "allowBlobPublicAccess",
    "enableRbacAuthorization",
    "enablePurgeProtection",
    "enableSoftDelete",
    "customSubDomainName",
    "raiPolicyName",
    "basePolicyName",
    "principalType",
    "role",
    "allow",
    "type",
    "instanceMemoryMB",
    "maximumInstanceCount",
)


def tree_lines(graph: ResourceGraph) -> Iterator[str]:
    """The graph as an indented tree: components, their children, and each one's key settings."""
    yield f"stack {graph.stack} ({len(graph.cloud_resources())} resources)"
    roots = [r for r in graph.resources if r.parent is None and not r.type.startswith("pulumi:providers:")]
    yield from _subtree(graph, roots, "")


def _subtree(graph: ResourceGraph, nodes: list[Resource], indent: str) -> Iterator[str]:
    for index, node in enumerate(nodes):
        last = index == len(nodes) - 1
        branch, extension = ("└─ ", "   ") if last else ("├─ ", "│  ")
        settings = key_settings(node)
        shown = f"  [{', '.join(f'{k}={v}' for k, v in settings.items())}]" if settings else ""
        yield f"{indent}{branch}{node.name}  {short_type(node.type)}{shown}"
        yield from _subtree(graph, graph.children(node.urn), indent + extension)


RUNTIME_SETTINGS = {"AGENTSTAGE_BUDGETS": "budgets", "AGENTSTAGE_BUDGET_BACKEND": "ledger"}
"""Runtime settings worth showing beside an app or workload: the budgets it enforces, and where."""


def key_settings(resource: Resource) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if "roleDefinitionId" in resource.inputs:
        found["role"] = role_name(str(resource.inputs["roleDefinitionId"]))
    _collect(resource.inputs, found)
    return found


def _collect(value: Any, found: dict[str, Any]) -> None:
    if isinstance(value, dict):
        if value.get("name") in RUNTIME_SETTINGS and isinstance(value.get("value"), str):
            found[RUNTIME_SETTINGS[value["name"]]] = _runtime_setting(value["name"], value["value"])
        for key, item in value.items():
            if key in NOTABLE_KEYS and not isinstance(item, dict | list) and key not in found:
                found[key] = item
            elif key == "sku" and isinstance(item, dict) and "name" in item:
                found.setdefault("sku", item["name"])
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


def _runtime_setting(name: str, value: str) -> str:
    """Budgets by name (``tenant-daily+caller-minute``); anything else as it is."""
    if name != "AGENTSTAGE_BUDGETS":
        return value
    try:
        rules = json.loads(value)
        return "+".join(str(rule["name"]) for rule in rules)
    except (ValueError, TypeError, KeyError):
        return value


def role_name(role_definition_id: str) -> str:
    """The readable name of a built-in role id, or the id's last segment."""
    from components.azure.role_ids import BUILTIN_ROLES, COSMOS_DATA_ROLES, FORBIDDEN_ROLES

    guid = role_definition_id.rsplit("/", 1)[-1]
    names = {v: k for k, v in {**BUILTIN_ROLES, **FORBIDDEN_ROLES, **COSMOS_DATA_ROLES}.items()}
    return names.get(guid, guid)


def summary_lines(graph: ResourceGraph) -> Iterator[str]:
    counts = graph.type_counts()
    width = max((len(short_type(t)) for t in counts), default=0)
    yield f"{sum(counts.values())} resources in {len(counts)} types:"
    for type_, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        yield f"  {short_type(type_):<{width}}  {count}"
