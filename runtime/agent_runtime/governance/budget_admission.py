"""A budget that can never admit one call is a configuration error, found at start rather than as a 429
on every request.

Every model call holds at least its agent's instructions, tool schemas and one short user message, plus
the agent's ``max_output_tokens``, priced at its model's price. A budget whose token or cost limit is below
that for an agent it governs refuses every call of that agent, whatever the traffic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence

from agent_runtime.agents import Agent
from agent_runtime.errors import ConfigurationError
from agent_runtime.governance.budget_rules import MICRO, BudgetRule, ModelPrice, limits, prompt_bytes
from agent_runtime.settings_contract import env_name
from agent_runtime.tools import ToolRegistry


def spec_bytes_of(registry: ToolRegistry) -> Callable[[Sequence[str]], int]:
    """The size of the schemas of the tools ``registry`` knows (unknown tools count nothing)."""
    return lambda tools: len(json.dumps(list(registry.specs([t for t in tools if t in registry]))).encode())


def check_admission(
    rules: Sequence[BudgetRule],
    prices: dict[str, ModelPrice],
    agents: Iterable[Agent],
    tool_spec_bytes: Callable[[Sequence[str]], int],
    bytes_per_token: float,
) -> None:
    """:class:`ConfigurationError` naming the first budget that could never admit a call of an agent.

    ``tool_spec_bytes`` sizes the JSON schemas of a list of tools, as the model is sent them.
    """
    for agent in agents:
        spec_bytes = tool_spec_bytes(agent.tools)
        prompt = [{"role": "system", "content": agent.instructions}] if agent.instructions else []
        input_tokens = math.ceil(
            prompt_bytes([*prompt, {"role": "user", "content": "?"}], spec_bytes) / bytes_per_token
        )
        price = prices.get(agent.model)
        least = {
            "tokens": input_tokens + agent.max_output_tokens,
            "cost": price.micro_usd(input_tokens, agent.max_output_tokens) if price else 0,
        }
        for rule in rules:
            if rule.scope == "agent" and rule.match not in ("*", agent.name):
                continue
            for metric, limit in limits(rule).items():
                if metric in least and limit is not None and least[metric] > limit:
                    raise _never_admits(rule, agent, metric, limit, least[metric], input_tokens)


def _never_admits(
    rule: BudgetRule, agent: Agent, metric: str, limit: int, least: int, input_tokens: int
) -> ConfigurationError:
    if metric == "cost":
        amounts = f"${limit / MICRO:g} of cost, but one call of agent '{agent.name}' holds at least ${least / MICRO:g}"
    else:
        amounts = f"{limit:,} tokens, but one call of agent '{agent.name}' holds at least {least:,}"
    return ConfigurationError(
        f"{env_name('budgets')}: budget '{rule.name}' allows {amounts} (~{input_tokens:,} prompt tokens plus "
        f"max_output_tokens {agent.max_output_tokens:,}), so it could never admit a call: raise its limit or "
        "lower the agent's max_output_tokens",
        field=env_name("budgets"),
    )
