"""Fixtures for cost rules."""

from __future__ import annotations

from core.graph import Resource
from policies.rules import Stage
from rule_cases.base import STACK, Case, flip, res

BUDGET = "azure-native:consumption:Budget"
DEPLOYMENT = "azure-native:cognitiveservices:Deployment"
NOTIFICATION = {
    "enabled": True,
    "operator": "GreaterThan",
    "threshold": 80,
    "contactEmails": ["platform@example.com"],
}


def _budget(**notification: object) -> dict:
    return {
        "amount": 500,
        "timeGrain": "Monthly",
        "category": "Cost",
        "notifications": {"actual80": {**NOTIFICATION, **notification}},
    }


def _gateway() -> Resource:
    return res(
        "azure-native:apimanagement:ApiManagementService",
        "gateway",
        {"location": "swedencentral", "sku": {"name": "StandardV2", "capacity": 2}},
    )


CASES = {
    "AGS-AZ-050": Case(
        target=STACK,
        passing=lambda: [res(BUDGET, "budget", _budget())],
        failing=lambda: [res("azure-native:resources:ResourceGroup", "rg", {"location": "swedencentral"})],
        stage=Stage.ENTERPRISE,
    ),
    "AGS-AZ-051": Case(
        target="budget",
        passing=lambda: [res(BUDGET, "budget", _budget())],
        failing=lambda: [res(BUDGET, "budget", _budget(contactEmails=[]))],
    ),
    # Two Standard v2 gateway units are 1,400 USD a month idle: within 2,000, over 1,000.
    "AGS-AZ-055": Case(
        target="budget",
        passing=lambda: [res(BUDGET, "budget", {**_budget(), "amount": 2000}), _gateway()],
        failing=lambda: [res(BUDGET, "budget", {**_budget(), "amount": 1000}), _gateway()],
    ),
    "AGS-AZ-052": flip(
        DEPLOYMENT, "chat", {"sku": {"name": "GlobalStandard", "capacity": 100}}, {"sku": {"capacity": 101}}
    ),
    "AGS-AZ-053": flip(
        "azure-native:search:Service", "search", {"sku": {"name": "basic"}}, {"sku": {"name": "free"}}
    ),
    "AGS-AZ-054": flip(
        "azure-native:keyvault:Vault",
        "vault",
        {"location": "swedencentral", "tags": {"owner": "platform-team", "costCenter": "4711"}},
        {"tags": {"costCenter": None}},
    ),
}
