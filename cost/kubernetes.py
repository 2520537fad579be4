"""Kubernetes objects cost nothing of their own: they run on a cluster's nodes.

Where the stack creates the cluster (AKS in the enterprise stage) its node pools are priced as VMs; on a
cluster the stack does not create, the nodes are its owner's. Either way the estimate says how much
capacity each workload requests, so the owner can price it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from core.graph import ResourceGraph
from core.workloads import K8S_WORKLOADS, containers, pod_spec

_ON_THE_NODES = "runs on the cluster's nodes: priced as the stack's node pools, or by the cluster's owner"
FREE: dict[str, str] = {
    "kubernetes:apps/v1:Deployment": _ON_THE_NODES,
    "kubernetes:core/v1:Namespace": "a Kubernetes object: no charge of its own",
    "kubernetes:core/v1:ServiceAccount": "a Kubernetes object: no charge of its own",
    "kubernetes:helm.sh/v3:Release": "an add-on's chart (KEDA, the Cluster Autoscaler): its pods run on the "
    "cluster's nodes",
    "kubernetes:keda.sh/v1alpha1:ScaledObject": "KEDA scaling: the replicas it starts run on the cluster's nodes",
    "kubernetes:keda.sh/v1alpha1:TriggerAuthentication": "a Kubernetes object: no charge of its own",
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": "a Kubernetes object: no charge of its own",
    "kubernetes:policy/v1:PodDisruptionBudget": "a Kubernetes object: no charge of its own",
}

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?$")
_FACTORS = {None: 1.0, "m": 0.001, "Ki": 1 / 1024**2, "Mi": 1 / 1024, "Gi": 1.0, "Ti": 1024.0}
"""CPU in cores (``250m``), memory in GiB (``512Mi``)."""


def capacity_notes(graph: ResourceGraph) -> Iterator[str]:
    """One line per workload: what each replica requests and how many replicas it runs."""
    scaling = {str(obj.get("spec.scaleTargetRef.name")): obj for obj in graph.of_type(SCALED_OBJECT)}
    for workload in graph.cloud_resources():
        if workload.type not in K8S_WORKLOADS or not pod_spec(workload):
            continue
        cpu = sum(
            _quantity(c.get("resources", {}).get("requests", {}).get("cpu")) for c in containers(workload)
        )
        memory = sum(
            _quantity(c.get("resources", {}).get("requests", {}).get("memory")) for c in containers(workload)
        )
        scaler = scaling.get(str(workload.get("metadata.name")))
        if scaler is not None:
            low, high = scaler.get("spec.minReplicaCount", 0), scaler.get("spec.maxReplicaCount", 100)
            replicas = f"{low}-{high} replicas (KEDA)"
        else:
            replicas = f"{workload.get('spec.replicas', 1)} replicas"
        yield f"{workload.name}: {cpu:g} vCPU and {memory:g} GiB requested per replica, {replicas}"


def _quantity(value: object) -> float:
    match = _QUANTITY.match(str(value)) if value is not None else None
    return float(match[1]) * _FACTORS[match[2]] if match else 0.0
