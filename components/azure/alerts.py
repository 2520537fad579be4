"""Service alerts: the server-error rate, request latency and model spend of the agents, each paging the action group.

All three are log search alerts (``scheduledQueryRules``) scoped to the Application Insights component,
so they see exactly this stage's telemetry in the classic schema: ``requests`` (``resultCode``,
``duration`` in ms) and ``customMetrics`` (``name``, ``valueSum`` per export interval). Metric alerts
cannot do the job: ``requests/failed`` counts 4xx and exceptions as well and is a count, not a rate, and
metric alerts have no percentiles.

Each query summarizes its window into one row carrying the value and the newest record's
``timestamp``: the alert service needs a time column, and cannot itself compute rates or percentiles.
Windows with fewer than ``min_requests`` requests produce no row, so one failed call at night does not
page anyone, and a rule whose query returns nothing resolves (auto-mitigation is on).

The rules run without a managed identity (identity "None"): Azure then queries with the permissions the
last editor of the rule had when saving it - the principal running ``pulumi up``, which created the
component it reads. A managed identity would need Reader on the component, granted and propagated
before the rule is created, because ARM validates the query when it creates the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import monitor

from components.azure.context import AzureContext
from components.base import Component

# The runtime's priced-usage counter (runtime/agent_runtime/telemetry.py), in USD.
COST_METRIC = "agentstage.model.cost"
SPEND_WINDOW = "P1D"  # a rolling day
SPEND_FREQUENCY = "PT1H"
WINDOW_MINUTES = (5, 10, 15, 30, 45, 60)  # the log alert windows that are also valid frequencies


@dataclass(frozen=True)
class AlertArgs:
    """Thresholds of the three alerts.

    ``server_error_percent`` (default 5): share of requests answered with a 5xx in one window.
    ``latency_p95_ms`` (default 30,000): 95th percentile of request duration in one window; an agent run
    spans several model and tool calls, so seconds are normal and tens of seconds are not.
    ``daily_spend_usd`` (default 50): priced model usage the runtime reports over a rolling 24 hours.
    ``window_minutes`` (default 15): window of the error and latency rules; each is evaluated once per
    window, so every request is counted once. 15 minutes is the cheapest evaluation frequency.
    ``min_requests`` (default 20): fewer requests in a window than this raise no error or latency alert.
    ``severity`` (default 2, Warning): 0 (Critical) to 4 (Verbose), for all three rules.
    """

    server_error_percent: float = 5.0
    latency_p95_ms: float = 30_000.0
    daily_spend_usd: float = 50.0
    window_minutes: int = 15
    min_requests: int = 20
    severity: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.server_error_percent <= 100:
            raise ValueError(f"server_error_percent must be in (0, 100], got {self.server_error_percent}")
        if self.latency_p95_ms <= 0:
            raise ValueError(f"latency_p95_ms must be greater than 0, got {self.latency_p95_ms}")
        if self.daily_spend_usd <= 0:
            raise ValueError(f"daily_spend_usd must be greater than 0, got {self.daily_spend_usd}")
        if self.window_minutes not in WINDOW_MINUTES:
            raise ValueError(
                f"window_minutes must be one of {', '.join(map(str, WINDOW_MINUTES))}, got {self.window_minutes}"
            )
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be at least 1, got {self.min_requests}")
        if self.severity not in range(5):
            raise ValueError(f"severity must be 0 (Critical) to 4 (Verbose), got {self.severity}")

    @property
    def window(self) -> str:
        """``window_minutes`` as the ISO 8601 duration ARM expects."""
        return f"PT{self.window_minutes}M" if self.window_minutes < 60 else "PT1H"


@dataclass(frozen=True)
class Rule:
    """One log search alert: its KQL, the column holding the measured value, and the threshold on it."""

    purpose: str
    title: str
    description: str
    query: str
    measure: str
    threshold: float
    window: str
    frequency: str


def server_error_rule(args: AlertArgs) -> Rule:
    """The share of requests that ended in a 5xx; 4xx are the caller's errors and do not count."""
    return Rule(
        purpose="5xx",
        title=f"5xx rate above {args.server_error_percent:g}%",
        description="Agents answer with server errors. Check exceptions and model dependencies in Application Insights.",
        query=f"""requests
| summarize requests = count(), server_errors = countif(toint(resultCode) >= 500), timestamp = max(timestamp)
| where requests >= {args.min_requests}
| project timestamp, server_error_percent = 100.0 * server_errors / requests""",
        measure="server_error_percent",
        threshold=args.server_error_percent,
        window=args.window,
        frequency=args.window,
    )


