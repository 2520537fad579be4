"""The AWS pilot is priced like Azure: every type priced or free for a reason, figures from the price rows."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from core.graph import ResourceGraph
from core.stacks import load_stack_config
from cost import estimate
from cost.aws import CHARS_PER_TOKEN, FREE, PRICERS, WRITE_SHARE
from cost.estimate import catalog
from cost.model import CostLine
from cost.prices import PRICES_DIR
from cost.usage import UsageProfile

Graphs = Callable[[str], ResourceGraph]
AWS_STACKS = ("pilot-aws-dev", "pilot-aws-prod")
ROWS = yaml.safe_load((PRICES_DIR / "aws.yaml").read_text(encoding="utf-8"))["prices"]
MONTH_DAYS = 730 / 24
PROFILE = UsageProfile.model_validate(
    {
        "agents": {
            "*": {
                "requestsPerDay": 1000,
                "inputTokensPerRequest": 2000,
                "outputTokensPerRequest": 500,
                "embeddingTokensPerRequest": 100,
                "secondsPerRequest": 3,
                "stateRequestUnitsPerRequest": 40,
                "vaultOperationsPerRequest": 1,
            }
        },
        "storage": {"stateGb": 4, "vectors": 100_000},
        "logs": {"gbPerDay": 2},
    }
)


def row(meter: str, sku: str, region: str = "eu-west-1") -> float:
    """The price of a row of cost/prices/aws.yaml, read from the file itself."""
    [price] = [r["price"] for r in ROWS if (r["meter"], r["sku"], r["region"]) == (meter, sku, region)]
    return float(price)


def edited(graph: ResourceGraph, name: str, **inputs: Any) -> ResourceGraph:
    changed = ResourceGraph.from_json(graph.to_json())
    target = next(r for r in changed.resources if r.name == name and r.custom)
    changed.resources[changed.resources.index(target)] = dataclasses.replace(
        target, inputs={**json.loads(json.dumps(target.inputs)), **inputs}
    )
    return changed


def lines_of(result: Any, kind: str) -> dict[tuple[str, str], CostLine]:
    return {(l.resource, l.price.meter): l for l in result.lines if l.kind == kind}


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_every_aws_type_is_priced_or_free_and_nothing_is_unpriced(stack: str, stack_graph: Graphs) -> None:
    graph = stack_graph(stack)
    types = {r.type for r in graph.cloud_resources()}
    assert types <= set(PRICERS) | set(FREE)
    pricers, free = catalog()
    assert set(PRICERS) <= set(pricers) and set(FREE) <= set(free)
    config, stack_file = load_stack_config(stack)
    for usage in (None, PROFILE):
        result = estimate(graph, config, usage, stack_file=str(stack_file))
        assert result.unpriced == (), result.unpriced
        assert {l.price.region for l in result.lines} <= {"eu-west-1", "global"}


def test_the_region_comes_from_the_plan_without_the_stack_file(stack_graph: Graphs) -> None:
    config, _ = load_stack_config("pilot-aws-prod")
    with_config, without = (
        estimate(stack_graph("pilot-aws-prod"), config),
        estimate(stack_graph("pilot-aws-prod")),
    )
    assert without.fixed == pytest.approx(with_config.fixed) and without.unpriced == ()


def test_fixed_cost_of_the_aws_pilot_from_the_price_rows(stack_graph: Graphs) -> None:
    prod = estimate(stack_graph("pilot-aws-prod"))
    fixed = lines_of(prod, "fixed")
    # One warm instance of the 2,048 MB arm64 function, every second of the 730-hour month.
    warm = fixed[("agent-warm", "lambda.provisioned-concurrency")]
    assert (warm.price.sku, warm.quantity) == ("arm64", 1 * 2 * 730 * 3600)
    assert warm.monthly == pytest.approx(2 * 730 * 3600 * row("lambda.provisioned-concurrency", "arm64"))
    assert warm.monthly == pytest.approx(17.52, abs=0.01)
    assert fixed[("encryption-key", "kms.key")].monthly == row("kms.key", "customer-managed") == 1.00
    assert fixed[("secrets-settings", "secretsmanager.secret")].monthly == row(
        "secretsmanager.secret", "standard"
    )
    # Alarms bill per alarm metric: a metric-math alarm pays for every metric it reads, not its expression.
    alarm = row("cloudwatch.alarm-metric", "standard")
    metrics = {"monitoring-errors": 1, "monitoring-throttles": 1, "monitoring-latency": 1}
    metrics |= {"monitoring-5xx": 2, "monitoring-spend": 4}  # 5xx and Count; in and out of two models
    for name, count in metrics.items():
        line = fixed[(name, "cloudwatch.alarm-metric")]
        assert (line.quantity, line.price.sku) == (count, "standard")
        assert line.monthly == pytest.approx(count * alarm)
    dashboard = fixed[("monitoring-dashboard", "cloudwatch.dashboard")]
    assert dashboard.price.region == "global" and dashboard.monthly == row(
        "cloudwatch.dashboard", "standard", "global"
    )
    expected = (
        2 * 730 * 3600 * row("lambda.provisioned-concurrency", "arm64")
        + row("kms.key", "customer-managed")
        + row("secretsmanager.secret", "standard")
        + 9 * alarm
        + row("cloudwatch.dashboard", "standard", "global")
    )
    assert prod.fixed == pytest.approx(expected)
    # dev keeps no warm instance: the same stack less the provisioned concurrency.
    dev = estimate(stack_graph("pilot-aws-dev"))
    assert dev.fixed == pytest.approx(expected - warm.monthly)
    assert any(f.resource == "agent-function" and "per request and GB-second" in f.reason for f in dev.free)


def test_decisions_on_account_allowances_are_stated(stack_graph: Graphs) -> None:
    result = estimate(stack_graph("pilot-aws-dev"))
    reasons = {f.resource: f.reason for f in result.free}
    assert "budget notifications are free" in reasons["monitoring-budget"]
    assert "per million request units" in reasons["state-conversations"]
    assert "continuous backups" in reasons["state-conversations"]
    assert "GB ingested" in reasons["agent-logs"]
    dashboard = lines_of(result, "fixed")[("monitoring-dashboard", "cloudwatch.dashboard")]
    assert "3 free ones not counted" in dashboard.basis


def test_usage_lines_of_the_aws_pilot_follow_the_profile(stack_graph: Graphs) -> None:
    config, stack_file = load_stack_config("pilot-aws-prod")
    result = estimate(stack_graph("pilot-aws-prod"), config, PROFILE, stack_file=str(stack_file))
    usage = lines_of(result, "usage")
    requests = 1000 * MONTH_DAYS
    assert usage[("agent-function", "lambda.requests")].monthly == pytest.approx(
        requests / 1e6 * row("lambda.requests", "standard")
    )
    duration = usage[("agent-function", "lambda.duration")]
    assert duration.price.sku == "arm64" and duration.quantity == pytest.approx(requests * 3 * 2)
    assert duration.monthly == pytest.approx(requests * 3 * 2 * row("lambda.duration", "arm64"))
    assert usage[("agent-function", "xray.traces-recorded")].quantity == pytest.approx(requests / 1e6)
    chat = next(m for m in config.models if m.name == "chat")
    embeddings = next(m for m in config.models if m.name == "embeddings")
    assert usage[("agent-function", "bedrock.tokens.input")].monthly == pytest.approx(
        requests * 2000 / 1e6 * chat.input_price_per_million
    )
    assert usage[("agent-function", "bedrock.tokens.output")].monthly == pytest.approx(
        requests * 500 / 1e6 * chat.output_price_per_million
    )
    embedded = usage[("agent-function", "bedrock.tokens.embedding")]
    assert embedded.price.sku == embeddings.model and embedded.quantity == pytest.approx(requests * 100 / 1e6)
    assert usage[("api-api", "apigateway.http-requests")].quantity == pytest.approx(requests / 1e6)
    # The guardrail filters input and output: tokens x 4 characters, per 1,000-character text unit.
    guardrail = usage[("models-guardrail", "bedrock.guardrail.content-filter")]
    assert guardrail.quantity == pytest.approx(requests * 2500 * CHARS_PER_TOKEN / 1000 / 1000)
    assert guardrail.monthly == pytest.approx(
        guardrail.quantity * row("bedrock.guardrail.content-filter", "text")
    )
    # 40 request units a request, spread over the 3 tables (no tasks table: no task worker), 75% writes.
    units = requests * 40 / 3
    for table in ("state-conversations", "state-ledger", "state-memories"):
        assert usage[(table, "dynamodb.write-request-units")].quantity == pytest.approx(
            units * WRITE_SHARE / 1e6
        )
        assert usage[(table, "dynamodb.read-request-units")].quantity == pytest.approx(
            units * (1 - WRITE_SHARE) / 1e6
        )
    # State lies in the conversations table, vectors in the memories table; PITR on each table's size.
    assert usage[("state-conversations", "dynamodb.storage")].quantity == 4
    assert usage[("state-conversations", "dynamodb.pitr")].quantity == 4
    vector_gb = 100_000 * 1024 * 4 / 1e9
    assert usage[("state-memories", "dynamodb.storage")].quantity == pytest.approx(vector_gb)
    assert ("state-ledger", "dynamodb.storage") not in usage
    # 2 GB of logs a day over the stack's 2 log groups, kept for the stack's retention.
    assert usage[("agent-logs", "cloudwatch.logs.ingestion")].quantity == pytest.approx(1 * MONTH_DAYS)
    assert usage[("api-logs", "cloudwatch.logs.storage")].quantity == pytest.approx(
        1 * load_stack_config("pilot-aws-prod")[0].log_retention_days
    )
    assert usage[("secrets-settings", "secretsmanager.api-calls")].quantity == pytest.approx(requests / 1e4)
    assert usage[("api-stage", "cloudwatch.custom-metric")].quantity == pytest.approx(6, rel=1e-3)
    assert result.unpriced == () and result.total() == pytest.approx(result.fixed + result.usage)


def test_dev_runs_on_a_smaller_function(stack_graph: Graphs) -> None:
    config, _ = load_stack_config("pilot-aws-dev")
    usage = lines_of(estimate(stack_graph("pilot-aws-dev"), config, PROFILE), "usage")
    assert usage[("agent-function", "lambda.duration")].quantity == pytest.approx(1000 * MONTH_DAYS * 3 * 1)
    assert usage[("agent-logs", "cloudwatch.logs.storage")].quantity == pytest.approx(1 * 30)


def test_an_unknown_region_is_not_priced_never_zero(stack_graph: Graphs) -> None:
    graph = edited(stack_graph("pilot-aws-prod"), "encryption-key", region="ap-east-2")
    result = estimate(graph)
    [unpriced] = result.unpriced
    assert unpriced.resource == "encryption-key"
    assert "no price for kms.key sku customer-managed in ap-east-2" in unpriced.reason
    assert "add a row to prices/" in unpriced.reason
    assert "encryption-key" not in dict(result.by_resource())
    # A global price does not depend on the region.
    graph = edited(stack_graph("pilot-aws-prod"), "monitoring-dashboard", region="ap-east-2")
    assert estimate(graph).unpriced == ()


def test_alarm_resolution_and_kinds_the_table_cannot_price(stack_graph: Graphs) -> None:
    graph = edited(stack_graph("pilot-aws-prod"), "monitoring-errors", period=10)
    [line] = [l for l in estimate(graph).lines if l.resource == "monitoring-errors"]
    assert line.price.sku == "high-resolution" and line.monthly == row(
        "cloudwatch.alarm-metric", "high-resolution"
    )
    band = [
        {
            "id": "m1",
            "metric": {"metricName": "Errors", "namespace": "AWS/Lambda", "period": 300, "stat": "Sum"},
        },
        {"id": "ad1", "expression": "ANOMALY_DETECTION_BAND(m1, 2)", "returnData": True},
    ]
    graph = edited(stack_graph("pilot-aws-prod"), "monitoring-errors", metricQueries=band)
    [unpriced] = estimate(graph).unpriced
    assert unpriced.resource == "monitoring-errors" and "anomaly detection" in unpriced.reason


def test_provisioned_tables_and_unpriced_models_are_named(stack_graph: Graphs) -> None:
    graph = edited(stack_graph("pilot-aws-dev"), "state-ledger", billingMode="PROVISIONED")
    [unpriced] = estimate(graph).unpriced
    assert unpriced.resource == "state-ledger" and "provisioned capacity" in unpriced.reason
    config, _ = load_stack_config("pilot-aws-dev")
    models = tuple(m.model_copy(update={"output_price_per_million": None}) for m in config.models)
    config = config.model_copy(update={"models": models})
    result = estimate(
        stack_graph("pilot-aws-dev"), config, PROFILE, stack_file="stacks/Pulumi.pilot-aws-dev.yaml"
    )
    [unpriced] = result.unpriced
    assert unpriced.resource == "agent-function"
    assert (
        "output tokens of model 'eu.amazon.nova-lite-v1:0': set its outputPricePerMillion in "
        "stacks/Pulumi.pilot-aws-dev.yaml" in unpriced.reason
    )
