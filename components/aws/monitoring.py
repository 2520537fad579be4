"""What tells the platform team something is wrong: alarms to an encrypted SNS topic, a dashboard, a budget.

Every alarm pages the one topic, sealed with the stack's key:

- each function the stack runs: errors, throttles and p95 duration (AWS/Lambda);
- each dead-letter queue: any message in it (AWS/SQS) - a task that failed every delivery and waits for
  someone to look at it;
- the API: 5xx as a share of requests, and p95 latency where the API is more than its one function (a
  REST API in front of an orchestrator; the pilot's HTTP API answers in its function's duration, alarmed
  already);
- token spend: the day's model spend in USD from Bedrock's token counts at the stack file's prices, alarmed
  above ``daily_spend_usd`` (hours before the bill shows it).

The dashboard shows the functions, the API and the models as AWS publishes them, then one row per agent
from the runtime's own metrics (``telemetry_exporter: emf``): run latency p50/p95, runs and errors, input
and output tokens, cost. Their names mirror :mod:`agent_runtime.telemetry_emf` (components import only
the runtime's settings); a test proves the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_aws import budgets, cloudwatch, sns

from components.aws.context import AwsContext
from components.base import Component

DAY_SECONDS = 86_400
PERIOD_SECONDS = 300
MIN_REQUESTS = 20
"""Requests in a window before its 5xx share can page anyone: a single failure at night is no incident."""
MAX_WIDGETS = 500
"""CloudWatch's limit of widgets on one dashboard."""
FIXED_WIDGETS = 6
"""Widgets above the agents' rows, at most: functions, API, models and dead-letter queues."""
WIDGETS_PER_AGENT = 5
"""A title and four graphs."""
API_ALARMS = "api"
"""What the API's own alarms are named after (``<prefix>-<env>-api-latency``): no function may be."""

RUNTIME_NAMESPACE = "agentstage"
ENVIRONMENT, AGENT = "Environment", "Agent"
RUNS, RUN_ERRORS, RUN_DURATION = "Runs", "RunErrors", "RunDuration"
INPUT_TOKENS, OUTPUT_TOKENS, COST = "InputTokens", "OutputTokens", "CostUSD"
"""The runtime's EMF namespace, dimensions and per-agent metrics (mirrors of agent_runtime.telemetry_emf)."""


@dataclass(frozen=True)
class ModelPrice:
    """A Bedrock model id and its USD price per million input and output tokens."""

    model_id: str
    input_per_million: float
    output_per_million: float


@dataclass(frozen=True)
class FunctionWatch:
    """A Lambda function of the stack, alarmed on its errors, throttles and p95 duration.

    ``label`` names its alarms (``<prefix>-<env>-<label>-errors``); a stack that watches one function
    may leave it empty (``<prefix>-<env>-errors``: the pilot's names). ``duration_p95_ms`` overrides the
    stack's ``latency_p95_ms`` for this function (a queue worker may run longer than the API may wait).
    """

    label: str
    function_name: pulumi.Input[str]
    duration_p95_ms: int | None = None


@dataclass(frozen=True)
class QueueWatch:
    """A dead-letter queue: alarmed as soon as a message lands in it. ``label`` names the alarm."""

    label: str
    queue_name: pulumi.Input[str]


@dataclass(frozen=True)
class ApiWatch:
    """The API in front of the agents, in API Gateway's metric terms (build it with :meth:`http_api` or
    :meth:`rest_api`: the two kinds name their metrics and dimensions differently)."""

    kind: str
    dimensions: Mapping[str, pulumi.Input[str]]
    server_errors: str
    client_errors: str

    @classmethod
    def http_api(cls, api_id: pulumi.Input[str], stage: str = "$default") -> ApiWatch:
        """An HTTP API (v2): ``5xx``, ``4xx``, ``Count`` and ``Latency`` by ``ApiId`` and ``Stage``."""
        return cls("HTTP API", {"ApiId": api_id, "Stage": stage}, "5xx", "4xx")

    @classmethod
    def rest_api(cls, api_name: pulumi.Input[str], stage: pulumi.Input[str]) -> ApiWatch:
        """A REST API (v1): ``5XXError``, ``4XXError``, ``Count`` and ``Latency`` by ``ApiName`` and
        ``Stage``."""
        return cls("REST API", {"ApiName": api_name, "Stage": stage}, "5XXError", "4XXError")


