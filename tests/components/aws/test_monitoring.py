"""The AWS monitoring block on its own: each alarm (metric, threshold, dimensions, topic), the dashboard's
graphs (metrics that exist, under the dimensions they are published with) and a row per agent drawn from
exactly what the runtime's ``emf`` exporter writes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from agent_runtime import telemetry_emf
from agent_runtime.emf import EmfBuffer
from agent_runtime.telemetry import COST_ATTRIBUTE
from components.aws import monitoring
from components.aws.context import AwsContext
from components.aws.monitoring import (
    ApiWatch,
    FunctionWatch,
    ModelPrice,
    Monitoring,
    MonitoringArgs,
    QueueWatch,
)
from core.engine import record
from core.graph import Resource, ResourceGraph

ACCOUNT, REGION, ENVIRONMENT = "123456789012", "eu-west-1", "staging"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:ags-staging-alarms"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
MODEL = "eu.anthropic.claude-3-haiku-20240307-v1:0"
AGENTS = ("orchestrator", "billing")

FOUNDATION = MonitoringArgs(
    functions=[
        FunctionWatch("orchestrator", "ags-staging-orchestrator"),
        FunctionWatch("billing", "ags-staging-billing", duration_p95_ms=120_000),
        FunctionWatch("authorizer", "ags-staging-authorizer", duration_p95_ms=1_000),
    ],
    api=ApiWatch.rest_api("ags-staging-gateway", "live"),
    agents=AGENTS,
    dead_letter_queues=[
        QueueWatch("tasks-orchestrator", "ags-staging-tasks-orchestrator-dlq"),
        QueueWatch("tasks-billing", "ags-staging-tasks-billing-dlq"),
    ],
    prices=[ModelPrice(MODEL, 0.25, 1.25)],
    contact_emails=["oncall@example.com"],
    budget_usd=500,
    server_error_percent=2.5,
    latency_p95_ms=25_000,
    api_latency_p95_ms=15_000,
    daily_spend_usd=40,
)
PILOT = MonitoringArgs(
    functions=[FunctionWatch("", "ags-staging-agent")],
    api=ApiWatch.http_api("a1b2c3d4e5"),
    agents=["assistant"],
    prices=[ModelPrice(MODEL, 0.25, 1.25)],
    contact_emails=["oncall@example.com"],
    budget_usd=100,
)

AWS_METRICS = {
    "AWS/Lambda": ({"Invocations", "Errors", "Throttles", "Duration"}, ["FunctionName"]),
    "AWS/SQS": ({"ApproximateNumberOfMessagesVisible"}, ["QueueName"]),
    "AWS/Bedrock": ({"InputTokenCount", "OutputTokenCount", "InvocationLatency", "InvocationThrottles"}, ["ModelId"]),
}  # fmt: skip
"""What AWS publishes, by namespace: metric names and their dimension keys (the Lambda, SQS and Bedrock
CloudWatch documentation)."""
API_METRICS = {
    "REST API": ({"Count", "4XXError", "5XXError", "Latency"}, ["ApiName", "Stage"]),
    "HTTP API": ({"Count", "4xx", "5xx", "Latency"}, ["ApiId", "Stage"]),
}


def build(args: MonitoringArgs) -> ResourceGraph:
    def program() -> None:
        context = AwsContext(
            name_prefix="ags",
            environment=ENVIRONMENT,
            region=REGION,
            account_id=ACCOUNT,
            tags={"agentstage-environment": ENVIRONMENT},
            kms_key_arn=KEY,
        )
        Monitoring("monitoring", context, args)

    return record(program, config={"aws:region": REGION})


@pytest.fixture(scope="module")
def foundation() -> ResourceGraph:
    return build(FOUNDATION)


@pytest.fixture(scope="module")
def pilot() -> ResourceGraph:
    return build(PILOT)


def alarms(graph: ResourceGraph) -> dict[str, Resource]:
    return {alarm.name: alarm for alarm in graph.of_type(ALARM)}


def dashboard(graph: ResourceGraph) -> list[dict[str, Any]]:
    [board] = graph.of_type("aws:cloudwatch/dashboard:Dashboard")
    return json.loads(board.inputs["dashboardBody"])["widgets"]


def metric_lines(widgets: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, str], dict[str, str]]]:
    """(namespace, metric, dimensions, rendering options) of every metric a widget graphs."""
    for widget in widgets:
        for line in widget["properties"].get("metrics", []):
            options = line[-1] if isinstance(line[-1], dict) else {}
            pairs = line[2:-1] if options else line[2:]
            yield line[0], line[1], dict(zip(pairs[::2], pairs[1::2], strict=True)), options


# -- alarms --------------------------------------------------------------------------------------------


def test_the_alarm_topic_is_sealed_with_the_stacks_key_and_mails_the_contacts(
    foundation: ResourceGraph,
) -> None:
    [topic] = foundation.of_type("aws:sns/topic:Topic")
    assert (topic.inputs["name"], topic.inputs["kmsMasterKeyId"]) == ("ags-staging-alarms", KEY)
    [mail] = foundation.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert (mail.inputs["topic"], mail.inputs["protocol"], mail.inputs["endpoint"]) == (
        TOPIC,
        "email",
        "oncall@example.com",
    )


def test_every_alarm_pages_the_one_topic(foundation: ResourceGraph) -> None:
    found = alarms(foundation)
    assert set(found) == {
        *(f"monitoring-{f}-{kind}" for f in ("orchestrator", "billing", "authorizer")
          for kind in ("errors", "throttles", "latency")),
        "monitoring-tasks-orchestrator-dlq", "monitoring-tasks-billing-dlq",
        "monitoring-5xx", "monitoring-api-latency", "monitoring-spend",
    }  # fmt: skip
    for name, alarm in found.items():
        assert alarm.inputs["name"] == "ags-staging-" + name.removeprefix("monitoring-")
        assert alarm.inputs["alarmActions"] == [TOPIC], name
        assert alarm.inputs["comparisonOperator"] == "GreaterThanThreshold", name
        assert (alarm.inputs["evaluationPeriods"], alarm.inputs["treatMissingData"]) == (1, "notBreaching")
        assert alarm.inputs.get("okActions") == (None if name == "monitoring-spend" else [TOPIC]), name


@pytest.mark.parametrize(
    ("function", "threshold"), [("orchestrator", 25_000), ("billing", 120_000), ("authorizer", 1_000)]
)
def test_each_function_is_alarmed_on_errors_throttles_and_p95_duration(
    foundation: ResourceGraph, function: str, threshold: int
) -> None:
    found = alarms(foundation)
    expected = {
        "errors": ("Errors", {"statistic": "Sum"}, 0),
        "throttles": ("Throttles", {"statistic": "Sum"}, 0),
        "latency": ("Duration", {"extendedStatistic": "p95"}, threshold),
    }
    for kind, (metric, statistic, limit) in expected.items():
        alarm = found[f"monitoring-{function}-{kind}"]
        assert {
            k: alarm.inputs.get(k) for k in ("namespace", "metricName", "dimensions", "period", "threshold")
        } == {
            "namespace": "AWS/Lambda",
            "metricName": metric,
            "dimensions": {"FunctionName": f"ags-staging-{function}"},
            "period": 300,
            "threshold": limit,
        }
        assert {k: alarm.inputs[k] for k in statistic} == statistic
        assert ({"statistic", "extendedStatistic"} - set(statistic)).isdisjoint(alarm.inputs), "one statistic"


@pytest.mark.parametrize("queue", ["tasks-orchestrator", "tasks-billing"])
def test_a_message_in_a_dead_letter_queue_pages(foundation: ResourceGraph, queue: str) -> None:
    alarm = alarms(foundation)[f"monitoring-{queue}-dlq"]
    assert {
        k: alarm.inputs[k] for k in ("namespace", "metricName", "dimensions", "statistic", "threshold")
    } == {
        "namespace": "AWS/SQS",
        "metricName": "ApproximateNumberOfMessagesVisible",
        "dimensions": {"QueueName": f"ags-staging-{queue}-dlq"},
        "statistic": "Maximum",
        "threshold": 0,
    }


def test_the_rest_apis_5xx_share_and_p95_latency(foundation: ResourceGraph) -> None:
    found = alarms(foundation)
    api = {"ApiName": "ags-staging-gateway", "Stage": "live"}
    errors, requests, share = found["monitoring-5xx"].inputs["metricQueries"]
    assert (errors["metric"]["metricName"], requests["metric"]["metricName"]) == ("5XXError", "Count")
    for query in (errors, requests):
        assert query["metric"] | {"metricName": None} == {
            "namespace": "AWS/ApiGateway", "metricName": None, "dimensions": api, "period": 300, "stat": "Sum",
        }  # fmt: skip
    assert share["expression"] == "IF(requests >= 20, 100 * errors / requests, 0)" and share["returnData"]
    assert found["monitoring-5xx"].inputs["threshold"] == 2.5
    latency = found["monitoring-api-latency"].inputs
    assert {
        k: latency[k] for k in ("namespace", "metricName", "dimensions", "extendedStatistic", "threshold")
    } == {
        "namespace": "AWS/ApiGateway",
        "metricName": "Latency",
        "dimensions": api,
        "extendedStatistic": "p95",
        "threshold": 15_000,
    }


def test_the_days_token_spend_is_priced_from_bedrocks_token_counts(foundation: ResourceGraph) -> None:
    spend = alarms(foundation)["monitoring-spend"].inputs
    *metrics, total = spend["metricQueries"]
    assert [(q["id"], q["metric"]["metricName"], q["metric"]["dimensions"], q["metric"]["period"]) for q in metrics] == [
        ("in0", "InputTokenCount", {"ModelId": MODEL}, 86_400),
        ("out0", "OutputTokenCount", {"ModelId": MODEL}, 86_400),
    ]  # fmt: skip
    assert total["expression"] == "FILL(in0, 0) * 0.25 / 1000000 + FILL(out0, 0) * 1.25 / 1000000"
    assert spend["threshold"] == 40


def test_the_pilot_keeps_its_alarms_and_names(pilot: ResourceGraph) -> None:
    found = alarms(pilot)
    assert set(found) == {f"monitoring-{kind}" for kind in ("errors", "throttles", "latency", "5xx", "spend")}
    assert found["monitoring-latency"].inputs["threshold"] == 20_000
    errors, requests, _ = found["monitoring-5xx"].inputs["metricQueries"]
    assert (errors["metric"]["metricName"], requests["metric"]["metricName"]) == ("5xx", "Count")
    assert errors["metric"]["dimensions"] == {"ApiId": "a1b2c3d4e5", "Stage": "$default"}


# -- dashboard -----------------------------------------------------------------------------------------


def emitted_by_the_runtime(agents: Sequence[str]) -> set[tuple[str, str, frozenset[tuple[str, str]]]]:
    """(namespace, metric, dimensions) of every metric the runtime's emf exporter writes for a run of each
    agent with one priced model call: what CloudWatch will hold."""
    stream = io.StringIO()
    metrics = telemetry_emf.EmfMetrics(ENVIRONMENT, EmfBuffer(telemetry_emf.NAMESPACE, stream=stream))
    provider = TracerProvider()
    provider.add_span_processor(metrics)
    tracer = provider.get_tracer("test")
    for agent in agents:
        run = tracer.start_span(
            f"invoke_agent {agent}",
            kind=SpanKind.SERVER,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent},
        )
        chat = tracer.start_span(
            f"chat {MODEL}",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.agent.name": agent,
                "gen_ai.request.model": MODEL,
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 3,
                COST_ATTRIBUTE: 0.0001,
            },
        )
        chat.end()
        run.set_status(Status(StatusCode.ERROR))
        run.end()
    provider.force_flush()
    found = set()
    for line in stream.getvalue().splitlines():
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for keys in directive["Dimensions"]:
                dimensions = frozenset((key, document[key]) for key in keys)
                found |= {(directive["Namespace"], m["Name"], dimensions) for m in directive["Metrics"]}
    return found  # fmt: skip


@pytest.mark.parametrize("graph", ["foundation", "pilot"])
def test_every_graph_reads_a_metric_that_exists_under_its_dimensions(
    graph: str, request: pytest.FixtureRequest
) -> None:
    args = FOUNDATION if graph == "foundation" else PILOT
    widgets = dashboard(request.getfixturevalue(graph))
    runtime = emitted_by_the_runtime(args.agents)
    lines = list(metric_lines(widgets))
    assert lines
    for namespace, metric, dimensions, _ in lines:
        if namespace == monitoring.RUNTIME_NAMESPACE:
            assert (namespace, metric, frozenset(dimensions.items())) in runtime, (metric, dimensions)
            continue
        names, keys = AWS_METRICS.get(namespace) or API_METRICS[args.api.kind]
        assert metric in names and list(dimensions) == keys, (namespace, metric, dimensions)


def test_the_runtimes_vocabulary_is_the_dashboards() -> None:
    """Components cannot import the runtime's telemetry; the mirrored names are checked here instead."""
    assert monitoring.RUNTIME_NAMESPACE == telemetry_emf.NAMESPACE
    assert (monitoring.ENVIRONMENT, monitoring.AGENT) == (telemetry_emf.ENVIRONMENT, telemetry_emf.AGENT)
    mirrored = {
        monitoring.RUNS: telemetry_emf.RUNS, monitoring.RUN_ERRORS: telemetry_emf.RUN_ERRORS,
        monitoring.RUN_DURATION: telemetry_emf.RUN_DURATION, monitoring.INPUT_TOKENS: telemetry_emf.INPUT_TOKENS,
        monitoring.OUTPUT_TOKENS: telemetry_emf.OUTPUT_TOKENS, monitoring.COST: telemetry_emf.COST,
    }  # fmt: skip
    for name, metric in mirrored.items():
        assert name == metric.name
        assert (telemetry_emf.ENVIRONMENT, telemetry_emf.AGENT) in metric.dimension_sets, name


