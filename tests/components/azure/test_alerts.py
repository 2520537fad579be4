"""Service alerts on their own: each rule queries the right signal on App Insights and pages the action group."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.azure.alerts import COST_METRIC, AlertArgs, ServiceAlerts
from core.graph import Resource, ResourceGraph

RULE = "azure-native:monitor:ScheduledQueryRule"
APP_INSIGHTS_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/components/appi-test"
ACTION_GROUP_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/actionGroups/ag-test"
ARGS = AlertArgs(
    server_error_percent=2.5, latency_p95_ms=12_000, daily_spend_usd=75, window_minutes=10, min_requests=30
)


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    def factory(context, identity):
        alerts = ServiceAlerts(
            "agents", context, ARGS, app_insights_id=APP_INSIGHTS_ID, action_group_id=ACTION_GROUP_ID
        )
        return {f"rule-{purpose}": rule_id for purpose, rule_id in alerts.rule_ids.items()}

    return build(factory)


def _rule(graph: ResourceGraph, purpose: str) -> Resource:
    found = [r for r in graph.of_type(RULE) if r.name == f"agents-{purpose}"]
    assert len(found) == 1, f"expected one '{purpose}' rule, found {len(found)}"
    return found[0]


def _condition(rule: Resource) -> dict:
    conditions = rule.get("criteria.allOf")
    assert len(conditions) == 1, rule.urn
    return conditions[0]


def test_three_rules_exist_and_each_pages_the_action_group(graph, outputs):
    assert len(graph.of_type(RULE)) == 3
    for purpose in ("5xx", "latency", "spend"):
        rule = _rule(graph, purpose)
        assert rule.get("actions.actionGroups") == [ACTION_GROUP_ID], rule.urn
        assert outputs(graph)[f"rule-{purpose}"] == rule.mock_id


def test_rules_are_log_alerts_on_app_insights_that_resolve_themselves(graph, build):
    for rule in graph.of_type(RULE):
        assert rule.get("kind") == "LogAlert", rule.urn
        assert rule.get("scopes") == [APP_INSIGHTS_ID], rule.urn
        assert rule.get("autoMitigate") is True, rule.urn
        assert rule.get("enabled") is True, rule.urn
        assert rule.get("severity") == 2, rule.urn
        assert rule.get("location") == "westeurope", rule.urn
        assert rule.get("tags") == build.tags, rule.urn
        condition = _condition(rule)
        assert condition["operator"] == "GreaterThan", rule.urn
        assert condition["failingPeriods"] == {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}
        # The measure column must be one the query projects, next to the time column the service bins on.
        assert f"| project timestamp, {condition['metricMeasureColumn']}" in condition["query"], rule.urn


def test_5xx_rule_measures_the_share_of_server_errors(graph):
    rule = _rule(graph, "5xx")
    condition = _condition(rule)
    query = condition["query"]
    assert query.startswith("requests\n"), query
    assert "countif(toint(resultCode) >= 500)" in query and "100.0 * server_errors / requests" in query
    assert "where requests >= 30" in query, "windows with too few requests must not page"
    assert condition["threshold"] == 2.5
    assert (rule.get("windowSize"), rule.get("evaluationFrequency")) == ("PT10M", "PT10M")


def test_latency_rule_measures_p95_duration(graph):
    rule = _rule(graph, "latency")
    condition = _condition(rule)
    assert "percentile(duration, 95)" in condition["query"]
    assert "where requests >= 30" in condition["query"]
    assert condition["metricMeasureColumn"] == "p95_ms"
    assert condition["threshold"] == 12_000
    assert (rule.get("windowSize"), rule.get("evaluationFrequency")) == ("PT10M", "PT10M")


def test_spend_rule_sums_the_runtime_cost_metric_over_a_day(graph):
    rule = _rule(graph, "spend")
    condition = _condition(rule)
    assert COST_METRIC == "agentstage.model.cost"
    assert condition["query"].startswith(f'customMetrics\n| where name == "{COST_METRIC}"\n')
    assert "sum(valueSum)" in condition["query"]
    assert condition["threshold"] == 75
    assert (rule.get("windowSize"), rule.get("evaluationFrequency")) == ("P1D", "PT1H")


def test_cost_metric_is_the_one_the_runtime_emits():
    telemetry = Path(__file__).parents[3] / "runtime" / "agent_runtime" / "telemetry.py"
    assert f'"{COST_METRIC}", unit="USD"' in telemetry.read_text(), "the runtime renamed its cost metric"


def test_rule_names_are_distinct_and_readable(graph):
    names = sorted(rule.get("ruleName") for rule in graph.of_type(RULE))
    assert names == [
        "agst-test-alert-agents-5xx",
        "agst-test-alert-agents-latency",
        "agst-test-alert-agents-spend",
    ]


def test_one_hour_window_is_written_as_an_hour():
    assert AlertArgs(window_minutes=60).window == "PT1H"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"server_error_percent": 0}, r"server_error_percent must be in \(0, 100\], got 0"),
        ({"server_error_percent": 101}, r"server_error_percent must be in \(0, 100\], got 101"),
        ({"latency_p95_ms": -1}, "latency_p95_ms must be greater than 0, got -1"),
        ({"daily_spend_usd": 0}, "daily_spend_usd must be greater than 0, got 0"),
        ({"window_minutes": 7}, "window_minutes must be one of 5, 10, 15, 30, 45, 60, got 7"),
        ({"min_requests": 0}, "min_requests must be at least 1, got 0"),
        ({"severity": 5}, r"severity must be 0 \(Critical\) to 4 \(Verbose\), got 5"),
    ],
)
def test_bad_args_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        AlertArgs(**args)
