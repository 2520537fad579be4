"""Dashboard: an Azure Monitor workbook with the four views an agent platform is run by.

**Latency** (request percentiles by operation, model-call percentiles by model), **cost** (token spend
priced from a table the stack supplies), **errors** (failure and 5xx rate, 429s, exceptions) and
**tokens** (input and output over time, by model and by agent). The workbook is attached to Application
Insights (``sourceId``), where the portal lists it, but queries the workspace's ``App*`` tables, where
workspace-based Application Insights stores its telemetry.

Token queries follow the OpenTelemetry GenAI conventions: the histogram ``gen_ai.client.token.usage``
with ``gen_ai.token.type`` (``input``/``output``), ``gen_ai.request.model`` and ``gen_ai.agent.name``
attributes, which the Azure Monitor exporter stores in ``AppMetrics`` (``Sum`` per interval,
attributes in ``Properties``). The gateway's ``llm-emit-token-metric`` policy lands beside it as
``Prompt Tokens`` / ``Completion Tokens``; each row says which source it came from, so a call counted
by both the gateway and the runtime is visible as such rather than silently added twice.

The workbook JSON is built from the small typed items below, serialized with sorted keys, so the same
inputs always produce the same string and a second ``pulumi up`` changes nothing.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Literal

import pulumi
from pulumi_azure_native import applicationinsights

from components.azure.context import AzureContext

WORKBOOK_VERSION = "Notebook/1.0"
TIME_RANGE = "TimeRange"
GRAIN = "{TimeRange:grain}"  # the workbook substitutes a bin size that suits the chosen range
_ONE_HOUR_MS = 3_600_000
# Fixed namespace for workbook ids: the same deployment always derives the same GUID.
_WORKBOOK_NAMESPACE = uuid.UUID("5b0c3f4e-7a86-4d55-9a8e-2c1f0b6d9e41")

Visualization = Literal["table", "timechart", "barchart"]


@dataclass(frozen=True)
class ModelPrice:
    """What one model costs per million tokens, in the dashboard's currency (list prices change: date them)."""

    model: str
    input_per_million: float
    output_per_million: float

    def __post_init__(self) -> None:
        if min(self.input_per_million, self.output_per_million) < 0:
            raise ValueError(f"model '{self.model}': prices must not be negative")


@dataclass(frozen=True)
class RuntimeBudget:
    """A budget the runtime enforces (a rule of AGENTSTAGE_BUDGETS), as the cost panel lists it."""

    name: str
    scope: str
    window_seconds: int
    tokens: int | None = None
    requests: int | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class DashboardArgs:
    """Settings of the workbook.

    ``prices`` (default none): the price table of the cost panel; models without a price still show
    their tokens, with an empty cost. ``currency`` (default ``USD``) only labels the cost column.
    ``gateway_model_dimension`` (default ``Backend ID``) and ``gateway_agent_dimension`` (default
    ``Agent``): the dimensions under which the gateway's ``llm-emit-token-metric`` policy records the
    model backend and the calling agent - the defaults are the gateway component's own; they must
    match the policy. Gateway rows are priced when the backend id equals a priced model's name.
    ``display_name`` (default: ``<prefix>-<environment> agents``): the title in the portal, which must
    be unique among the resource group's workbooks. ``budgets`` (default none): the runtime budgets the
    cost panel reports on, by the names the runtime's budget metrics carry.
    """

    prices: tuple[ModelPrice, ...] = ()
    budgets: tuple[RuntimeBudget, ...] = ()
    currency: str = "USD"
    gateway_model_dimension: str = "Backend ID"
    gateway_agent_dimension: str = "Agent"
    display_name: str | None = None

    def __post_init__(self) -> None:
        models = [price.model for price in self.prices]
        duplicates = sorted({model for model in models if models.count(model) > 1})
        if duplicates:
            raise ValueError(f"prices list these models more than once: {', '.join(duplicates)}")


# --- typed workbook items ------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A KQL query item (workbook item type 3) against the Log Analytics workspace."""

    title: str
    kql: str
    visualization: Visualization = "table"

    def item(self, name: str, workspace_id: str) -> dict[str, object]:
        return {
            "type": 3,
            "name": name,
            "content": {
                "version": "KqlItem/1.0",
                "title": self.title,
                "query": self.kql,
                "visualization": self.visualization,
                "size": 0,
                "timeContextFromParameter": TIME_RANGE,
                "queryType": 0,  # Logs (Analytics)
                "resourceType": "microsoft.operationalinsights/workspaces",
                "crossComponentResources": [workspace_id],
            },
        }


@dataclass(frozen=True)
class Panel:
    """A titled group of queries (workbook item type 12), one per concern."""

    name: str
    title: str
    queries: tuple[Query, ...]

    def item(self, workspace_id: str) -> dict[str, object]:
        return {
            "type": 12,
            "name": self.name,
            "content": {
                "version": "NotebookGroup/1.0",
                "groupType": "editable",
                "title": self.title,
                "items": [
                    query.item(f"{self.name}-{i}", workspace_id) for i, query in enumerate(self.queries)
                ],
            },
        }