def test_a_row_per_agent_latency_errors_tokens_and_cost(foundation: ResourceGraph) -> None:
    widgets = dashboard(foundation)
    for agent in AGENTS:
        row = [w for w in widgets if w["properties"].get("title", "").startswith(f"{agent}: ")]
        title = [w for w in widgets if w["properties"].get("markdown") == f"### Agent `{agent}`"]
        assert len(title) == 1 and len(row) == 4
        assert {w["y"] for w in row} == {title[0]["y"] + 1}, "the graphs sit under the agent's title"
        graphed = {
            w["properties"]["title"].removeprefix(f"{agent}: "): [
                (metric, options.get("stat", w["properties"]["stat"])) for _, metric, _, options in metric_lines([w])
            ]
            for w in row
        }  # fmt: skip
        assert graphed == {
            "run latency (ms)": [("RunDuration", "p50"), ("RunDuration", "p95")],
            "runs and errors": [("Runs", "Sum"), ("RunErrors", "Sum")],
            "tokens": [("InputTokens", "Sum"), ("OutputTokens", "Sum")],
            "cost (USD)": [("CostUSD", "Sum")],
        }
        for _, _, dimensions, _ in metric_lines(row):
            assert dimensions == {"Environment": ENVIRONMENT, "Agent": agent}


