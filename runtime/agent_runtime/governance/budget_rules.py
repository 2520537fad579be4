"""Budget rules and model prices as configured (``AGENTSTAGE_BUDGETS``, ``AGENTSTAGE_MODEL_PRICES``), and the
sizes reservations are computed from.

Apart from :mod:`.budgets` (which holds and settles calls on a ledger) because ``agentstage plan`` reads
them too: the stack file's budgets and the policy rule that checks every agent fits them are validated
with these models, without the runtime's ledger, memory or settings reader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from agent_runtime.errors import ConfigurationError
from agent_runtime.settings_contract import env_name

T = TypeVar("T")
Metric = Literal["tokens", "requests", "cost"]
MICRO = 1_000_000
MESSAGE_OVERHEAD_BYTES = 16
"""Per message, for the role and the chat format's separators (a few tokens each)."""


class BudgetRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    scope: Literal["tenant", "agent", "caller", "application"]
    match: str = "*"
    window_seconds: int = Field(gt=0)
    tokens: int | None = Field(default=None, gt=0)
    requests: int | None = Field(default=None, gt=0)
    cost_usd: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _limits_something(self) -> BudgetRule:
        if self.tokens is None and self.requests is None and self.cost_usd is None:
            raise ValueError("a budget needs at least one of tokens, requests, cost_usd")
        return self


class ModelPrice(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)

    def micro_usd(self, input_tokens: int, output_tokens: int) -> int:
        """Cost in micro-dollars, rounded up so rounding never lets spending slip under a limit."""
        return math.ceil(input_tokens * self.input + output_tokens * self.output)


_RULES = TypeAdapter(list[BudgetRule])
_PRICES = TypeAdapter(dict[str, ModelPrice])


def limits(rule: BudgetRule) -> dict[Metric, int | None]:
    """A rule's limits in ledger units: tokens, requests, micro-dollars."""
    return {
        "tokens": rule.tokens,
        "requests": rule.requests,
        "cost": round(rule.cost_usd * MICRO) if rule.cost_usd is not None else None,
    }


def prompt_bytes(prompt: Sequence[dict[str, Any]], spec_bytes: int) -> int:
    """An upper bound of a prompt's size in bytes: contents, tool calls and the tool schemas (``spec_bytes``)."""
    total = spec_bytes
    for message in prompt:
        content = message.get("content")
        total += MESSAGE_OVERHEAD_BYTES + (
            len(content.encode()) if isinstance(content, str) else len(json.dumps(content).encode())
        )
        if "tool_calls" in message:
            total += len(json.dumps(message["tool_calls"]).encode())
    return total


def parse_rules(raw: str) -> list[BudgetRule]:
    rules = _parse(_RULES, raw, "budgets")
    names = [rule.name for rule in rules]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise ConfigurationError(f"{env_name('budgets')}: budget '{duplicate}' is defined twice")
    return rules


def parse_prices(raw: str) -> dict[str, ModelPrice]:
    return _parse(_PRICES, raw, "model_prices")


def _parse(adapter: TypeAdapter[T], raw: str, field: str) -> T:
    try:
        return adapter.validate_python(json.loads(raw))
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{env_name(field)} is not valid JSON (at position {error.pos})") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigurationError(f"{env_name(field)}: '{where}': {first['msg']}") from None
