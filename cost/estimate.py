"""Price every resource of a plan: each type has a pricer, or is free with a reason, or is not priced.

A pricer reads the resource's own settings (SKU, capacity, always-ready instances, node counts) for its
fixed monthly cost, and the usage profile for its usage cost; :class:`Pricing` gives it the price table,
the resource's region and the traffic of the agents it serves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from core.config import StackConfig
from core.graph import Resource, ResourceGraph
from core.workloads import settings
from cost.model import (
    DAYS_PER_MONTH,
    HOURS_PER_MONTH,
    CostLine,
    Estimate,
    FreeResource,
    Kind,
    UnpricedResource,
)
from cost.prices import PRICES_DIR, PriceTable, default_prices
from cost.usage import AgentUsage, UsageProfile

AGENTS_SETTING = "AGENTSTAGE_AGENTS"
"""The runtime setting listing the agents an app or workload serves (agent_runtime.settings ``agents``)."""
QUEUES_SETTING = "AGENTSTAGE_AGENT_QUEUES"
"""The agents it hands to a queue instead of running them (agent_runtime.settings ``agent_queues``)."""

Outcome = CostLine | UnpricedResource | FreeResource
Pricer = Callable[[Resource, "Pricing"], Iterable[Outcome]]


@dataclass
class Pricing:
    """What a pricer may ask: prices, the resource's region, the stack's models and the usage profile."""

    graph: ResourceGraph
    prices: PriceTable
    config: StackConfig | None = None
    usage: UsageProfile | None = None
    stack_file: str = "the stack file"
    _regions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for resource in self.graph.cloud_resources():
            name, location = resource.inputs.get("resourceGroupName"), resource.inputs.get("location")
            if resource.type.endswith(":resources:ResourceGroup") and isinstance(location, str):
                self._regions[str(name)] = location

    def region(self, resource: Resource) -> str | None:
        """The resource's location, else its resource group's, else the stack's."""
        location = resource.inputs.get("location")
        if isinstance(location, str) and location:
            return location.lower()
        group = self._regions.get(str(resource.inputs.get("resourceGroupName")))
        if group:
            return group.lower()
        return self.config.location if self.config else None

    def line(
        self, resource: Resource, kind: Kind, meter: str, sku: str, quantity: float, basis: str
    ) -> CostLine | UnpricedResource:
        """``quantity`` units of ``meter`` at ``sku`` in the resource's region, or why it cannot be priced."""
        region = self.region(resource) or "?"
        price = self.prices.find(meter, sku, region)
        if price is None:
            known = self.prices.skus(meter, region)
            offer = f" (priced there: {', '.join(known)})" if known else ""
            return UnpricedResource(
                resource.name,
                resource.type,
                f"no price for {meter} sku {sku} in {region}{offer}: add a row to {PRICES_DIR.name}/",
            )
        return CostLine(resource.name, resource.type, kind, price, quantity, basis)

    def all_month(
        self, resource: Resource, meter: str, sku: str, count: float = 1, what: str = ""
    ) -> CostLine | UnpricedResource:
        """A fixed line for ``count`` units billed every hour of the month (``what`` says what they are)."""
        basis = f"{what} x {HOURS_PER_MONTH} h" if what else f"{HOURS_PER_MONTH} h"
        return self.line(resource, "fixed", meter, sku, count * HOURS_PER_MONTH, basis)

    def agents_of(self, resource: Resource) -> list[dict[str, Any]]:
        """The agents an app or workload runs itself: its AGENTSTAGE_AGENTS, less those it sends to a queue
        (AGENTSTAGE_AGENT_QUEUES: an orchestrator lists its delegates, whose own apps run them)."""
        values = {setting.name: setting.value for setting in settings(resource)}
        agents = _json(values.get(AGENTS_SETTING), list)
        queued = _json(values.get(QUEUES_SETTING), dict)
        return [
            agent
            for agent in agents
            if isinstance(agent, dict) and isinstance(agent.get("name"), str) and agent["name"] not in queued
        ]

    def all_agents(self) -> Iterator[tuple[dict[str, Any], AgentUsage]]:
        """Every agent of the stack with its usage; agents the profile says nothing of are skipped."""
        if self.usage is None:
            return
        seen: set[str] = set()
        for resource in self.graph.cloud_resources():
            for agent in self.agents_of(resource):
                usage = self.usage.agent(agent["name"])
                if agent["name"] not in seen and usage is not None:
                    seen.add(agent["name"])
                    yield agent, usage

    def monthly(self, per_request: str | None = None, agents: list[dict[str, Any]] | None = None) -> float:
        """Requests a month of the stack's agents (or of ``agents``), times ``per_request`` of each if given:
        ``monthly("messages_per_request")`` is bus operations a month."""
        names = None if agents is None else {a["name"] for a in agents}
        return sum(
            usage.value("requests_per_day")
            * DAYS_PER_MONTH
            * (usage.value(per_request) if per_request else 1.0)
            for agent, usage in self.all_agents()
            if names is None or agent["name"] in names
        )


