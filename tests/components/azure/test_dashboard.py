"""The observability block's workbook: four panels whose KQL reads the right tables and metric names."""

from __future__ import annotations

import json
import uuid

import pytest

from agent_runtime import telemetry
from components.azure.dashboard import DashboardArgs, ModelPrice, RuntimeBudget, panels, serialize
from components.azure.observability import Observability, ObservabilityArgs
from core.graph import ResourceGraph

WORKBOOK = "azure-native:applicationinsights:Workbook"
WORKSPACE = "azure-native:operationalinsights:Workspace"
APP_INSIGHTS = "azure-native:applicationinsights:Component"
PRICES = (ModelPrice("gpt-4o", 2.5, 10.0), ModelPrice("gpt-4o-mini", 0.15, 0.6))


def _program(dashboard: DashboardArgs | None):
    def factory(context, identity):
        observability = Observability("obs", context, ObservabilityArgs(dashboard=dashboard))
        return {"dashboardId": observability.dashboard_id} if observability.dashboard_id is not None else None

    return factory


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_program(DashboardArgs(prices=PRICES, currency="EUR")), workspace_id=None)


@pytest.fixture(scope="module")
def notebook(graph, only) -> dict:
    return json.loads(only(graph, WORKBOOK).get("serializedData"))


def _panel(notebook: dict, name: str) -> dict:
    found = [item for item in notebook["items"] if item["name"] == name]
    assert len(found) == 1, f"expected one panel '{name}', found {len(found)}"
    assert found[0]["type"] == 12, f"panel '{name}' is not a group"
    return found[0]["content"]


def _kql(notebook: dict, name: str) -> str:
    return "\n".join(query["content"]["query"] for query in _panel(notebook, name)["items"])


def test_workbook_is_a_shared_workbook_on_app_insights(graph, only, build):
    workbook = only(graph, WORKBOOK)
    assert workbook.get("kind") == "shared", workbook.urn
    assert workbook.get("category") == "workbook", workbook.urn
    assert workbook.get("version") == "Notebook/1.0", workbook.urn
    assert workbook.get("sourceId") == only(graph, APP_INSIGHTS).mock_id, workbook.urn
    assert workbook.get("displayName") == "agst-test agents", workbook.urn
    assert workbook.get("tags") == build.tags, workbook.urn


def test_workbook_name_is_a_deterministic_guid(graph, only, build):
    name = only(graph, WORKBOOK).get("resourceName")
    assert str(uuid.UUID(name)) == name, f"{name} is not a GUID"
    second_run = build(_program(DashboardArgs()), workspace_id=None)
    assert only(second_run, WORKBOOK).get("resourceName") == name, "a second run derives another name"


def test_serialized_data_is_a_notebook_with_the_four_panels(notebook):
    assert notebook["version"] == "Notebook/1.0"
    assert [item["name"] for item in notebook["items"]] == [
        "parameters",
        "latency",
        "cost",
        "errors",
        "tokens",
    ]


def test_every_query_reads_the_workspace_over_the_chosen_time_range(notebook, graph, only):
    workspace = only(graph, WORKSPACE).mock_id
    for name in ("latency", "cost", "errors", "tokens"):
        for query in _panel(notebook, name)["items"]:
            content = query["content"]
            assert (query["type"], content["version"]) == (3, "KqlItem/1.0"), query["name"]
            assert content["crossComponentResources"] == [workspace], query["name"]
            assert content["resourceType"] == "microsoft.operationalinsights/workspaces", query["name"]
            assert content["timeContextFromParameter"] == "TimeRange", query["name"]


def test_latency_panel_has_request_percentiles_by_operation_and_model_call_latency(notebook):
    kql = _kql(notebook, "latency")
    assert "AppRequests" in kql and "by OperationName" in kql
    for p in (50, 95, 99):
        assert f"percentile(DurationMs, {p})" in kql
    assert "AppDependencies" in kql and 'Properties["gen_ai.request.model"]' in kql


