"""Exporters from the resource graph to the files checkov reads, one module per checkov framework.

:func:`export_graph` routes every cloud resource by its provider: azure-native to ARM templates, pulumi-aws
to a Terraform plan, pulumi-kubernetes to manifests; Dockerfiles are passed through. A resource is
exported, or listed in ``NOT_SCANNABLE`` with the reason it has no configuration to scan, or reported
as unmapped - never dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from core.graph import Resource, ResourceGraph
from policies.export import arm, kubernetes, terraform
from policies.export.base import Export, Suppression
from policies.export.dockerfile import export_dockerfiles

__all__ = ["NOT_SCANNABLE", "Export", "GraphExport", "Suppression", "export_graph"]

NOT_SCANNABLE: Mapping[str, str] = MappingProxyType(
    {
        "azure-native:storage:Blob": "a blob's content, uploaded through the data plane; not an ARM resource "
        "(its storage account and container are scanned)",
        "command:local:Command": "a command run on the deploying machine; it leaves no cloud configuration",
        "kubernetes:helm.sh/v3:Release": "rendered by Helm at deploy time; its manifests are not in the graph",
        "kubernetes:helm.sh/v4:Chart": "rendered by Helm at deploy time; its manifests are not in the graph",
    }
)


@dataclass
class GraphExport:
    """Every framework's export of one graph, plus what could not be exported and why."""

    exports: list[Export]
    not_scannable: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)


def export_graph(
    graph: ResourceGraph,
    suppressions: Mapping[str, Sequence[Suppression]] | None = None,
    dockerfiles: Iterable[Path] = (),
) -> GraphExport:
    """Export ``graph``'s cloud resources (and ``dockerfiles``); ``suppressions`` are inline waivers by URN."""
    suppressions = suppressions or {}
    result = GraphExport(exports=[])
    by_prefix: dict[str, list[Resource]] = {arm.PREFIX: [], terraform.PREFIX: [], kubernetes.PREFIX: []}
    for resource in graph.cloud_resources():
        if resource.type in NOT_SCANNABLE:
            result.not_scannable[resource.type] = NOT_SCANNABLE[resource.type]
            continue
        prefix = next((p for p in by_prefix if resource.type.startswith(p)), None)
        if prefix is None:
            result.unmapped.append(resource.type)
        else:
            by_prefix[prefix].append(resource)
    candidates = [
        arm.export_arm(by_prefix[arm.PREFIX], suppressions),
        terraform.export_terraform(by_prefix[terraform.PREFIX]),
        kubernetes.export_kubernetes(by_prefix[kubernetes.PREFIX], suppressions),
        export_dockerfiles(dockerfiles),
    ]
    for export in candidates:
        result.unmapped.extend(export.unmapped)
        if export.files:
            result.exports.append(export)
    result.unmapped = sorted(set(result.unmapped))
    return result
