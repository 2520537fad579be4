"""Runtime budgets in the stack file: ``scope: application`` (the tokens-per-minute limit per calling app
that the AWS stage's gateway cannot enforce) reaches the runtime as written; a wrong scope names them all."""

from __future__ import annotations

import json

from agent_runtime.governance.budget_rules import parse_rules
from blueprints.topology import runtime_budgets
from core.config import parse_stack_config
from tests.blueprints.test_config import SOURCE, error_for, valid_config
from tests.blueprints.test_config_aws import aws

PER_APPLICATION = {"name": "app-minute", "scope": "application", "windowSeconds": 60, "tokens": 50_000}


def test_an_application_budget_reaches_the_runtime_as_the_stack_file_writes_it() -> None:
    config = parse_stack_config(aws(runtimeBudgets=[PER_APPLICATION]), SOURCE)

    setting = runtime_budgets(config)["budgets"]
    assert json.loads(setting) == [
        {"name": "app-minute", "scope": "application", "match": "*", "window_seconds": 60, "tokens": 50_000}
    ]
    [rule] = parse_rules(setting)
    assert (rule.scope, rule.match, rule.window_seconds, rule.tokens) == ("application", "*", 60, 50_000)


def test_an_application_budget_may_name_one_application() -> None:
    budget = {**PER_APPLICATION, "match": "3k9q1example0client0id"}
    [rule] = parse_stack_config(valid_config(runtimeBudgets=[budget]), SOURCE).runtime_budgets
    assert (rule.scope, rule.match) == ("application", "3k9q1example0client0id")


def test_an_unknown_scope_names_every_scope_a_budget_may_count_on() -> None:
    message = error_for(aws(runtimeBudgets=[{**PER_APPLICATION, "scope": "app"}]))
    assert message == (
        f"{SOURCE}: agentstage:runtimeBudgets[0].scope: Input should be 'tenant', 'agent', 'caller' or "
        "'application' (got 'app')"
    )