def latency_rule(args: AlertArgs) -> Rule:
    """The 95th percentile of request duration (``duration`` is in milliseconds)."""
    return Rule(
        purpose="latency",
        title=f"p95 latency above {args.latency_p95_ms:g} ms",
        description="Agent requests are slow. Compare model call durations and retries in the dashboard.",
        query=f"""requests
| summarize requests = count(), p95_ms = percentile(duration, 95), timestamp = max(timestamp)
| where requests >= {args.min_requests}
| project timestamp, p95_ms""",
        measure="p95_ms",
        threshold=args.latency_p95_ms,
        window=args.window,
        frequency=args.window,
    )


def spend_rule(args: AlertArgs) -> Rule:
    """Priced model usage over the last 24 hours, summed from the runtime's cost counter."""
    return Rule(
        purpose="spend",
        title=f"model spend above {args.daily_spend_usd:g} USD in 24 hours",
        description="Model spend is above the daily limit. Check tokens by agent and model in the dashboard.",
        query=f"""customMetrics
| where name == "{COST_METRIC}"
| summarize spend_usd = sum(valueSum), timestamp = max(timestamp)
| where isnotnull(timestamp)
| project timestamp, spend_usd""",
        measure="spend_usd",
        threshold=args.daily_spend_usd,
        window=SPEND_WINDOW,
        frequency=SPEND_FREQUENCY,
    )


class ServiceAlerts(Component):
    """Log search alerts on 5xx rate, p95 latency and model spend (``agentstage:azure:ServiceAlerts``).

    ``app_insights_id`` is the component the agents report to (:class:`Observability`), and
    ``action_group_id`` who is told (:class:`CostGuard`). Output: ``rule_ids``, by purpose
    (``5xx``, ``latency``, ``spend``).
    """

    def __init__(
        self,
        name: str,
        context: AzureContext,
        args: AlertArgs,
        *,
        app_insights_id: pulumi.Input[str],
        action_group_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("azure", "ServiceAlerts", name, opts)
        naming = context.naming
        self.rule_ids: dict[str, pulumi.Output[str]] = {}
        for rule in (server_error_rule(args), latency_rule(args), spend_rule(args)):
            resource = monitor.ScheduledQueryRule(
                f"{name}-{rule.purpose}",
                rule_name=naming.plain("alert", f"{name}-{rule.purpose}"),
                resource_group_name=context.resource_group_name,
                location=context.location,
                kind=monitor.Kind.LOG_ALERT,
                display_name=f"{naming.prefix}-{naming.environment}: {rule.title}",
                description=rule.description,
                severity=args.severity,
                enabled=True,
                scopes=[app_insights_id],
                evaluation_frequency=rule.frequency,
                window_size=rule.window,
                criteria=monitor.ScheduledQueryRuleCriteriaArgs(
                    all_of=[
                        monitor.ConditionArgs(
                            query=rule.query,
                            metric_measure_column=rule.measure,
                            # One row per window: any aggregation returns its value.
                            time_aggregation=monitor.TimeAggregation.MAXIMUM,
                            # ARM's value; the SDK's ConditionOperator enum holds another API's "gt".
                            operator="GreaterThan",
                            threshold=rule.threshold,
                            failing_periods=monitor.ConditionFailingPeriodsArgs(
                                number_of_evaluation_periods=1, min_failing_periods_to_alert=1
                            ),
                        )
                    ]
                ),
                actions=monitor.ActionsArgs(action_groups=[action_group_id]),
                auto_mitigate=True,
                tags=dict(context.tags),
                opts=self.child(),
            )
            self.rule_ids[rule.purpose] = resource.id
        self.register_outputs({"rule_ids": self.rule_ids})
