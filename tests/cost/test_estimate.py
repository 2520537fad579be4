"""Every resource of every stack is priced, free for a stated reason, or listed as not priced."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from core.graph import ResourceGraph
from core.stacks import available_stacks, load_stack_config
from cost import estimate
from cost.estimate import catalog
from cost.model import SECONDS_PER_MONTH
from cost.prices import default_prices
from cost.usage import UsageProfile

Graphs = Callable[[str], ResourceGraph]
PRICES = default_prices()


def price(meter: str, sku: str, region: str = "swedencentral") -> float:
    row = PRICES.find(meter, sku, region)
    assert row is not None, (meter, sku, region)
    return row.price


def edited(graph: ResourceGraph, name: str, **inputs: Any) -> ResourceGraph:
    changed = ResourceGraph.from_json(graph.to_json())
    target = next(r for r in changed.resources if r.name == name and r.custom)
    changed.resources[changed.resources.index(target)] = dataclasses.replace(
        target, inputs={**json.loads(json.dumps(target.inputs)), **inputs}
    )
    return changed


@pytest.mark.parametrize("stack", available_stacks())
def test_every_resource_type_is_priced_or_free_with_a_reason(stack: str, stack_graph: Graphs) -> None:
    pricers, free = catalog()
    types = {r.type for r in stack_graph(stack).cloud_resources()}
    assert not types - set(pricers) - set(free), "add a pricer in cost/ or a reason it is free"
    assert all(len(free[t]) > 10 for t in types & set(free))
    assert not set(pricers) & set(free)
    assert estimate(stack_graph(stack)).unpriced == (), "a shipped stack is fully priced"


def test_a_region_without_prices_is_not_priced_never_zero(stack_graph: Graphs) -> None:
    graph = edited(stack_graph("foundation-staging"), "search-service", location="eastus")
    result = estimate(graph)
    [unpriced] = result.unpriced
    assert unpriced.resource == "search-service"
    assert (
        "no price for search.unit sku basic in eastus" in unpriced.reason
        and "add a row to prices/" in unpriced.reason
    )
    assert "search-service" not in dict(result.by_resource())


def test_flex_always_ready_counts_every_group_and_the_zone_redundant_minimum(stack_graph: Graphs) -> None:
    # pilot-prod: 1 always-ready HTTP instance configured, zone-redundant plan: the platform keeps 2.
    [line] = [l for l in estimate(stack_graph("pilot-prod")).lines if l.resource == "agent-app"]
    assert line.quantity == 2 * 4 * SECONDS_PER_MONTH
    assert line.monthly == pytest.approx(
        2 * 4 * 730 * 3600 * price("functions.flex.always-ready-baseline", "FC1")
    )
    # enterprise-prod's apps also run the task trigger, one more group, two more instances; the
    # orchestrator's the sweep's timer too, another group.
    baseline = "functions.flex.always-ready-baseline"
    enterprise = {
        l.resource: l for l in estimate(stack_graph("enterprise-prod")).lines if l.price.meter == baseline
    }
    assert enterprise["analyst-app"].quantity == 4 * 2 * SECONDS_PER_MONTH
    assert "2 http + 2 function:run_task" in enterprise["analyst-app"].basis
    assert enterprise["orchestrator-app"].quantity == 6 * 2 * SECONDS_PER_MONTH
    assert "2 http + 2 function:run_task + 2 function:sweep_tasks" in enterprise["orchestrator-app"].basis
    # pilot-dev scales to zero: no fixed line, and it says what it bills instead.
    dev = estimate(stack_graph("pilot-dev"))
    assert dev.fixed == 0 and any(f.resource == "agent-app" and "per execution" in f.reason for f in dev.free)


def test_the_orchestrators_app_pays_for_its_sweep_every_minute(stack_graph: Graphs) -> None:
    """The timer runs whatever the traffic: its executions are fixed lines, priced at the on-demand rate.
    Only the app that delegates sweeps (the agents' queues with its own)."""
    lines = {
        (l.resource, l.price.meter): l
        for l in estimate(stack_graph("foundation-staging")).lines
        if l.kind == "fixed"
    }
    assert ("research-app", "functions.flex.executions") not in lines
    executions = lines[("orchestrator-app", "functions.flex.executions")]
    assert executions.quantity == pytest.approx(730 * 60 / 1e6)
    assert executions.monthly == pytest.approx(730 * 60 / 1e6 * price("functions.flex.executions", "FC1"))
    time = lines[("orchestrator-app", "functions.flex.on-demand-execution-time")]
    assert time.quantity == pytest.approx(730 * 60 * 0.1 * 2)
    assert "sweeps" in time.basis and "x 2 GB" in time.basis


def test_units_replicas_and_node_pools_are_read_from_the_plan(stack_graph: Graphs) -> None:
    lines = estimate(stack_graph("enterprise-prod")).lines
    by = {(l.resource, l.price.meter): l for l in lines}
    assert by[("gateway", "apim.unit")].monthly == pytest.approx(2 * price("apim.unit", "StandardV2"))
    assert by[("search-service", "search.unit")].quantity == 3 * 1 * 730
    assert by[("bus-namespace", "servicebus.messaging-unit")].quantity == 730
    assert by[("cluster", "vm.linux")].quantity == 2 * 730  # system pool at its autoscale minimum
    assert by[("cluster-user-pool", "vm.linux")].price.sku == "Standard_D4ds_v5"
    assert by[("cluster", "aks.defender")].quantity == (2 * 2 + 1 * 4) * 730  # vCores of the idle nodes
    assert ("cluster", "disk.managed-os") not in by, "ephemeral OS disks cost nothing extra"
    private_endpoints = [l for l in lines if l.price.meter == "private-endpoint.hour"]
    assert len(private_endpoints) == len(
        stack_graph("enterprise-prod").of_type("azure-native:network:PrivateEndpoint")
    )


def test_a_managed_os_disk_and_a_manual_pool_are_priced(stack_graph: Graphs) -> None:
    graph = edited(
        stack_graph("enterprise-prod"),
        "cluster-user-pool",
        enableAutoScaling=False,
        count=3,
        osDiskType="Managed",
    )
    lines = {(l.resource, l.price.meter): l for l in estimate(graph).lines}
    assert lines[("cluster-user-pool", "vm.linux")].quantity == 3 * 730
    assert lines[("cluster-user-pool", "disk.managed-os")].quantity == 3


@pytest.mark.parametrize(
    ("frequency", "band"),
    [("PT1M", "PT1M"), ("PT5M", "PT5M"), ("PT10M", "PT10M"), ("PT15M", "PT15M"), ("PT1H", "PT15M")],
)
def test_log_alerts_cost_by_how_often_they_run(stack_graph: Graphs, frequency: str, band: str) -> None:
    graph = edited(stack_graph("enterprise-prod"), "alerts-5xx", evaluationFrequency=frequency)
    [line] = [l for l in estimate(graph).lines if l.resource == "alerts-5xx"]
    assert line.price.sku == band and line.monthly == price("alerts.log-rule", band)


def test_provisioned_throughput_is_fixed_and_pay_as_you_go_is_usage(stack_graph: Graphs) -> None:
    graph = edited(
        stack_graph("enterprise-prod"),
        "models-chat",
        sku={"name": "GlobalProvisionedManaged", "capacity": 15},
    )
    [line] = [l for l in estimate(graph).lines if l.resource == "models-chat"]
    assert (line.kind, line.quantity) == ("fixed", 15 * 730)
    graph = edited(
        stack_graph("pilot-prod"),
        "state-conversations",
        options={"autoscaleSettings": {"maxThroughput": 4000}},
    )
    [line] = [l for l in estimate(graph).lines if l.resource == "state-conversations"]
    assert line.quantity == 40 * 730 and line.price.meter == "cosmos.autoscale.throughput"


def test_kubernetes_workloads_say_what_capacity_they_request(stack_graph: Graphs) -> None:
    result = estimate(stack_graph("enterprise-k8s"))
    assert result.fixed == 0 and result.lines == ()
    assert (
        "research-deployment: 0.25 vCPU and 0.5 GiB requested per replica, 0-10 replicas (KEDA)"
        in result.notes
    )


def test_usage_lines_follow_the_profile_and_the_stack_files_model_prices(stack_graph: Graphs) -> None:
    config, _ = load_stack_config("pilot-prod")
    usage = UsageProfile.model_validate(
        {
            "agents": {
                "*": {"requestsPerDay": 1000, "inputTokensPerRequest": 2000, "outputTokensPerRequest": 500},
                "assistant": {"secondsPerRequest": 3, "embeddingTokensPerRequest": 100},
            },
            "logs": {"gbPerDay": 2},
        }
    )
    result = estimate(stack_graph("pilot-prod"), config, usage, usage_source="profile.yaml")
    lines = {(l.resource, l.price.meter): l for l in result.lines if l.kind == "usage"}
    chat = next(m for m in config.models if m.name == "chat")
    month = 1000 * 730 / 24
    assert lines[("models-chat", "openai.tokens.input")].monthly == pytest.approx(
        month * 2000 / 1e6 * chat.input_price_per_million
    )
    assert lines[("models-chat", "openai.tokens.output")].monthly == pytest.approx(
        month * 500 / 1e6 * chat.output_price_per_million
    )
    assert lines[("models-embeddings", "openai.tokens.embedding")].quantity == pytest.approx(
        month * 100 / 1e6
    )
    assert lines[("agent-app", "functions.flex.on-demand-execution-time")].quantity == pytest.approx(
        month * 3 * 4
    )
    assert lines[("observability-workspace", "logs.ingestion")].quantity == pytest.approx(2 * 730 / 24)
    # 90-day retention: 59 days kept beyond the 31 included.
    assert lines[("observability-workspace", "logs.retention")].quantity == pytest.approx(2 * 59)
    assert result.total() == pytest.approx(result.fixed + result.usage) and result.usage > 0


def test_a_model_without_prices_in_the_stack_file_is_not_priced(stack_graph: Graphs) -> None:
    config, _ = load_stack_config("pilot-prod")
    unpriced_models = tuple(m.model_copy(update={"input_price_per_million": None}) for m in config.models)
    config = config.model_copy(update={"models": unpriced_models})
    usage = UsageProfile.model_validate(
        {"agents": {"*": {"requestsPerDay": 10, "inputTokensPerRequest": 10}}}
    )
    result = estimate(stack_graph("pilot-prod"), config, usage, stack_file="stacks/Pulumi.pilot-prod.yaml")
    reasons = {u.resource: u.reason for u in result.unpriced}
    assert (
        "set inputPricePerMillion and outputPricePerMillion of model 'chat' in stacks/Pulumi.pilot-prod.yaml"
        in reasons["models-chat"]
    )


def test_orchestrators_do_not_pay_for_the_agents_they_queue(stack_graph: Graphs) -> None:
    config, _ = load_stack_config("foundation-staging")
    usage = UsageProfile.model_validate(
        {
            "agents": {
                "orchestrator": {"requestsPerDay": 100, "secondsPerRequest": 1},
                "research": {"requestsPerDay": 7},
            }
        }
    )
    lines = {
        (l.resource, l.price.meter): l
        for l in estimate(stack_graph("foundation-staging"), config, usage).lines
    }
    assert lines[("orchestrator-app", "functions.flex.executions")].quantity == pytest.approx(
        100 * 730 / 24 / 1e6
    )
    assert lines[("research-app", "functions.flex.executions")].quantity == pytest.approx(7 * 730 / 24 / 1e6)