FREE_EVERYWHERE: dict[str, str] = {
    "command:local:Command": "runs on the machine that deploys (publishing the agents' package)",
}


def estimate(
    graph: ResourceGraph,
    config: StackConfig | None = None,
    usage: UsageProfile | None = None,
    *,
    prices: PriceTable | None = None,
    stack_file: str = "the stack file",
    usage_source: str | None = None,
) -> Estimate:
    """The stack's monthly cost: fixed lines always, usage lines when ``usage`` is given."""
    from cost.kubernetes import capacity_notes

    pricers, free = catalog()
    pricing = Pricing(graph, prices or default_prices(), config, usage, stack_file)
    if usage is not None:
        usage.check_agents(
            sorted({a["name"] for r in graph.cloud_resources() for a in pricing.agents_of(r)}),
            usage_source or "--usage",
        )
    lines: list[CostLine] = []
    freed: list[FreeResource] = []
    unpriced: list[UnpricedResource] = []
    for resource in graph.cloud_resources():
        if resource.type in pricers:
            outcomes: Iterable[Outcome] = pricers[resource.type](resource, pricing)
        elif resource.type in free:
            outcomes = [FreeResource(resource.name, resource.type, free[resource.type])]
        else:
            outcomes = [
                UnpricedResource(resource.name, resource.type, f"no pricing rule for {resource.type}")
            ]
        for outcome in outcomes:
            if isinstance(outcome, CostLine):
                lines.append(outcome)
            elif isinstance(outcome, FreeResource):
                freed.append(outcome)
            else:
                unpriced.append(outcome)
    return Estimate(
        stack=graph.stack,
        currency=_currency(lines),
        lines=tuple(lines),
        free=tuple(freed),
        unpriced=tuple(unpriced),
        usage_profile=usage_source if usage is not None else None,
        notes=tuple(capacity_notes(graph)),
    )


def catalog() -> tuple[dict[str, Pricer], dict[str, str]]:
    """Every cloud's pricers by type, and the types that cost nothing of their own with the reason."""
    from cost import aws, azure, kubernetes

    return {**azure.PRICERS, **aws.PRICERS}, {**FREE_EVERYWHERE, **azure.FREE, **aws.FREE, **kubernetes.FREE}


def _json(value: Any, kind: type) -> Any:
    """A JSON setting's value if it is a ``kind`` (list or dict), else an empty one."""
    try:
        decoded = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        decoded = None
    return decoded if isinstance(decoded, kind) else kind()


def _currency(lines: list[CostLine]) -> str:
    currencies = {line.price.currency for line in lines} or {"USD"}
    if len(currencies) > 1:
        raise ValueError(
            f"prices in several currencies ({', '.join(sorted(currencies))}): one table, one currency"
        )
    return currencies.pop()
