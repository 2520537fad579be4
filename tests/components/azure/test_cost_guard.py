"""Cost guard on its own: a monthly budget on the resource group, every threshold wired to the action group."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pulumi
import pytest

from components.azure import budgets
from components.azure.budgets import BudgetArgs, CostGuard, first_of_current_month
from core.graph import ResourceGraph

BUDGET = "azure-native:consumption:Budget"
ACTION_GROUP = "azure-native:monitor:ActionGroup"
EMAILS = ("oncall@example.com", "finops@example.com")


def _program(args: BudgetArgs):
    def factory(context, identity):
        guard = CostGuard("cost", context, args)
        return {"actionGroupId": guard.action_group_id, "budgetId": guard.budget_id}

    return factory


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    args = BudgetArgs(amount=500, contact_emails=EMAILS, thresholds=(50, 80, 100), forecast_thresholds=(110,))
    return build(_program(args))


def test_budget_is_monthly_cost_on_the_resource_group(graph, only, build):
    budget = only(graph, BUDGET)
    assert budget.get("scope") == f"/subscriptions/{build.subscription_id}/resourceGroups/rg-agentstage-test"
    assert budget.get("amount") == 500, budget.urn
    assert budget.get("category") == "Cost", budget.urn
    assert budget.get("timeGrain") == "Monthly", budget.urn
    assert budget.get("budgetName") == "agst-test-budget-cost", budget.urn


def test_every_threshold_notifies_the_action_group_only(graph, only):
    action_group = only(graph, ACTION_GROUP)
    notifications = only(graph, BUDGET).get("notifications")
    assert set(notifications) == {
        "Actual_GreaterThan_50_Percent",
        "Actual_GreaterThan_80_Percent",
        "Actual_GreaterThan_100_Percent",
        "Forecasted_GreaterThan_110_Percent",
    }
    for key, notification in notifications.items():
        kind, _, percent, _ = key.split("_")
        assert notification["thresholdType"] == kind, key
        assert notification["threshold"] == int(percent), key
        assert notification["operator"] == "GreaterThan", key
        assert notification["enabled"] is True, key
        assert notification["contactGroups"] == [action_group.mock_id], key
        assert notification["contactEmails"] == [], f"{key}: addresses belong to the action group"


def test_action_group_mails_everyone_with_the_common_schema(graph, only, build):
    action_group = only(graph, ACTION_GROUP)
    receivers = action_group.get("emailReceivers")
    assert [r["emailAddress"] for r in receivers] == list(EMAILS), action_group.urn
    assert all(r["useCommonAlertSchema"] is True for r in receivers), action_group.urn
    assert len({r["name"] for r in receivers}) == len(receivers), "receiver names must be unique"
    assert action_group.get("location") == "Global", action_group.urn
    assert action_group.get("enabled") is True, action_group.urn
    assert len(action_group.get("groupShortName")) <= 12, action_group.urn
    assert action_group.get("tags") == build.tags, action_group.urn


@pytest.fixture()
def budget_options(monkeypatch) -> list[pulumi.ResourceOptions]:
    """The options every Budget is created with (the recorded graph does not keep ``ignore_changes``)."""
    seen: list[pulumi.ResourceOptions] = []
    original = budgets.consumption.Budget

    def recording(name, **kwargs):
        seen.append(kwargs["opts"])
        return original(name, **kwargs)

    monkeypatch.setattr(budgets.consumption, "Budget", recording)
    return seen


def test_derived_start_date_is_this_month_and_never_updated(build, only, budget_options, monkeypatch):
    monkeypatch.setattr(budgets, "first_of_current_month", lambda: date(2031, 7, 1))
    budget = only(build(_program(BudgetArgs(amount=10, contact_emails=EMAILS))), BUDGET)
    assert budget.get("timePeriod.startDate") == "2031-07-01T00:00:00Z"
    assert budget_options[0].ignore_changes == ["timePeriod"], "next month's run would move the start date"


def test_explicit_start_date_is_kept_and_tracked(build, only, budget_options):
    args = BudgetArgs(amount=10, contact_emails=EMAILS[:1], start_date=date(2026, 1, 1))
    budget = only(build(_program(args)), BUDGET)
    assert budget.get("timePeriod.startDate") == "2026-01-01T00:00:00Z"
    assert not budget_options[0].ignore_changes, "an explicit start date must follow the stack's config"


def test_outputs_name_the_resources(graph, only, outputs):
    received = outputs(graph)
    assert received["actionGroupId"] == only(graph, ACTION_GROUP).mock_id
    assert received["budgetId"] == only(graph, BUDGET).mock_id


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"amount": 0}, "amount must be greater than 0, got 0"),
        ({"contact_emails": ()}, "contact_emails must name at least one address"),
        ({"contact_emails": ("not-an-address",)}, "contact_emails has invalid addresses: not-an-address"),
        ({"contact_emails": ("a@b.io", "a@b.io")}, "contact_emails lists an address more than once"),
        ({"thresholds": (0, 80)}, r"thresholds are percentages between 1 and 1000, got \[0\]"),
        ({"forecast_thresholds": (1001,)}, r"forecast_thresholds are percentages between 1 and 1000"),
        ({"thresholds": (80, 80)}, "thresholds lists a percentage more than once"),
        ({"thresholds": (), "forecast_thresholds": ()}, "a budget needs at least one threshold"),
        (
            {"thresholds": (25, 50, 75, 100), "forecast_thresholds": (90, 100)},
            "Azure allows 5 budget notifications",
        ),
        ({"start_date": date(2026, 3, 15)}, "start_date must be the first day of a month, got 2026-03-15"),
        ({"start_date": date(2017, 5, 1)}, "start_date must be on or after 2017-06-01"),
    ],
)
def test_bad_args_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        BudgetArgs(**{"amount": 100, "contact_emails": EMAILS, **args})


def test_first_of_current_month_is_the_first_of_the_utc_month():
    assert first_of_current_month() == datetime.now(UTC).date().replace(day=1)
