"""Export azure-native resources as ARM templates, the shape checkov's ``arm`` framework reads.

azure-native inputs are the REST body flattened next to the URL path parameters; ARM templates put the
body's envelope (``location``, ``tags``, ``kind``, ``sku``, ``identity``, ...) at the top and everything
else under ``properties``. So each resource becomes: the exact ARM type (:mod:`policies.export.arm_types`),
the ``apiVersion`` the SDK class uses (some checks read it), the name built from the path parameters,
the envelope, and all remaining inputs - the SDK's own ``properties`` object merged with the flattened
ones - under ``properties``. Unknown and secret values stay the marker strings the graph holds.

Each resource is written as its own template: checkov identifies ARM resources by ``type.name``, and
extension resources (every diagnostic setting is named ``to-workspace``) legitimately share both, so a
template per resource keeps every result attributable to exactly one graph resource.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from string import Formatter
from typing import Any

from core.graph import UNKNOWN, Resource
from policies.export.arm_types import ARM_TYPES, ArmType
from policies.export.base import Export, Suppression, dumps, file_stem, plain

FRAMEWORK = "arm"
PREFIX = "azure-native:"
SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"

# Top-level members of an ARM resource besides type/apiVersion/name/properties.
ENVELOPE = frozenset(
    {"location", "tags", "kind", "sku", "identity", "zones", "plan", "extendedLocation", "etag", "managedBy"}
)
# Inputs that are never body properties: the resource group (a path parameter of nearly every type)
# and the resource's own id/name/type, which ARM derives.
NOT_PROPERTIES = frozenset({"resourceGroupName", "id", "name", "type"})

_API_VERSION = re.compile(r"Uses Azure REST API version (\d{4}-\d{2}-\d{2}(?:-preview)?)")


class ApiVersionNotFound(LookupError):
    """The installed azure-native SDK has no class (or no API version) for a type token."""


@functools.cache
def api_version(token: str) -> str:
    """The REST API version the installed azure-native class for ``token`` uses.

    Read from the class's docstring in the module source, without importing the (large) module. The
    file is found by the class name's snake case, else by searching the module for its type token.
    """
    _, module, class_name = token.split(":")
    spec = importlib.util.find_spec("pulumi_azure_native")
    if spec is None or not spec.submodule_search_locations:
        raise ApiVersionNotFound("pulumi_azure_native is not installed")
    directory = Path(next(iter(spec.submodule_search_locations))).joinpath(*module.split("/"))
    marker = f'@pulumi.type_token("{token}")'
    guess = directory / (re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower() + ".py")
    for path in [guess, *sorted(directory.glob("*.py"))]:
        if not path.is_file():
            continue
        source = path.read_text(encoding="utf-8")
        start = source.find(marker)
        if start < 0:
            continue
        found = _API_VERSION.search(source, start)
        if found is None:
            raise ApiVersionNotFound(f"{token}: no 'Uses Azure REST API version' in {path.name}")
        return found.group(1)
    raise ApiVersionNotFound(f"{token}: no class with this type token in {directory}")


def export_arm(resources: Iterable[Resource], suppressions: Mapping[str, Sequence[Suppression]]) -> Export:
    """One ARM template per mapped azure-native resource; unmapped types are listed, not dropped.

    ``suppressions`` (by URN) become the resource's inline ``metadata.checkov`` waivers.
    """
    export = Export(FRAMEWORK)
    for index, resource in enumerate(resources):
        spec = ARM_TYPES.get(resource.type)
        if spec is None:
            export.unmapped.append(resource.type)
            continue
        document = arm_resource(resource, spec)
        waived = suppressions.get(resource.urn, ())
        if waived:
            # checkov reads "CHECK_ID:reason" items; a reason must stay on one line.
            document["metadata"] = {"checkov": [f"{s.check_id}:{' '.join(s.reason.split())}" for s in waived]}
        file_name = f"{file_stem(index, resource)}.json"
        export.files[file_name] = dumps(
            {"$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": [document]}
        )
        export.owners[file_name] = resource
        export.expected += 1
    return export


def arm_resource(resource: Resource, spec: ArmType) -> dict[str, Any]:
    """The ARM template resource for one graph resource."""
    inputs = plain(resource.inputs)
    path_keys = _name_fields(spec.name) | ({spec.scope} if spec.scope else set())
    document: dict[str, Any] = {
        "type": spec.type,
        "apiVersion": api_version(resource.type),
        "name": _arm_name(spec.name, inputs, resource.name),
    }
    if spec.scope and spec.scope in inputs:
        document["scope"] = inputs[spec.scope]
    explicit = inputs.get("properties")
    properties: dict[str, Any] = dict(explicit) if isinstance(explicit, dict) else {}
    for key, value in inputs.items():
        if key in path_keys or key in NOT_PROPERTIES or key == "properties":
            continue
        if key in ENVELOPE and key not in spec.in_properties:
            document[key] = _identity(value) if key == "identity" else value
        else:
            properties[spec.renames.get(key, key)] = value
    if properties:
        document["properties"] = properties
    elif isinstance(explicit, str):
        document["properties"] = explicit  # the whole body is unknown (or secret) until deployment
    return document


def _name_fields(template: str) -> set[str]:
    return {field for _, field, _, _ in Formatter().parse(template) if field}


def _arm_name(template: str, inputs: Mapping[str, Any], logical_name: str) -> str:
    """Fill the name template; a missing own name is auto-named by the provider from the logical name."""
    fields = [field for _, field, _, _ in Formatter().parse(template) if field]
    values = {field: str(inputs.get(field, UNKNOWN)) for field in fields}
    if template.endswith("}") and fields[-1] not in inputs:
        values[fields[-1]] = logical_name
    return template.format_map(values)


def _identity(identity: Any) -> Any:
    """azure-native lists user-assigned identity ids; ARM keys an object by them."""
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        return {**identity, "userAssignedIdentities": {i: {} for i in identity["userAssignedIdentities"]}}
    return identity
