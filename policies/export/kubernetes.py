"""Export pulumi-kubernetes resources as Kubernetes manifests, which checkov's ``kubernetes`` framework reads.

pulumi-kubernetes inputs already are manifests (``apiVersion``/``kind``/``metadata``/``spec``); the
exporter fills in what the provider would: ``apiVersion`` and ``kind`` from the type token and a
``metadata.name`` from the logical name (the provider auto-names; checkov drops a manifest without
``metadata``). Waivers become ``checkov.io/skipN`` annotations, on the pod template too, because checkov
checks a workload's pod template as a Pod of its own.

Each manifest is written to its own file so that every result maps back to one graph resource. checkov
counts that split-out Pod as a resource of its own, and ``expected`` counts it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from core.graph import Resource
from policies.export.base import Export, Suppression, file_stem, plain

FRAMEWORK = "kubernetes"
PREFIX = "kubernetes:"

# Kinds whose pod template checkov scans as a separate Pod (checkov.kubernetes SUPPORTED_POD_CONTAINERS_TYPES).
POD_TEMPLATE_KINDS = frozenset(
    {
        "Deployment",
        "DeploymentConfig",
        "DaemonSet",
        "Job",
        "ReplicaSet",
        "ReplicationController",
        "StatefulSet",
    }
)


def export_kubernetes(
    resources: Iterable[Resource], suppressions: Mapping[str, Sequence[Suppression]]
) -> Export:
    """One manifest file per Kubernetes resource, with waivers as skip annotations."""
    export = Export(FRAMEWORK)
    for index, resource in enumerate(resources):
        manifest = to_manifest(resource)
        waived = suppressions.get(resource.urn, ())
        if waived:
            _annotate(manifest, waived)
        file_name = f"{file_stem(index, resource)}.yaml"
        export.files[file_name] = yaml.safe_dump(manifest, sort_keys=False)
        export.owners[file_name] = resource
        export.expected += 1 + (1 if _splits_pod(manifest) else 0)
    return export


def to_manifest(resource: Resource) -> dict[str, Any]:
    """The manifest the provider would apply for ``resource`` (type token ``kubernetes:apps/v1:Deployment``)."""
    _, group_version, kind = resource.type.split(":")
    group, _, version = group_version.rpartition("/")
    manifest = plain(resource.inputs)
    manifest.setdefault("apiVersion", version if group == "core" else group_version)
    manifest.setdefault("kind", kind)
    metadata = manifest.setdefault("metadata", {})
    metadata.setdefault("name", resource.name)
    return manifest


def _annotate(manifest: dict[str, Any], waived: Sequence[Suppression]) -> None:
    # checkov splits the annotation value at "=", so a reason must not contain one.
    annotations = {
        f"checkov.io/skip{number}": f"{s.check_id}={' '.join(s.reason.replace('=', ':').split())}"
        for number, s in enumerate(waived, start=1)
    }
    targets = [manifest["metadata"]]
    template = manifest.get("spec", {}).get("template") if isinstance(manifest.get("spec"), dict) else None
    if isinstance(template, dict):
        targets.append(template.setdefault("metadata", {}))
    for metadata in targets:
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}


def _splits_pod(manifest: dict[str, Any]) -> bool:
    """Whether checkov will count this workload's pod template as an extra Pod (its own conditions)."""
    spec = manifest.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    if manifest.get("kind") not in POD_TEMPLATE_KINDS or not isinstance(template, dict):
        return False
    metadata = template.get("metadata")
    return (
        isinstance(metadata, dict)
        and isinstance(template.get("spec"), dict | list)
        and (metadata.get("name") is not None or metadata.get("labels") is not None)
    )