def _time_range_parameter() -> dict[str, object]:
    """The one time picker every query takes its range from (default: the last 24 hours)."""
    choices = [1, 4, 24, 72, 168, 720]  # hours
    return {
        "type": 9,
        "name": "parameters",
        "content": {
            "version": "KqlParameterItem/1.0",
            "parameters": [
                {
                    "id": str(uuid.uuid5(_WORKBOOK_NAMESPACE, TIME_RANGE)),
                    "version": "KqlParameterItem/1.0",
                    "name": TIME_RANGE,
                    "label": "Time range",
                    "type": 4,
                    "isRequired": True,
                    "value": {"durationMs": 24 * _ONE_HOUR_MS},
                    "typeSettings": {"selectableValues": [{"durationMs": h * _ONE_HOUR_MS} for h in choices]},
                }
            ],
            "style": "pills",
        },
    }


def serialize(panels: tuple[Panel, ...], workspace_id: str) -> str:
    """The workbook's ``serializedData``: a time picker followed by ``panels``, as canonical JSON."""
    notebook = {
        "version": WORKBOOK_VERSION,
        "items": [_time_range_parameter(), *(panel.item(workspace_id) for panel in panels)],
        "isLocked": False,
    }
    return json.dumps(notebook, sort_keys=True, separators=(",", ":"))


# --- the agent platform's panels -----------------------------------------------------------------


def _kql_string(value: str) -> str:
    return json.dumps(value)  # a double-quoted KQL literal uses the same escapes as JSON


def _token_rows(args: DashboardArgs) -> str:
    """A KQL ``let`` giving one row per token measurement: time, source, model, agent, type, tokens."""
    model, agent = _kql_string(args.gateway_model_dimension), _kql_string(args.gateway_agent_dimension)
    return f"""let token_rows = union
    (AppMetrics
     | where Name == "gen_ai.client.token.usage"
     | project TimeGenerated, source = "runtime", model = tostring(Properties["gen_ai.request.model"]),
         agent = tostring(Properties["gen_ai.agent.name"]), token_type = tostring(Properties["gen_ai.token.type"]),
         tokens = Sum),
    (AppMetrics
     | where Name in ("Prompt Tokens", "Completion Tokens")
     | project TimeGenerated, source = "gateway", model = tostring(Properties[{model}]),
         agent = tostring(Properties[{agent}]),
         token_type = iff(Name == "Prompt Tokens", "input", "output"), tokens = Sum);
"""


def _price_table(prices: tuple[ModelPrice, ...]) -> str:
    rows = ",".join(
        f"\n    {_kql_string(p.model)}, real({p.input_per_million!r}), real({p.output_per_million!r})"
        for p in prices
    )
    return f"let prices = datatable(model: string, input_per_million: real, output_per_million: real) [{rows}\n];\n"


def _percentiles(table: str, where: str, by: str) -> str:
    return f"""{table}
{where}| summarize calls = count(), p50 = percentile(DurationMs, 50), p95 = percentile(DurationMs, 95),
    p99 = percentile(DurationMs, 99) by {by}
| order by p95 desc"""


def latency_panel() -> Panel:
    model = 'tostring(Properties["gen_ai.request.model"])'
    return Panel(
        "latency",
        "Latency",
        (
            Query(
                "Request duration percentiles (ms)",
                f"AppRequests\n| summarize p50 = percentile(DurationMs, 50), p95 = percentile(DurationMs, 95),"
                f"\n    p99 = percentile(DurationMs, 99) by bin(TimeGenerated, {GRAIN})",
                "timechart",
            ),
            Query("Request duration by operation (ms)", _percentiles("AppRequests", "", "OperationName")),
            Query(
                "Model call duration by model (ms)",
                _percentiles(
                    "AppDependencies", f"| extend model = {model}\n| where isnotempty(model)\n", "model"
                ),
            ),
        ),
    )


def cost_panel(args: DashboardArgs) -> Panel:
    kql = (
        _token_rows(args)
        + _price_table(args.prices)
        + """token_rows
| summarize input_tokens = sumif(tokens, token_type == "input"),
    output_tokens = sumif(tokens, token_type == "output") by source, model
| join kind=leftouter prices on model
| extend estimated_cost = (input_tokens * input_per_million + output_tokens * output_per_million) / 1000000
| project source, model, input_tokens, output_tokens, estimated_cost
| order by estimated_cost desc"""
    )
    queries = [Query(f"Estimated token spend by model ({args.currency})", kql)]
    if args.budgets:
        queries.append(
            Query("Runtime budgets: spent and refused per rule (all windows in range)", _budget_kql(args))
        )
    return Panel("cost", "Cost", tuple(queries))