def test_cost_panel_prices_otel_and_gateway_tokens(notebook):
    kql = _kql(notebook, "cost")
    assert 'Name == "gen_ai.client.token.usage"' in kql
    assert 'Properties["gen_ai.token.type"]' in kql and 'Properties["gen_ai.request.model"]' in kql
    assert '"Prompt Tokens", "Completion Tokens"' in kql and 'Properties["Backend ID"]' in kql
    assert '"gpt-4o", real(2.5), real(10.0),' in kql and '"gpt-4o-mini", real(0.15), real(0.6)\n];' in kql
    assert "join kind=leftouter prices on model" in kql
    assert _panel(notebook, "cost")["items"][0]["content"]["title"].endswith("(EUR)")


def test_errors_panel_has_failure_rate_429s_and_exceptions(notebook):
    kql = _kql(notebook, "errors")
    assert "countif(Success == false)" in kql and "toint(ResultCode) >= 500" in kql
    assert 'ResultCode == "429"' in kql and "AppDependencies" in kql
    assert "AppExceptions" in kql and "by ExceptionType" in kql


def test_tokens_panel_splits_input_output_by_model_and_agent(notebook):
    queries = [q["content"] for q in _panel(notebook, "tokens")["items"]]
    assert [q["visualization"] for q in queries] == ["timechart", "timechart"]
    by_model, by_agent = (q["query"] for q in queries)
    assert "strcat(model, " in by_model and "strcat(agent, " in by_agent
    assert 'Properties["gen_ai.agent.name"]' in by_agent and 'Properties["Agent"]' in by_agent


def test_cost_panel_reports_each_runtime_budget_by_the_name_its_metrics_carry():
    budgets = (
        RuntimeBudget("tenant-daily", "tenant", 86400, tokens=2_000_000, cost_usd=10.0),
        RuntimeBudget("caller-minute", "caller", 60, requests=30),
    )
    workbook = json.loads(serialize(panels(DashboardArgs(budgets=budgets)), "/ws"))
    [cost] = [item["content"] for item in workbook["items"] if item["name"] == "cost"]
    budget_query = cost["items"][1]["content"]["query"]
    assert '"tenant-daily", "tenant", 86400, long(2000000), long(null), real(10.0)' in budget_query
    assert '"caller-minute", "caller", 60, long(null), long(30), real(null)' in budget_query
    assert "join kind=rightouter budgets on budget" in budget_query, "rules without traffic are listed too"
    # the metric and attribute names are the ones the runtime records
    for name in (telemetry.BUDGET_SETTLED, telemetry.BUDGET_REFUSED):
        assert f'"{name}"' in budget_query
    for attribute in (telemetry.BUDGET_NAME, telemetry.BUDGET_METRIC, telemetry.BUDGET_REASON):
        assert f'Properties["{attribute}"]' in budget_query
    assert len(json.loads(serialize(panels(DashboardArgs()), "/ws"))["items"][2]["content"]["items"]) == 1


def test_serialization_is_deterministic_and_escapes_model_names():
    args = DashboardArgs(prices=(ModelPrice('odd "model"', 1, 2),))
    serialized = serialize(panels(args), "/ws")
    assert serialized == serialize(panels(args), "/ws")
    cost = json.loads(serialized)["items"][2]["content"]["items"][0]["content"]["query"]
    assert '[\n    "odd \\"model\\"", real(1), real(2)\n];' in cost


def test_dashboard_can_be_left_out(build):
    graph = build(_program(None), workspace_id=None)
    assert graph.of_type(WORKBOOK) == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ModelPrice("gpt-4o", -1, 1), "model 'gpt-4o': prices must not be negative"),
        (
            lambda: DashboardArgs(prices=(ModelPrice("a", 1, 1), ModelPrice("a", 2, 2))),
            "prices list these models more than once: a",
        ),
    ],
)
def test_invalid_price_tables_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