@dataclass(frozen=True)
class MonitoringArgs:
    """What to watch and when to page.

    - ``functions``, ``api``, ``dead_letter_queues``: the stack's Lambda functions, its API and the
      dead-letter queues of its task queues;
    - ``agents``: the runtime's agent names (what its ``Agent`` dimension carries), a dashboard row each;
    - ``workloads``: agents that run outside Lambda (pods on EKS), alarmed on the runtime's own metrics
      (failed runs, p95 run duration) since no Lambda metric watches them;
    - ``prices``: the models' prices, for the daily spend alarm and the tokens graphs;
    - ``contact_emails``, ``budget_usd``, ``budget_thresholds``: the monthly AWS Budget and its mails;
    - thresholds: ``server_error_percent`` (API 5xx share), ``latency_p95_ms`` (each function's p95
      duration, unless it sets its own), ``api_latency_p95_ms`` (the API's p95 latency; ``None``: no such
      alarm) and ``daily_spend_usd``.
    """

    functions: Sequence[FunctionWatch]
    api: ApiWatch
    agents: Sequence[str]
    prices: Sequence[ModelPrice]
    contact_emails: Sequence[str]
    budget_usd: float
    dead_letter_queues: Sequence[QueueWatch] = ()
    workloads: Sequence[str] = ()
    budget_thresholds: Sequence[int] = (50, 80, 100)
    server_error_percent: float = 5.0
    latency_p95_ms: int = 20_000
    api_latency_p95_ms: int | None = None
    daily_spend_usd: float = 50.0

    def __post_init__(self) -> None:
        if not self.functions:
            raise ValueError("MonitoringArgs.functions: watch at least one function")
        labels = [function.label for function in self.functions]
        if "" in labels and len(labels) > 1:
            raise ValueError(
                "MonitoringArgs.functions: give each function a label when the stack watches several "
                "(an empty label is for a stack's only function)"
            )
        _unique("functions", labels)
        if API_ALARMS in labels:
            raise ValueError(
                f"MonitoringArgs.functions: '{API_ALARMS}' names the API's alarms; label the function otherwise"
            )
        queues = [queue.label for queue in self.dead_letter_queues]
        if "" in queues:
            raise ValueError(
                "MonitoringArgs.dead_letter_queues: give each queue a label (it names its alarm)"
            )
        _unique("dead_letter_queues", queues)
        if "" in self.agents:
            raise ValueError("MonitoringArgs.agents: an agent name cannot be empty")
        strangers = sorted(set(self.workloads) - set(self.agents))
        if strangers:
            raise ValueError(f"MonitoringArgs.workloads: {', '.join(strangers)} not among the agents")
        _unique("agents", self.agents)
        widgets = FIXED_WIDGETS + WIDGETS_PER_AGENT * len(self.agents)
        if widgets > MAX_WIDGETS:
            raise ValueError(
                f"MonitoringArgs.agents: {len(self.agents)} agents need {widgets} dashboard widgets, more "
                f"than CloudWatch's {MAX_WIDGETS}; split them over several Monitoring blocks"
            )


def _unique(field_name: str, labels: Sequence[str]) -> None:
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"MonitoringArgs.{field_name}: each name once; repeated: {', '.join(repeated)}")


