"""What a change does to a stack's plan: resources added, removed and changed, setting by setting.

Two plans are compared by resource URN. A changed resource lists each setting that differs, as a dotted
path into its inputs with its old and new value. The comparison follows the data's meaning, not its
layout: lists of named items (app settings, container environments, agent definitions) are matched by
name, so one changed variable is one line and not a shifted list; a setting whose value is JSON text
(``AGENTSTAGE_AGENTS``) is compared as the JSON it holds; an item added or removed whole is one line.

Settings a reviewer must not miss - network exposure, authentication, identities, access grants,
encryption and SKUs that change cost - are labelled, and the diff lists them first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.graph import Resource, ResourceGraph

ROLE_TYPES = (
    "azure-native:authorization:RoleAssignment",
    "azure-native:cosmosdb:SqlResourceSqlRoleAssignment",
    "azure-native:managedidentity:FederatedIdentityCredential",
)
"""Resources that grant access: who gets which role, on what, is the reviewer's first question."""

_GRANT = re.compile(r"(?i)roledefinitionid|scope|principal|subject|issuer|audiences")
"""The settings of an access grant that decide what it grants (not its description)."""

DEPENDENCIES = "(dependencies)"
"""The pseudo-setting of a changed resource's dependencies: old = the ones dropped, new = the ones added."""

# (label, pattern on the setting's dotted path): the first label whose pattern matches is the setting's.
_SECURITY = (
    (
        "network access",
        re.compile(
            r"(?i)publicnetworkaccess|networkacls|networkruleset|iprules|defaultaction|virtualnetwork|subnet"
            r"|privateendpoint|allowblobpublicaccess|ingress|egress|cidr|publicip|enableprivatecluster"
            r"|authorizedipranges"
        ),
    ),
    (
        "authentication",
        re.compile(
            r"(?i)localauth|sharedkeyaccess|authmode|auth_mode|disablelocal|aadprofile|basicpublishing"
            r"|\ballow\b|anonymous|jwt|api_key|\bauth\b|authentication"
        ),
    ),
    ("identity", re.compile(r"(?i)identity|principalid|clientid|serviceaccount|federat")),
    ("access", re.compile(r"(?i)roledefinitionid|\brole\b|permission|policydocument|\bactions?\b")),
    ("encryption", re.compile(r"(?i)encrypt|tls|https|ssl|kms|purgeprotection|softdelete|certificate")),
    (
        "cost",
        re.compile(
            r"(?i)(^|\.)sku(\.|$)|capacity|tier|replicas|partitions|instancecount|alwaysready"
            r"|instancememory|vmsize|maxcount|mincount|throughput|retention"
        ),
    ),
)


@dataclass(frozen=True)
class SettingChange:
    """One setting of a resource: its path, its old and new value (``None``: absent), and its label."""

    path: str
    old: Any
    new: Any
    concern: str | None = None


@dataclass(frozen=True)
class ResourceChange:
    """A resource added, removed or changed, with the settings that make it matter."""

    urn: str
    type: str
    name: str
    kind: str
    """``added``, ``removed`` or ``changed``."""
    settings: tuple[SettingChange, ...] = ()

    @property
    def concerns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.concern for s in self.settings if s.concern))


@dataclass(frozen=True)
class PlanDiff:
    stack: str
    base_count: int
    head_count: int
    changes: tuple[ResourceChange, ...] = field(default=())

    def of_kind(self, kind: str) -> list[ResourceChange]:
        return [change for change in self.changes if change.kind == kind]

    @property
    def security(self) -> list[ResourceChange]:
        """Changes a reviewer must look at first: resources added or changed with a labelled setting.

        A removed resource takes its exposure with it; it is listed with the removals.
        """
        return [c for c in self.changes if c.concerns and c.kind != "removed"]

    @property
    def empty(self) -> bool:
        return not self.changes


def diff_graphs(base: ResourceGraph, head: ResourceGraph) -> PlanDiff:
    """Every resource of ``head`` not in ``base`` (added), of ``base`` not in ``head`` (removed), and in both
    with different settings, dependencies, parent or provider (changed); in the plans' order."""
    old = {r.urn: r for r in base.cloud_resources()}
    new = {r.urn: r for r in head.cloud_resources()}
    changes: list[ResourceChange] = []
    for resource in head.cloud_resources():
        if resource.urn not in old:
            changes.append(_added(resource))
            continue
        settings = tuple(_resource_changes(old[resource.urn], resource))
        if settings:
            changes.append(ResourceChange(resource.urn, resource.type, resource.name, "changed", settings))
    changes += [
        ResourceChange(r.urn, r.type, r.name, "removed") for r in base.cloud_resources() if r.urn not in new
    ]
    return PlanDiff(head.stack, len(old), len(new), tuple(changes))


def _added(resource: Resource) -> ResourceChange:
    """An added resource, with its labelled settings: the exposure and access it brings."""
    settings = tuple(
        SettingChange(path, None, value, concern)
        for path, value in flatten(resource.inputs)
        if (concern := concern_of(path, resource)) is not None
    )
    return ResourceChange(resource.urn, resource.type, resource.name, "added", settings)


def _resource_changes(old: Resource, new: Resource) -> Iterator[SettingChange]:
    for path, before, after in compare(old.inputs, new.inputs):
        yield SettingChange(path, before, after, concern_of(path, new))
    for attribute in ("parent", "provider"):
        if getattr(old, attribute) != getattr(new, attribute):
            yield SettingChange(f"({attribute})", getattr(old, attribute), getattr(new, attribute))
    gone, came = set(old.dependencies) - set(new.dependencies), set(new.dependencies) - set(old.dependencies)
    if gone or came:
        yield SettingChange(DEPENDENCIES, _names(gone) or None, _names(came) or None)


def compare(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(path, old, new)`` for each smallest part that differs; a part present on one side only is whole."""
    if old == new:
        return
    old, new = _decoded(old), _decoded(new)
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            yield from _compare_entry(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
    elif _named_list(old) and _named_list(new):
        before, after = _by_name(old), _by_name(new)
        for name in [*before, *(n for n in after if n not in before)]:
            yield from _compare_entry(before.get(name), after.get(name), f"{path}[{name}]")
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            yield from compare(before, after, f"{path}[{index}]")
    elif old != new:
        yield path, old, new


def _compare_entry(old: Any, new: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if old is None or new is None:
        if old != new:
            yield path, old, new
    else:
        yield from compare(old, new, path)


def _decoded(value: Any) -> Any:
    """JSON text holding an object or a list (an app setting such as ``AGENTSTAGE_AGENTS``) as its data."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _named_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and isinstance(item.get("name"), str) for item in value)
        and len({item["name"] for item in value}) == len(value)
    )


def _by_name(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Named items by name; a ``{"name", "value"}`` pair stands for its value."""
    return {item["name"]: item["value"] if set(item) == {"name", "value"} else item for item in items}


def concern_of(path: str, resource: Resource) -> str | None:
    """Why a setting matters to a reviewer (``None``: it is an ordinary setting)."""
    if resource.type in ROLE_TYPES:
        return "access" if _GRANT.search(path) else None
    return next((label for label, pattern in _SECURITY if pattern.search(path)), None)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaf values by dotted path, named lists keyed by name (``siteConfig.appSettings[AGENTSTAGE_X]``)."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif _named_list(value):
        for name, item in _by_name(value).items():
            yield from flatten(item, f"{prefix}[{name}]")
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def _names(urns: set[str]) -> list[str]:
    return sorted(urn.rsplit("::", 1)[-1] for urn in urns)
