"""Fixtures for the runtime ledger rules: a shared ledger per stage, budgets that admit a call."""

from __future__ import annotations

import json
from typing import Any

from rule_cases.base import flip

WEB_APP = "azure-native:web:WebApp"
AGENTS = [{"name": "assistant", "model": "chat", "token_budget": 8000}]


def _app(**settings: Any) -> dict[str, Any]:
    values = {"AGENTSTAGE_AGENTS": json.dumps(AGENTS), **settings}
    return {"siteConfig": {"appSettings": [{"name": name, "value": value} for name, value in values.items()]}}


def _budgets(tokens: int) -> str:
    return json.dumps([{"name": "tenant-daily", "scope": "tenant", "window_seconds": 86400, "tokens": tokens}])


CASES = {
    "AGS-AI-002": flip(
        WEB_APP,
        "app",
        _app(AGENTSTAGE_BUDGET_BACKEND="cosmos"),
        _app(AGENTSTAGE_BUDGET_BACKEND="sqlite"),
    ),
    "AGS-AI-003": flip(
        WEB_APP,
        "app",
        _app(AGENTSTAGE_BUDGETS=_budgets(100_000)),
        _app(AGENTSTAGE_BUDGETS=_budgets(3_000)),  # below one call's hold: the 4,096-token output cap alone
    ),
}
