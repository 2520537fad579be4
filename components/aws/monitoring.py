"""What tells the platform team something is wrong: alarms to an encrypted SNS topic, a dashboard, a budget.

Alarms use metrics AWS already publishes - Lambda (errors, throttles, duration), API Gateway (5xx) and
Bedrock (input and output tokens per model) - so nothing in the runtime has to export anything for them.
Token spend is metric math over Bedrock's token counts at the stack file's model prices: the day's spend
in USD, alarmed above ``daily_spend_usd`` (hours before the bill shows it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import budgets, cloudwatch, sns

from components.aws.context import AwsContext
from components.base import Component

DAY_SECONDS = 86_400


@dataclass(frozen=True)
class ModelPrice:
    """A Bedrock model id and its USD price per million input and output tokens."""

    model_id: str
    input_per_million: float
    output_per_million: float


@dataclass(frozen=True)
class MonitoringArgs:
    function_name: pulumi.Input[str]
    api_id: pulumi.Input[str]
    prices: Sequence[ModelPrice]
    contact_emails: Sequence[str]
    budget_usd: float
    budget_thresholds: Sequence[int] = (50, 80, 100)
    server_error_percent: float = 5.0
    latency_p95_ms: int = 20_000
    daily_spend_usd: float = 50.0


class Monitoring(Component):
    """``agentstage:aws:Monitoring``: alarm topic and subscriptions, alarms, dashboard, monthly budget.

    Outputs: ``topic_arn``, ``dashboard_name``.
    """

    def __init__(
        self, name: str, context: AwsContext, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "Monitoring", name, opts)
        self._context = context
        topic = sns.Topic(
            f"{name}-alarms",
            name=context.name("alarms"),
            kms_master_key_id=context.key,
            tags=context.tags,
            opts=self.child(),
        )
        for index, email in enumerate(args.contact_emails):
            sns.TopicSubscription(
                f"{name}-email-{index}", topic=topic.arn, protocol="email", endpoint=email, opts=self.child()
            )
        function = {"FunctionName": args.function_name}
        self._alarm(
            name,
            "errors",
            topic.arn,
            "AWS/Lambda",
            "Errors",
            function,
            "Sum",
            300,
            0,
            "The agent function failed (unhandled errors or timeouts).",
        )
        self._alarm(
            name,
            "throttles",
            topic.arn,
            "AWS/Lambda",
            "Throttles",
            function,
            "Sum",
            300,
            0,
            "Requests were refused at the reserved-concurrency ceiling.",
        )
        self._alarm(
            name,
            "latency",
            topic.arn,
            "AWS/Lambda",
            "Duration",
            function,
            "p95",
            300,
            args.latency_p95_ms,
            "The 95th percentile of agent runs is slower than the stack allows.",
        )
        self._server_errors(name, topic.arn, args)
        self._token_spend(name, topic.arn, args)
        dashboard = cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=context.name("agents"),
            dashboard_body=pulumi.Output.all(args.function_name, args.api_id).apply(
                lambda ids: _dashboard(context.region, ids[0], ids[1], args.prices)
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

    def _alarm(
        self, name: str, kind: str, topic: pulumi.Input[str], namespace: str, metric: str,
        dimensions: dict[str, pulumi.Input[str]], statistic: str, period: int, threshold: float, description: str,
    ) -> None:  # fmt: skip
        percentile = statistic.startswith("p")
        cloudwatch.MetricAlarm(
            f"{name}-{kind}",
            name=self._context.name(kind),
            alarm_description=description,
            namespace=namespace,
            metric_name=metric,
            dimensions=dimensions,
            statistic=None if percentile else statistic,
            extended_statistic=statistic if percentile else None,
            period=period,
            evaluation_periods=1,
            threshold=threshold,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[topic],
            ok_actions=[topic],
            tags=self._context.tags,
            opts=self.child(),
        )

    def _server_errors(self, name: str, topic: pulumi.Input[str], args: MonitoringArgs) -> None:
        """5xx as a share of requests (at least 20 in the window, so a single failure at night is no page)."""
        api = {"ApiId": args.api_id, "Stage": "$default"}
        cloudwatch.MetricAlarm(
            f"{name}-5xx",
            name=self._context.name("5xx"),
            alarm_description="The API answers with server errors; see the function's logs and Bedrock's metrics.",
            metric_queries=[
                {"id": "errors", "metric": {"namespace": "AWS/ApiGateway", "metric_name": "5xx", "dimensions": api, "period": 300, "stat": "Sum"}},
                {"id": "requests", "metric": {"namespace": "AWS/ApiGateway", "metric_name": "Count", "dimensions": api, "period": 300, "stat": "Sum"}},
                {"id": "share", "expression": "IF(requests >= 20, 100 * errors / requests, 0)", "label": "5xx %", "return_data": True},
            ],
            evaluation_periods=1,
            threshold=args.server_error_percent,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[topic],
            ok_actions=[topic],
            tags=self._context.tags,
            opts=self.child(),
        )  # fmt: skip

    def _token_spend(self, name: str, topic: pulumi.Input[str], args: MonitoringArgs) -> None:
        """The day's model spend in USD from Bedrock's token counts and the stack file's prices."""
        priced = [price for price in args.prices if price.input_per_million or price.output_per_million]
        if not priced:
            return
        queries: list[dict[str, object]] = []
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
        cloudwatch.MetricAlarm(
            f"{name}-spend",
            name=self._context.name("spend"),
            alarm_description="Model spend over the day is above the stack's daily limit.",
            metric_queries=queries,
            evaluation_periods=1,
            threshold=args.daily_spend_usd,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[topic],
            tags=self._context.tags,
            opts=self.child(),
        )  # fmt: skip


def _dashboard(region: str, function: str, api: str, prices: Sequence[ModelPrice]) -> str:
    def widget(
        title: str, metrics: list[list[object]], y: int, x: int, stat: str = "Sum"
    ) -> dict[str, object]:
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
                "properties": {"title": title, "region": region, "stat": stat, "period": 300, "metrics": metrics}}  # fmt: skip

    models = [price.model_id for price in prices]
    return json.dumps(
        {
            "widgets": [
                widget("Agent runs and errors", [["AWS/Lambda", "Invocations", "FunctionName", function], [".", "Errors", ".", "."], [".", "Throttles", ".", "."]], 0, 0),
                widget("Run duration p95 (ms)", [["AWS/Lambda", "Duration", "FunctionName", function]], 0, 12, "p95"),
                widget("API requests and errors", [["AWS/ApiGateway", "Count", "ApiId", api, "Stage", "$default"], [".", "4xx", ".", ".", ".", "."], [".", "5xx", ".", ".", ".", "."]], 6, 0),
                widget("Tokens by model", [["AWS/Bedrock", metric, "ModelId", model] for model in models for metric in ("InputTokenCount", "OutputTokenCount")], 6, 12),
                widget("Model latency and throttles", [["AWS/Bedrock", metric, "ModelId", model] for model in models for metric in ("InvocationLatency", "InvocationThrottles")], 12, 0, "Average"),
            ]
        },
        sort_keys=True,
    )  # fmt: skip