def test_the_dashboard_graphs_every_function_queue_and_model(foundation: ResourceGraph) -> None:
    widgets = {w["properties"].get("title"): w for w in dashboard(foundation)}
    functions = {d["FunctionName"] for _, _, d, _ in metric_lines([widgets["Function runs and errors"]])}
    assert functions == {"ags-staging-orchestrator", "ags-staging-billing", "ags-staging-authorizer"}
    queues = {d["QueueName"] for _, _, d, _ in metric_lines([widgets["Messages in dead-letter queues"]])}
    assert queues == {"ags-staging-tasks-orchestrator-dlq", "ags-staging-tasks-billing-dlq"}
    assert widgets["Messages in dead-letter queues"]["properties"]["stat"] == "Maximum"
    assert {d["ModelId"] for _, _, d, _ in metric_lines([widgets["Tokens by model"]])} == {MODEL}


@pytest.mark.parametrize("graph", ["foundation", "pilot"])
def test_widgets_fit_the_grid_without_overlapping(graph: str, request: pytest.FixtureRequest) -> None:
    widgets = dashboard(request.getfixturevalue(graph))
    cells: set[tuple[int, int]] = set()
    for widget in widgets:
        assert 0 <= widget["x"] and widget["x"] + widget["width"] <= 24
        area = {(x, y) for x in range(widget["x"], widget["x"] + widget["width"])
                for y in range(widget["y"], widget["y"] + widget["height"])}  # fmt: skip
        assert not cells & area, widget["properties"].get("title")
        cells |= area
    assert all(w["properties"]["metrics"] for w in widgets if w["type"] == "metric"), "no empty graph"