class Monitoring(Component):
    """``agentstage:aws:Monitoring``: alarm topic and subscriptions, alarms, dashboard, monthly budget.

    Outputs: ``topic_arn``, ``dashboard_name``.
    """

    def __init__(
        self, name: str, context: AwsContext, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "Monitoring", name, opts)
        self._name = name
        self._context = context
        topic = sns.Topic(
            f"{name}-alarms",
            name=context.name("alarms"),
            kms_master_key_id=context.key,
            tags=context.tags,
            opts=self.child(),
        )
        self._topic = topic.arn
        for index, email in enumerate(args.contact_emails):
            sns.TopicSubscription(
                f"{name}-email-{index}", topic=topic.arn, protocol="email", endpoint=email, opts=self.child()
            )
        for function in args.functions:
            self._function_alarms(function, args.latency_p95_ms)
        for agent in args.workloads:
            self._workload_alarms(agent, args.latency_p95_ms)
        for queue in args.dead_letter_queues:
            self._alarm(
                (queue.label, "dlq"),
                "A task failed every delivery and waits in the dead-letter queue: read it, fix the cause, "
                "redrive it.",
                threshold=0,
                metric={"namespace": "AWS/SQS", "metric_name": "ApproximateNumberOfMessagesVisible",
                        "dimensions": {"QueueName": queue.queue_name}, "statistic": "Maximum"},
            )  # fmt: skip
        self._server_errors(args)
        if args.api_latency_p95_ms is not None:
            self._alarm(
                (API_ALARMS, "latency"),
                f"The 95th percentile of the {args.api.kind}'s answers is slower than the stack allows.",
                threshold=args.api_latency_p95_ms,
                metric={"namespace": "AWS/ApiGateway", "metric_name": "Latency",
                        "dimensions": dict(args.api.dimensions), "extended_statistic": "p95"},
            )  # fmt: skip
        self._token_spend(args)
        dashboard = cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=context.name("agents"),
            dashboard_body=pulumi.Output.all(
                [function.function_name for function in args.functions],
                dict(args.api.dimensions),
                [queue.queue_name for queue in args.dead_letter_queues],
            ).apply(
                lambda resolved: _dashboard(
                    context.region, context.environment, args, resolved[0], resolved[1], resolved[2]
                )
            ),
            opts=self.child(),
        )
        budgets.Budget(
            f"{name}-budget",
            name=context.name("monthly"),
            budget_type="COST",
            limit_amount=f"{args.budget_usd:.2f}",
            limit_unit="USD",
            time_unit="MONTHLY",
            cost_filters=[
                {"name": "TagKeyValue", "values": [f"user:agentstage-environment${context.environment}"]}
            ],
            notifications=[
                {
                    "comparison_operator": "GREATER_THAN",
                    "threshold": threshold,
                    "threshold_type": "PERCENTAGE",
                    "notification_type": "ACTUAL" if threshold < 100 else "FORECASTED",
                    "subscriber_email_addresses": list(args.contact_emails),
                }
                for threshold in args.budget_thresholds
            ],
            tags=context.tags,
            opts=self.child(),
        )
        self.topic_arn: pulumi.Output[str] = topic.arn
        self.dashboard_name: pulumi.Output[str] = dashboard.dashboard_name
        self.register_outputs({"topic_arn": self.topic_arn, "dashboard_name": self.dashboard_name})

    def _function_alarms(self, function: FunctionWatch, latency_p95_ms: int) -> None:
        dimensions = {"FunctionName": function.function_name}
        label = (function.label,) if function.label else ()
        for kind, metric, description in (
            ("errors", "Errors", "The agent function failed (unhandled errors or timeouts)."),
            ("throttles", "Throttles", "Requests were refused at the reserved-concurrency ceiling."),
        ):
            self._alarm(
                (*label, kind),
                description,
                threshold=0,
                metric={"namespace": "AWS/Lambda", "metric_name": metric, "dimensions": dimensions,
                        "statistic": "Sum"},
            )  # fmt: skip
        self._alarm(
            (*label, "latency"),
            "The 95th percentile of agent runs is slower than the stack allows.",
            threshold=function.duration_p95_ms or latency_p95_ms,
            metric={"namespace": "AWS/Lambda", "metric_name": "Duration", "dimensions": dimensions,
                    "extended_statistic": "p95"},
        )  # fmt: skip

    def _workload_alarms(self, agent: str, latency_p95_ms: int) -> None:
        """An agent on EKS: its failed runs and its p95 run duration, from the metrics its runtime sends."""
        dimensions = {"Environment": self._context.environment, "Agent": agent}
        self._alarm(
            (agent, "errors"),
            "Runs of the agent failed (its pods' logs say why; restarts show in Container Insights).",
            threshold=0,
            metric={"namespace": RUNTIME_NAMESPACE, "metric_name": RUN_ERRORS, "dimensions": dimensions,
                    "statistic": "Sum"},
        )  # fmt: skip
        self._alarm(
            (agent, "latency"),
            "The 95th percentile of agent runs is slower than the stack allows.",
            threshold=latency_p95_ms,
            metric={"namespace": RUNTIME_NAMESPACE, "metric_name": RUN_DURATION, "dimensions": dimensions,
                    "extended_statistic": "p95"},
        )  # fmt: skip

    def _alarm(
        self,
        parts: tuple[str, ...],
        description: str,
        *,
        threshold: float,
        metric: Mapping[str, Any] | None = None,
        metric_queries: Sequence[Mapping[str, Any]] | None = None,
        ok_actions: bool = True,
    ) -> None:
        """An alarm over one window, above ``threshold``, to the topic; named ``<name>-<parts>`` in the graph
        and ``<prefix>-<env>-<parts>`` in AWS. Missing data (no traffic, no messages) is no breach."""
        cloudwatch.MetricAlarm(
            "-".join((self._name, *parts)),
            name=self._context.name(*parts),
            alarm_description=description,
            **(dict(metric, period=PERIOD_SECONDS) if metric else {"metric_queries": metric_queries}),
            evaluation_periods=1,
            threshold=threshold,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[self._topic],
            ok_actions=[self._topic] if ok_actions else None,
            tags=self._context.tags,
            opts=self.child(),
        )

    def _server_errors(self, args: MonitoringArgs) -> None:
        """5xx as a share of requests (at least :data:`MIN_REQUESTS` in the window)."""
        api = dict(args.api.dimensions)

        def query(query_id: str, metric: str) -> dict[str, Any]:
            return {"id": query_id, "metric": {"namespace": "AWS/ApiGateway", "metric_name": metric,
                                               "dimensions": api, "period": PERIOD_SECONDS, "stat": "Sum"}}  # fmt: skip

        self._alarm(
            ("5xx",),
            "The API answers with server errors; see the functions' logs and Bedrock's metrics.",
            threshold=args.server_error_percent,
            metric_queries=[
                query("errors", args.api.server_errors),
                query("requests", "Count"),
                {"id": "share", "expression": f"IF(requests >= {MIN_REQUESTS}, 100 * errors / requests, 0)",
                 "label": "5xx %", "return_data": True},
            ],
        )  # fmt: skip

    def _token_spend(self, args: MonitoringArgs) -> None:
        """The day's model spend in USD from Bedrock's token counts and the stack file's prices."""
        priced = [price for price in args.prices if price.input_per_million or price.output_per_million]
        if not priced:
            return
        queries: list[dict[str, Any]] = []
        terms = []
        for index, price in enumerate(priced):
            for kind, metric, per_million in (
                ("in", "InputTokenCount", price.input_per_million),
                ("out", "OutputTokenCount", price.output_per_million),
            ):
                query_id = f"{kind}{index}"
                queries.append(
                    {
                        "id": query_id,
                        "metric": {
                            "namespace": "AWS/Bedrock",
                            "metric_name": metric,
                            "dimensions": {"ModelId": price.model_id},
                            "period": DAY_SECONDS,
                            "stat": "Sum",
                        },
                    }
                )
                terms.append(f"FILL({query_id}, 0) * {per_million} / 1000000")
        queries.append(
            {"id": "spend", "expression": " + ".join(terms), "label": "USD per day", "return_data": True}
        )
        self._alarm(
            ("spend",),
            "Model spend over the day is above the stack's daily limit.",
            threshold=args.daily_spend_usd,
            metric_queries=queries,
            ok_actions=False,
        )


