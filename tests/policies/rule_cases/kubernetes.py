"""Fixtures for Kubernetes rules: a hardened agent Deployment, and the one change each rule catches."""

from __future__ import annotations

from typing import Any

from rule_cases.base import Case, merged, res

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"

CONTAINER = {
    "name": "agent",
    "image": "acr.example.io/agentstage/runtime:1.4.2",
    "securityContext": {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
    },
    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "512Mi"}},
}
LABELS = {"app": "agent", "azure.workload.identity/use": "true"}


def _deployment(
    container: dict[str, Any] | None = None,
    *,
    labels: dict[str, str] | None = None,
    service_account: str = "agent",
) -> dict[str, Any]:
    return {
        "metadata": {"name": "agent", "namespace": "agents"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": LABELS if labels is None else labels},
                "spec": {"serviceAccountName": service_account, "containers": [container or CONTAINER]},
            },
        },
    }


def _stack(
    deployment: dict[str, Any],
    *,
    policy_labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> list:
    policy = {
        "metadata": {"name": "default-deny", "namespace": "agents"},
        "spec": {"podSelector": {"matchLabels": policy_labels or {}}, "policyTypes": ["Ingress", "Egress"]},
    }
    account = {
        "metadata": {
            "name": "agent",
            "namespace": "agents",
            "annotations": annotations
            if annotations is not None
            else {"azure.workload.identity/client-id": "0000"},
        }
    }
    return [
        res(SERVICE_ACCOUNT, "agent-sa", account),
        res(NETWORK_POLICY, "default-deny", policy),
        res(DEPLOYMENT, "agent", deployment),
    ]


def _container_case(change: dict[str, Any]) -> Case:
    return Case(
        target="agent",
        passing=lambda: _stack(_deployment()),
        failing=lambda: _stack(_deployment(merged(CONTAINER, change))),
    )


CASES = {
    "AGS-K8S-002": _container_case({"securityContext": {"runAsNonRoot": None}}),
    "AGS-K8S-003": _container_case({"securityContext": {"readOnlyRootFilesystem": False}}),
    "AGS-K8S-004": _container_case({"resources": {"limits": {"memory": None}}}),
    "AGS-K8S-005": _container_case({"securityContext": {"allowPrivilegeEscalation": True}}),
    "AGS-K8S-006": Case(
        target="agent",
        passing=lambda: _stack(_deployment()),
        failing=lambda: _stack(_deployment(), policy_labels={"app": "something-else"}),
    ),
    "AGS-K8S-007": Case(
        target="agent",
        passing=lambda: _stack(_deployment()),
        failing=lambda: _stack(_deployment(), annotations={}),
    ),
    "AGS-K8S-008": _container_case({"image": "acr.example.io/agentstage/runtime:latest"}),
}
