"""Cost governance: a monthly Consumption budget on the stage's resource group, alerting an action group.

The budget tracks every cost in the resource group (models, search, hosting, telemetry), so a runaway
agent shows up wherever its money goes. Notifications go to an action group rather than to addresses on
the budget itself: the same group receives the service alerts (:mod:`components.azure.alerts`), so on-call
routing is changed in one place, and every message uses the common alert schema.

A budget only notifies, it never stops spending; the runtime's own token budgets are the hard stop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pulumi
from pulumi_azure_native import consumption, monitor

from components.azure.context import AzureContext
from components.base import Component

# Azure Cost Management rejects budgets starting earlier than this, and allows five notifications.
_EARLIEST_START = date(2017, 6, 1)
_MAX_NOTIFICATIONS = 5
_MAX_THRESHOLD_PERCENT = 1000
_GROUP_SHORT_NAME_LENGTH = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def first_of_current_month() -> date:
    """The first day of the current month in UTC: the earliest start Azure accepts for a new monthly budget."""
    today = datetime.now(UTC).date()
    return today.replace(day=1)


@dataclass(frozen=True)
class BudgetArgs:
    """Settings of the budget and of the action group that receives its notifications.

    ``amount``: the monthly budget, in the billing currency of the subscription.
    ``thresholds`` (default 50, 80, 100): percentages of ``amount`` that notify once *actual* cost
    exceeds them. ``forecast_thresholds`` (default 100): percentages that notify when the month's
    *forecast* exceeds them, which warns days before the actual cost does. Azure allows five
    notifications in total.
    ``contact_emails``: who is told, as email receivers of the action group.
    ``start_date`` (default ``None``): the first day of the month the budget starts. Azure requires a
    first of a month no earlier than the current month for a new budget, so no fixed date can serve as a
    default: a date in the past fails on the next re-creation. ``None`` takes the first of the current
    month (UTC) when the budget is created, and :class:`CostGuard` then ignores the program's value on
    later runs, so the deployed start date never moves and a second ``pulumi up`` changes nothing.
    """

    amount: float
    contact_emails: tuple[str, ...]
    thresholds: tuple[int, ...] = (50, 80, 100)
    forecast_thresholds: tuple[int, ...] = (100,)
    start_date: date | None = None

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError(f"amount must be greater than 0, got {self.amount}")
        if not self.contact_emails:
            raise ValueError(
                "contact_emails must name at least one address: a budget nobody hears of is useless"
            )
        invalid = [email for email in self.contact_emails if not _EMAIL.match(email)]
        if invalid:
            raise ValueError(f"contact_emails has invalid addresses: {', '.join(invalid)}")
        if len(set(self.contact_emails)) != len(self.contact_emails):
            raise ValueError("contact_emails lists an address more than once")
        for label, values in (
            ("thresholds", self.thresholds),
            ("forecast_thresholds", self.forecast_thresholds),
        ):
            out_of_range = [v for v in values if not 0 < v <= _MAX_THRESHOLD_PERCENT]
            if out_of_range:
                raise ValueError(
                    f"{label} are percentages between 1 and {_MAX_THRESHOLD_PERCENT}, got {out_of_range}"
                )
            if len(set(values)) != len(values):
                raise ValueError(f"{label} lists a percentage more than once: {list(values)}")
        count = len(self.thresholds) + len(self.forecast_thresholds)
        if count == 0:
            raise ValueError("a budget needs at least one threshold or forecast threshold")
        if count > _MAX_NOTIFICATIONS:
            raise ValueError(
                f"Azure allows {_MAX_NOTIFICATIONS} budget notifications, thresholds and forecast_thresholds "
                f"ask for {count}"
            )
        if self.start_date is not None:
            if self.start_date.day != 1:
                raise ValueError(
                    f"start_date must be the first day of a month, got {self.start_date.isoformat()}"
                )
            if self.start_date < _EARLIEST_START:
                raise ValueError(
                    f"start_date must be on or after {_EARLIEST_START.isoformat()}, got {self.start_date.isoformat()}"
                )


class CostGuard(Component):
    """An action group and a monthly cost budget on the resource group (``agentstage:azure:CostGuard``).

    Outputs: ``action_group_id`` (hand it to :class:`components.azure.alerts.ServiceAlerts`) and
    ``budget_id``. Deploying needs ``Microsoft.Consumption/budgets/write`` on the resource group, which
    Contributor and Cost Management Contributor include.
    """

    def __init__(
        self,
        name: str,
        context: AzureContext,
        args: BudgetArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("azure", "CostGuard", name, opts)
        naming = context.naming
        action_group = monitor.ActionGroup(
            f"{name}-action-group",
            action_group_name=naming.plain("action_group", name),
            resource_group_name=context.resource_group_name,
            location="Global",  # action groups are global: they must notify when a region is down
            group_short_name=f"{naming.prefix}{naming.environment}"[:_GROUP_SHORT_NAME_LENGTH],
            enabled=True,
            email_receivers=[
                monitor.MicrosoftCommonEmailReceiverArgs(
                    name=f"email-{index}", email_address=email, use_common_alert_schema=True
                )
                for index, email in enumerate(args.contact_emails)
            ],
            tags=dict(context.tags),
            opts=self.child(),
        )
        start = args.start_date or first_of_current_month()
        budget = consumption.Budget(
            f"{name}-budget",
            budget_name=naming.plain("budget", name),
            scope=pulumi.Output.concat(
                "/subscriptions/", context.subscription_id, "/resourceGroups/", context.resource_group_name
            ),
            amount=args.amount,
            category=consumption.CategoryType.COST,
            time_grain=consumption.TimeGrainType.MONTHLY,
            time_period=consumption.BudgetTimePeriodArgs(start_date=f"{start.isoformat()}T00:00:00Z"),
            notifications=_notifications(args, action_group.id),
            # A derived start date is fixed at creation; otherwise each month's run would move it.
            opts=self.child(ignore_changes=["timePeriod"] if args.start_date is None else None),
        )
        self.action_group_id: pulumi.Output[str] = action_group.id
        self.budget_id: pulumi.Output[str] = budget.id
        self.register_outputs({"action_group_id": self.action_group_id, "budget_id": self.budget_id})


def _notifications(
    args: BudgetArgs, action_group_id: pulumi.Input[str]
) -> dict[str, consumption.NotificationArgs]:
    """One notification per threshold, keyed the way the portal names them, all sent to the action group."""
    kinds = (
        (consumption.ThresholdType.ACTUAL, args.thresholds),
        (consumption.ThresholdType.FORECASTED, args.forecast_thresholds),
    )
    return {
        f"{kind.value}_GreaterThan_{percent}_Percent": consumption.NotificationArgs(
            enabled=True,
            operator=consumption.OperatorType.GREATER_THAN,
            threshold=percent,
            threshold_type=kind,
            # The action group carries the addresses; listing them here as well would mail everyone twice.
            contact_emails=[],
            contact_groups=[action_group_id],
        )
        for kind, percents in kinds
        for percent in percents
    }