def _dashboard(
    region: str,
    environment: str,
    args: MonitoringArgs,
    functions: Sequence[str],
    api: Mapping[str, str],
    queues: Sequence[str],
) -> str:
    """The dashboard body; a graph with nothing to show (no priced models, no queues) is left out."""

    def graph(
        title: str, metrics: list[list[Any]], x: int, y: int, width: int = 12, stat: str = "Sum"
    ) -> dict[str, Any]:
        return {"type": "metric", "x": x, "y": y, "width": width, "height": 6,
                "properties": {"title": title, "region": region, "stat": stat, "period": PERIOD_SECONDS,
                               "view": "timeSeries", "metrics": metrics}}  # fmt: skip

    def runtime(metric: str, agent: str, **options: str) -> list[Any]:
        return [
            RUNTIME_NAMESPACE,
            metric,
            ENVIRONMENT,
            environment,
            AGENT,
            agent,
            *([options] if options else []),
        ]

    dimensions = [item for pair in api.items() for item in pair]
    models = [price.model_id for price in args.prices]
    widgets = [
        graph("Function runs and errors", [["AWS/Lambda", metric, "FunctionName", function] for function in functions for metric in ("Invocations", "Errors", "Throttles")], 0, 0),
        graph("Function duration p95 (ms)", [["AWS/Lambda", "Duration", "FunctionName", function] for function in functions], 12, 0, stat="p95"),
        graph("API requests and errors", [["AWS/ApiGateway", metric, *dimensions] for metric in ("Count", args.api.client_errors, args.api.server_errors)], 0, 6),
        graph("Tokens by model", [["AWS/Bedrock", metric, "ModelId", model] for model in models for metric in ("InputTokenCount", "OutputTokenCount")], 12, 6),
        graph("Model latency and throttles", [["AWS/Bedrock", metric, "ModelId", model] for model in models for metric in ("InvocationLatency", "InvocationThrottles")], 0, 12, stat="Average"),
        graph("Messages in dead-letter queues", [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue] for queue in queues], 12, 12, stat="Maximum"),
    ]  # fmt: skip
    widgets = [widget for widget in widgets if widget["properties"]["metrics"]]
    for row, agent in enumerate(args.agents):
        y = 18 + row * 7
        widgets += [
            {"type": "text", "x": 0, "y": y, "width": 24, "height": 1, "properties": {"markdown": f"### Agent `{agent}`"}},
            graph(f"{agent}: run latency (ms)", [runtime(RUN_DURATION, agent, stat="p50", label="p50"), runtime(RUN_DURATION, agent, stat="p95", label="p95")], 0, y + 1, 6),
            graph(f"{agent}: runs and errors", [runtime(RUNS, agent), runtime(RUN_ERRORS, agent)], 6, y + 1, 6),
            graph(f"{agent}: tokens", [runtime(INPUT_TOKENS, agent), runtime(OUTPUT_TOKENS, agent)], 12, y + 1, 6),
            graph(f"{agent}: cost (USD)", [runtime(COST, agent)], 18, y + 1, 6),
        ]  # fmt: skip
    return json.dumps({"widgets": widgets}, sort_keys=True)
