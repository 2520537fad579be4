"""Cost: budgets that alert, model capacity and SKUs sized for the stage, costs attributable to an owner."""

from __future__ import annotations

from typing import Any

from core.graph import Resource, ResourceGraph
from policies.findings import Severity
from policies.rules.context import StackContext
from policies.rules.model import STACK_TYPE, Rule, Stage, Verdict, failed, passed
from policies.rules.predicates import shown

BUDGET = "azure-native:consumption:Budget"
MODEL_DEPLOYMENT = "azure-native:cognitiveservices:Deployment"

CAPACITY_LIMITS: dict[Stage, int] = {Stage.PILOT: 100, Stage.FOUNDATION: 300, Stage.ENTERPRISE: 1000}
"""Largest capacity of one model deployment per stage, in thousands of tokens per minute.

A pilot serves a handful of users; 100K TPM is already ~US$ thousands a day at full use. Larger
deployments belong to stages with budgets and a gateway's token limits in front of them.
"""

_EVERYWHERE = {Stage.PILOT, Stage.FOUNDATION, Stage.ENTERPRISE}
_PAYG_MODELS = {"GlobalStandard", "DataZoneStandard", "Standard"}
_PROVISIONED_MODELS = {"ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged"}

SKU_ALLOW_LISTS: dict[str, tuple[str, dict[Stage, frozenset[str]]]] = {
    "azure-native:cognitiveservices:Account": ("sku.name", {s: frozenset({"S0"}) for s in _EVERYWHERE}),
    # Provisioned throughput (PTU) is a monthly commitment: enterprise only, where budgets exist.
    MODEL_DEPLOYMENT: (
        "sku.name",
        {
            Stage.PILOT: frozenset(_PAYG_MODELS),
            Stage.FOUNDATION: frozenset(_PAYG_MODELS),
            Stage.ENTERPRISE: frozenset(_PAYG_MODELS | _PROVISIONED_MODELS),
        },
    ),
    # `free` is shared and has no SLA; the large tiers are for enterprise-scale indexes.
    "azure-native:search:Service": (
        "sku.name",
        {
            Stage.PILOT: frozenset({"basic", "standard"}),
            Stage.FOUNDATION: frozenset({"basic", "standard", "standard2"}),
            Stage.ENTERPRISE: frozenset(
                {
                    "basic",
                    "standard",
                    "standard2",
                    "standard3",
                    "storage_optimized_l1",
                    "storage_optimized_l2",
                }
            ),
        },
    ),
    "azure-native:keyvault:Vault": (
        "properties.sku.name",
        {
            Stage.PILOT: frozenset({"standard"}),
            Stage.FOUNDATION: frozenset({"standard"}),
            Stage.ENTERPRISE: frozenset({"standard", "premium"}),
        },
    ),
    # Private endpoints need Premium, so isolated stages cannot use Standard.
    "azure-native:servicebus:Namespace": (
        "sku.name",
        {
            Stage.PILOT: frozenset({"Standard"}),
            Stage.FOUNDATION: frozenset({"Standard", "Premium"}),
            Stage.ENTERPRISE: frozenset({"Premium"}),
        },
    ),
    # Developer has no SLA and Premium (classic) costs thousands a month: not before enterprise.
    "azure-native:apimanagement:ApiManagementService": (
        "sku.name",
        {
            Stage.PILOT: frozenset({"Consumption", "BasicV2"}),
            Stage.FOUNDATION: frozenset({"Consumption", "BasicV2", "StandardV2"}),
            Stage.ENTERPRISE: frozenset({"StandardV2", "Premium", "PremiumV2"}),
        },
    ),
    "azure-native:operationalinsights:Workspace": (
        "sku.name",
        {
            Stage.PILOT: frozenset({"PerGB2018"}),
            Stage.FOUNDATION: frozenset({"PerGB2018"}),
            Stage.ENTERPRISE: frozenset({"PerGB2018", "CapacityReservation"}),
        },
    ),
    # Free-tier AKS has no uptime SLA for the control plane.
    "azure-native:containerservice:ManagedCluster": (
        "sku.tier",
        {s: frozenset({"Standard", "Premium"}) for s in _EVERYWHERE},
    ),
    "azure-native:web:AppServicePlan": (
        "sku.name",
        {
            Stage.PILOT: frozenset({"FC1", "Y1"}),
            Stage.FOUNDATION: frozenset({"FC1", "Y1", "EP1", "EP2"}),
            Stage.ENTERPRISE: frozenset({"FC1", "EP1", "EP2", "EP3", "P1v3", "P2v3", "P3v3"}),
        },
    ),
}