def test_the_pilots_dashboard_follows_what_its_function_runs(
    stack_graph: Callable[[str], ResourceGraph],
) -> None:
    graph = stack_graph("pilot-aws-dev")
    [function] = graph.of_type("aws:lambda/function:Function")
    environment = function.inputs["environment"]["variables"]
    assert environment["AGENTSTAGE_TELEMETRY_EXPORTER"] == "emf"
    runtime = {
        (namespace, dimensions[monitoring.ENVIRONMENT], dimensions[monitoring.AGENT])
        for namespace, _, dimensions, _ in metric_lines(dashboard(graph))
        if namespace == monitoring.RUNTIME_NAMESPACE
    }
    agents = {agent["name"] for agent in json.loads(environment["AGENTSTAGE_AGENTS"])}
    assert runtime == {("agentstage", environment["AGENTSTAGE_ENVIRONMENT"], agent) for agent in agents}


# -- bad input -----------------------------------------------------------------------------------------


def with_(**changes: Any) -> MonitoringArgs:
    values = {name: getattr(FOUNDATION, name) for name in FOUNDATION.__dataclass_fields__}
    return MonitoringArgs(**(values | changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"functions": []}, r"MonitoringArgs.functions: watch at least one function"),
        (
            {"functions": [FunctionWatch("", "a"), FunctionWatch("b", "b")]},
            r"MonitoringArgs.functions: give each function a label when the stack watches several",
        ),
        (
            {"functions": [FunctionWatch("a", "a"), FunctionWatch("a", "b")]},
            r"MonitoringArgs.functions: each name once; repeated: a",
        ),
        (
            {"functions": [FunctionWatch("api", "a")]},
            r"MonitoringArgs.functions: 'api' names the API's alarms; label the function otherwise",
        ),
        ({"dead_letter_queues": [QueueWatch("", "q")]}, r"dead_letter_queues: give each queue a label"),
        ({"agents": ["billing", "billing"]}, r"MonitoringArgs.agents: each name once; repeated: billing"),
        ({"agents": [""]}, r"MonitoringArgs.agents: an agent name cannot be empty"),
        (
            {"agents": [f"agent-{index}" for index in range(99)]},
            r"99 agents need 501 dashboard widgets, more than CloudWatch's 500",
        ),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        with_(**changes)
