"""The runtime's budget ledger, as deployed: one per stage that every instance shares, and budgets that can
admit a call.

Both rules read what each workload will run with (its AGENTSTAGE_* settings) and judge it with the
runtime's own code: budgets parsed by the runtime's parser, calls held as the runtime holds them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from agent_runtime.agents import Agent, parse_definitions
from agent_runtime.errors import ConfigurationError
from agent_runtime.governance.budget_admission import check_admission, spec_bytes_of
from agent_runtime.governance.budget_rules import BudgetRule, ModelPrice, parse_prices, parse_rules
from agent_runtime.settings_contract import SettingsContract, env_name
from agent_runtime.tools import ToolRegistry
from agent_runtime.tools.builtins import builtin_tools
from core.graph import Resource, ResourceGraph
from core.workloads import SETTING_HOLDERS
from policies.findings import Severity
from policies.rules.context import StackContext
from policies.rules.model import Rule, Verdict, failed, passed
from policies.rules.predicates import runs_agents, setting_values, shown

AGENTS_SETTING = env_name("agents")
BACKEND_SETTING = env_name("budget_backend")
BUDGETS_SETTING = env_name("budgets")
SHARED_LEDGERS = ("redis", "cosmos", "dynamodb")
"""Ledger backends every instance and process of a stage reaches (``sqlite`` is one file per instance)."""
_AGENT_DEFAULTS = ("default_model", "default_token_budget", "max_steps", "max_output_tokens")


def _declares_budgets(resource: Resource) -> bool:
    return BUDGETS_SETTING in setting_values(resource)


def _shared_ledger(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    backend = setting_values(resource).get(BACKEND_SETTING)
    if backend in SHARED_LEDGERS:
        return passed(f"{BACKEND_SETTING} is {backend}: one ledger for every instance of the stage")
    return failed(
        f"{BACKEND_SETTING} is {shown(backend)}: each instance keeps its own SQLite ledger, so every instance "
        "the platform scales out grants the budgets again, and a retried side-effecting tool call that lands "
        "on another instance runs twice"
    )


@functools.cache
def _builtin_spec_bytes() -> Callable[[Sequence[str]], int]:
    """Sizes of the built-in tools' schemas, as the runtime sends them: the same for every workload."""
    return spec_bytes_of(ToolRegistry(builtin_tools()))


def _budgets_admit(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    values = setting_values(resource)
    defaults = {
        field: values[env_name(field)]
        for field in _AGENT_DEFAULTS
        if isinstance(values.get(env_name(field)), str)
    }
    try:
        # model_construct: the runtime's defaults and these values, without reading this process's environment
        runtime = SettingsContract.model_construct(**_ints(defaults))
        rules: list[BudgetRule] = parse_rules(_text(values, BUDGETS_SETTING))
        prices: dict[str, ModelPrice] = parse_prices(_text(values, env_name("model_prices"), "{}"))
        agents: list[Agent] = parse_definitions(_text(values, AGENTS_SETTING), runtime)
        ratio = float(values.get(env_name("budget_prompt_bytes_per_token")) or 1.0)
        check_admission(rules, prices, agents, _builtin_spec_bytes(), ratio)
    except ConfigurationError as error:
        return failed(error.message)
    return passed(f"each of its {len(rules)} budgets admits a call of each of its {len(agents)} agents")


def _text(values: dict[str, Any], name: str, default: str = "[]") -> str:
    value = values.get(name, default)
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} is {shown(value)}, not reviewable JSON")
    return value


def _ints(values: dict[str, str]) -> dict[str, Any]:
    return {name: int(value) if value.isdigit() else value for name, value in values.items()}


RULES = (
    Rule(
        id="AGS-AI-002",
        title="Every agent runtime shares one budget ledger per stage",
        severity=Severity.HIGH,
        rationale=(
            "Serverless and container platforms run as many instances as traffic needs. With a ledger per "
            "instance each instance grants a tenant's or caller's full budget again (N instances, N times the "
            "budget), and the idempotency record of a side-effecting tool call lives on the instance that ran it, "
            "so a retry that lands elsewhere repeats the action."
        ),
        remediation=(
            f"Set {BACKEND_SETTING} to a ledger the whole stage shares: cosmos (the stage's Cosmos DB account; "
            "the Azure blueprints set it), dynamodb (with AGENTSTAGE_DYNAMODB_LEDGER_TABLE; the AWS blueprint "
            "sets it) or redis (with AGENTSTAGE_REDIS_URL; on a bring-your-own cluster, "
            "`agentstage:runtimeSettings.budget_backend: redis`)."
        ),
        types=SETTING_HOLDERS,
        check=_shared_ledger,
        applies=runs_agents,
        reference="https://genai.owasp.org/llmrisk/llm102025-unbounded-consumption/",
    ),
    Rule(
        id="AGS-AI-003",
        title="Every runtime budget can admit at least one call",
        severity=Severity.HIGH,
        rationale=(
            "Each model call holds its worst case (the agent's instructions, tool schemas and output cap) before "
            "it runs; a budget smaller than that refuses every call of the agents it governs, whatever the "
            "traffic, and the runtime refuses to start with it."
        ),
        remediation=(
            "Raise the budget's limit in `agentstage:runtimeBudgets`, or lower the agents' `maxOutputTokens`."
        ),
        types=SETTING_HOLDERS,
        check=_budgets_admit,
        applies=_declares_budgets,
        reference="https://genai.owasp.org/llmrisk/llm102025-unbounded-consumption/",
    ),
)