COST_TAGS = ("owner", "costCenter")


def _has_budget(_stack: Resource, graph: ResourceGraph, ctx: StackContext) -> Verdict:
    if not any(resource.type.startswith("azure-native:") for resource in graph.resources):
        # Workloads on a cluster the user runs: the spend is on that cluster's account, not this stack's.
        return passed("the stack creates no Azure resources, so there is no Azure spend to budget")
    budgets = graph.of_type(BUDGET)
    if not budgets:
        return failed(f"the {ctx.stage.label} stack defines no consumption budget")
    return passed(f"budgets: {', '.join(b.name for b in budgets)}")


def _budget_alerts(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    amount = resource.get("amount")
    if not isinstance(amount, int | float) or amount <= 0:
        return failed(f"amount is {shown(amount)}; it must be a positive number")
    notifications = resource.get("notifications") or {}
    alerting = [
        name
        for name, n in notifications.items()
        if isinstance(n, dict)
        and n.get("enabled") is True
        and isinstance(n.get("threshold"), int | float)
        and 0 < n["threshold"] <= 100
        and any(n.get(k) for k in ("contactEmails", "contactGroups", "contactRoles"))
    ]
    if not alerting:
        return failed(
            f"none of its {len(notifications)} notifications is enabled with a threshold of at most 100% and a recipient"
        )
    return passed(f"alerts via {', '.join(sorted(alerting))} on a budget of {amount}")


CONTRIBUTORS_NAMED = 3


def _fixed_cost_within_budget(budget: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    """The stack's idle cost, from its own plan and the price table, against the budget's amount."""
    from cost import estimate

    amount = budget.get("amount")
    if not isinstance(amount, int | float) or amount <= 0:
        return failed(f"amount is {shown(amount)}; a budget needs a positive amount to compare with")
    priced = estimate(graph)
    unpriced = f"; {len(priced.unpriced)} resources are not priced and not counted" if priced.unpriced else ""
    if priced.fixed <= amount:
        return passed(
            f"fixed cost {priced.fixed:,.2f} {priced.currency}/month is within the budget of {amount:,}{unpriced}"
        )
    biggest = ", ".join(
        f"{name} {cost:,.2f}" for name, cost in priced.by_resource("fixed")[:CONTRIBUTORS_NAMED]
    )
    return failed(
        f"fixed cost {priced.fixed:,.2f} {priced.currency}/month exceeds the budget of {amount:,} before any "
        f"traffic; biggest: {biggest}{unpriced}"
    )


def _capacity(resource: Resource, _graph: ResourceGraph, ctx: StackContext) -> Verdict:
    capacity = resource.get("sku.capacity")
    limit = CAPACITY_LIMITS[ctx.stage]
    if not isinstance(capacity, int | float) or capacity > limit:
        return failed(
            f"sku.capacity is {shown(capacity)}; the {ctx.stage.label} stage allows at most {limit}"
        )
    return passed(f"sku.capacity {capacity} within the {ctx.stage.label} limit of {limit}")


def _sku_allowed(resource: Resource, _graph: ResourceGraph, ctx: StackContext) -> Verdict:
    path, allowed_by_stage = SKU_ALLOW_LISTS[resource.type]
    allowed = allowed_by_stage[ctx.stage]
    value: Any = resource.get(path)
    if value in allowed:
        return passed(f"{path} {value!r} is allowed in the {ctx.stage.label} stage")
    return failed(
        f"{path} is {shown(value)}; the {ctx.stage.label} stage allows {', '.join(sorted(allowed))}"
    )


def _tracked(resource: Resource) -> bool:
    """ARM tracked resources (those with a location) are the ones cost reports group by tags."""
    return resource.type.startswith("azure-native:") and "location" in resource.inputs


def _cost_tags(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    tags = resource.get("tags")
    missing = [t for t in COST_TAGS if not (isinstance(tags, dict) and tags.get(t))]
    if missing:
        return failed(f"tags lack {', '.join(missing)}")
    return passed(f"tagged owner={tags['owner']}, costCenter={tags['costCenter']}")


RULES = (
    Rule(
        id="AGS-AZ-050",
        title="Enterprise stacks define a consumption budget",
        severity=Severity.MEDIUM,
        rationale=(
            "Token-priced models scale spend with traffic, including abusive or runaway agent loops; without a "
            "budget nobody is told until the invoice arrives."
        ),
        remediation=(
            "Add a `consumption:Budget` scoped to the stack's resource group with notifications at 80% actual "
            "and 100% forecasted spend to the platform team."
        ),
        types=(STACK_TYPE,),
        check=_has_budget,
        from_stage=Stage.ENTERPRISE,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/cost-management-billing/costs/tutorial-acm-create-budgets",
    ),
    Rule(
        id="AGS-AZ-051",
        title="Budgets alert someone before they are exceeded",
        severity=Severity.MEDIUM,
        rationale="A budget without an enabled notification and a recipient tracks spend silently and prevents nothing.",
        remediation=(
            "Give the budget a positive `amount` and at least one enabled notification with a threshold of at "
            "most 100 and contactEmails, contactGroups (action groups) or contactRoles."
        ),
        types=(BUDGET,),
        check=_budget_alerts,
        reference="https://learn.microsoft.com/azure/cost-management-billing/costs/cost-mgt-alerts-monitor-usage-spending",
    ),
    Rule(
        id="AGS-AZ-055",
        title="The stack's fixed monthly cost fits its budget",
        severity=Severity.MEDIUM,
        rationale=(
            "What a stage costs idle (gateway units, search units, messaging units, node pools, always-ready "
            "instances) is spent before the first request; a budget it already exceeds alerts every month and "
            "leaves nothing for the token spend it was meant to govern."
        ),
        remediation=(
            "Shrink what the message names (fewer units, replicas or always-ready instances, smaller SKUs) or "
            "raise `agentstage:budget.amount`; `agentstage cost --stack <stack>` shows every line."
        ),
        types=(BUDGET,),
        check=_fixed_cost_within_budget,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/cost-management-billing/costs/cost-mgt-best-practices",
    ),
    Rule(
        id="AGS-AZ-052",
        title="Model deployment capacity is within the stage's limit",
        severity=Severity.MEDIUM,
        rationale=(
            "Deployment capacity caps tokens per minute and therefore worst-case spend per minute; early "
            "stages have no gateway limits or budgets to catch a runaway agent."
        ),
        remediation=(
            "Lower `capacity` of the model in the stack file to the stage's limit "
            f"({', '.join(f'{s.label} {n}K TPM' for s, n in CAPACITY_LIMITS.items())}), or move the workload to a later stage."
        ),
        types=(MODEL_DEPLOYMENT,),
        check=_capacity,
        reference="https://learn.microsoft.com/azure/ai-services/openai/how-to/quota",
    ),
    Rule(
        id="AGS-AZ-053",
        title="SKUs are on the stage's allow-list",
        severity=Severity.MEDIUM,
        rationale=(
            "Each stage has a cost envelope and an SLA expectation: no-SLA tiers (free, Developer) do not belong "
            "in any shipped stage, and commitment tiers (PTU, Premium) only where budgets govern them."
        ),
        remediation="Choose a SKU from the allow-list the message names, or waive with the cost owner's reason.",
        types=tuple(SKU_ALLOW_LISTS),
        check=_sku_allowed,
        reference="https://learn.microsoft.com/azure/well-architected/cost-optimization/",
    ),
    Rule(
        id="AGS-AZ-054",
        title="Resources carry owner and costCenter tags",
        severity=Severity.LOW,
        rationale="Cost reports and incident routing group by tags; an untagged resource's spend has no owner.",
        remediation="Set `agentstage:tags` with `owner` and `costCenter` in the stack file; every component applies them.",
        types=("azure-native:*",),
        check=_cost_tags,
        applies=_tracked,
        mandatory=False,
        reference="https://learn.microsoft.com/azure/azure-resource-manager/management/tag-resources",
    ),
)