def _budget_kql(args: DashboardArgs) -> str:
    """The stack's rules (listed even without traffic) beside what the runtime's budget metrics recorded:
    settled tokens and cost, and refusals by reason (``exhausted``: spent; ``held``: by calls in flight)."""

    def limit(value: float | None, kind: str) -> str:
        return f"{kind}(null)" if value is None else f"{kind}({value!r})"

    rows = ",".join(
        f"\n    {_kql_string(b.name)}, {_kql_string(b.scope)}, {b.window_seconds}, {limit(b.tokens, 'long')}, "
        f"{limit(b.requests, 'long')}, {limit(b.cost_usd, 'real')}"
        for b in args.budgets
    )
    return f"""let budgets = datatable(budget: string, scope: string, window_seconds: long, token_limit: long,
    request_limit: long, cost_limit_usd: real) [{rows}
];
AppMetrics
| where Name in ("agentstage.budget.settled", "agentstage.budget.refused")
| extend budget = tostring(Properties["agentstage.budget.name"]), metric = tostring(Properties["agentstage.budget.metric"]),
    reason = tostring(Properties["agentstage.budget.reason"])
| summarize settled_tokens = sumif(Sum, Name == "agentstage.budget.settled" and metric == "tokens"),
    settled_cost_usd = sumif(Sum, Name == "agentstage.budget.settled" and metric == "cost") / 1000000,
    refused_exhausted = sumif(Sum, Name == "agentstage.budget.refused" and reason == "exhausted"),
    refused_held = sumif(Sum, Name == "agentstage.budget.refused" and reason == "held") by budget
| join kind=rightouter budgets on budget
| project budget = budget1, scope, window_seconds, token_limit, settled_tokens, cost_limit_usd, settled_cost_usd,
    request_limit, refused_exhausted, refused_held
| order by budget asc"""


def errors_panel() -> Panel:
    return Panel(
        "errors",
        "Errors",
        (
            Query(
                "Failed requests and 5xx (%)",
                f"""AppRequests
| summarize requests = count(), failed = countif(Success == false), server_errors = countif(toint(ResultCode) >= 500)
    by bin(TimeGenerated, {GRAIN})
| project TimeGenerated, failed_pct = 100.0 * failed / requests, server_error_pct = 100.0 * server_errors / requests""",
                "timechart",
            ),
            Query(
                "Throttled (429): returned to callers, received from models",
                f"""union withsource = Table AppRequests, AppDependencies
| where ResultCode == "429"
| summarize throttled = count() by Table, bin(TimeGenerated, {GRAIN})""",
                "timechart",
            ),
            Query(
                "Exceptions by type",
                """AppExceptions
| summarize exceptions = count() by ExceptionType, OperationName
| top 20 by exceptions""",
                "barchart",
            ),
        ),
    )


def tokens_panel(args: DashboardArgs) -> Panel:
    rows = _token_rows(args)
    return Panel(
        "tokens",
        "Tokens",
        (
            Query(
                "Tokens by model (input / output)",
                rows
                + f"""token_rows
| summarize tokens = sum(tokens) by series = strcat(model, " ", token_type), bin(TimeGenerated, {GRAIN})""",
                "timechart",
            ),
            Query(
                "Tokens by agent (input / output)",
                rows
                + f"""token_rows
| where isnotempty(agent)
| summarize tokens = sum(tokens) by series = strcat(agent, " ", token_type), bin(TimeGenerated, {GRAIN})""",
                "timechart",
            ),
        ),
    )


def panels(args: DashboardArgs) -> tuple[Panel, ...]:
    """The four panels, in the order an operator reads them."""
    return (latency_panel(), cost_panel(args), errors_panel(), tokens_panel(args))


# --- the resource --------------------------------------------------------------------------------


def deploy_dashboard(
    name: str,
    *,
    context: AzureContext,
    args: DashboardArgs,
    app_insights_id: pulumi.Input[str],
    workspace_id: pulumi.Input[str],
    parent: pulumi.Resource,
) -> applicationinsights.Workbook:
    """A shared workbook on ``app_insights_id`` whose queries read ``workspace_id``.

    Workbook names must be GUIDs; this one is a UUIDv5 of the deployment (prefix, environment, unique
    suffix) and ``name``, so it is stable across runs and distinct between stacks.
    """
    naming = context.naming
    workbook_name = pulumi.Output.from_input(naming.suffix).apply(
        lambda suffix: str(
            uuid.uuid5(_WORKBOOK_NAMESPACE, f"{naming.prefix}/{naming.environment}/{suffix}/{name}")
        )
    )
    return applicationinsights.Workbook(
        f"{name}-dashboard",
        resource_name_=workbook_name,
        resource_group_name=context.resource_group_name,
        location=context.location,
        kind=applicationinsights.WorkbookSharedTypeKind.SHARED,
        category="workbook",
        display_name=args.display_name or f"{naming.prefix}-{naming.environment} agents",
        description="Latency, cost, errors and tokens of the agent platform (generated by agentstage).",
        version=WORKBOOK_VERSION,
        source_id=app_insights_id,
        serialized_data=pulumi.Output.from_input(workspace_id).apply(lambda ws: serialize(panels(args), ws)),
        tags=dict(context.tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
