"""The Mermaid architecture diagram: every connection of the enterprise stage, derived from its graph."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from agentstage.diagram import mermaid_lines
from core.graph import ResourceGraph


@pytest.fixture(scope="module")
def edges(stack_graph: Callable[[str], ResourceGraph]) -> set[tuple[str, str, str]]:
    """(source label, label, target label) of every edge of enterprise-prod's diagram."""
    lines = list(mermaid_lines(stack_graph("enterprise-prod")))
    nodes = dict(re.findall(r'^  (\w+)\["(.+)"\]$', "\n".join(lines), re.MULTILINE))
    found = set()
    for source, labels, target in re.findall(
        r'^  (\w+) -->\|"(.+)"\| (\w+)$', "\n".join(lines), re.MULTILINE
    ):
        for label in labels.split(", "):
            found.add((nodes[source], label, nodes[target]))
    return found


def test_workloads_run_on_the_cluster_as_their_own_identity(edges: set[tuple[str, str, str]]) -> None:
    assert ("AgentWorkload: research", "runs on", "KubernetesCluster: cluster") in edges
    assert ("AgentWorkload: research", "Azure Service Bus Data Receiver", "Messaging: bus") in edges
    assert ("AgentWorkload: research", "llm_endpoint", "Gateway: gateway") in edges


def test_the_cluster_pulls_images_and_keda_reads_queue_depth(edges: set[tuple[str, str, str]]) -> None:
    assert ("KubernetesCluster: cluster", "AcrPull", "ContainerRegistry: registry") in edges
    assert ("KubernetesCluster: cluster", "Azure Service Bus Data Owner", "Messaging: bus") in edges


@pytest.mark.parametrize(
    "service",
    [
        "Models: models",
        "StateStore: state",
        "Secrets: secrets",
        "VectorSearch: search",
        "Messaging: bus",
        "ContainerRegistry: registry",
        "ServerlessAgent: analyst",
        "ServerlessAgent: orchestrator",
    ],
)
def test_the_network_reaches_every_data_service_privately(
    edges: set[tuple[str, str, str]], service: str
) -> None:
    assert ("Network: network", "private endpoint", service) in edges


def test_alerts_watch_telemetry_and_page_the_action_group(edges: set[tuple[str, str, str]]) -> None:
    assert ("ServiceAlerts: alerts", "alerts on", "Observability: observability") in edges
    assert ("ServiceAlerts: alerts", "pages", "CostGuard: cost") in edges


def test_blocks_without_connections_are_still_shown(stack_graph: Callable[[str], ResourceGraph]) -> None:
    assert '["PolicyGuard: policy"]' in "\n".join(mermaid_lines(stack_graph("enterprise-prod")))


def test_setting_edges_name_runtime_settings_only(edges: set[tuple[str, str, str]]) -> None:
    """The Functions trigger's own ServiceBusConnection__* settings repeat servicebus_namespace: not drawn."""
    bus_labels = {label for source, label, target in edges if target == "Messaging: bus"}
    assert "servicebus_namespace" in bus_labels
    assert not [label for label in bus_labels if "__" in label], bus_labels
