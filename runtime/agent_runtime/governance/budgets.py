"""Budgets and quotas per tenant, agent and caller: tokens, requests and cost per fixed window.

``AGENTSTAGE_BUDGETS`` is a JSON list of rules::

    [{"name": "tenant-daily", "scope": "tenant", "match": "*", "window_seconds": 86400,
      "tokens": 2000000, "requests": 5000, "cost_usd": 20},
     {"name": "bob-minute", "scope": "caller", "match": "bob", "window_seconds": 60, "requests": 10}]

``match`` is one tenant / agent / caller id, or ``"*"`` for a counter of its own per id. Every model call
reserves before it is sent: tokens as an upper bound (prompt bytes / ``budget_prompt_bytes_per_token`` plus
``max_output_tokens``, which the model is told as its cap), cost priced from ``AGENTSTAGE_MODEL_PRICES``
(integer micro-dollars, rounded up), and one request on the run's first call. After the call the reservation
is settled to the actual usage (a failed call refunds its tokens and cost; the request stays counted). All
lines of all matching rules are reserved in one atomic ledger step, so concurrent requests never overspend.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from agent_runtime.caller import Caller
from agent_runtime.errors import ConfigurationError, QuotaExceeded
from agent_runtime.governance.ledger import Ledger, Line, Refusal
from agent_runtime.settings import Settings, env_name
from agent_runtime.trace import TokenUsage

T = TypeVar("T")
Metric = Literal["tokens", "requests", "cost"]
MICRO = 1_000_000


class BudgetRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    scope: Literal["tenant", "agent", "caller"]
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


@dataclass(frozen=True)
class _Counter:
    rule: BudgetRule
    subject: str
    metric: Metric
    line: Line


@dataclass(frozen=True)
class Reservation:
    """What one model call holds on the ledger, settled after the call; ``pressure`` is the highest
    fraction of any limit now in use (1.0 = at the limit), which model routing may act on."""

    counters: tuple[_Counter, ...]
    model: str
    pressure: float


class Budgets:
    """Reserves and settles model calls against the configured budgets on a :class:`Ledger`."""

    def __init__(
        self,
        rules: Sequence[BudgetRule],
        prices: dict[str, ModelPrice],
        ledger: Ledger,
        *,
        max_output_tokens: int,
        bytes_per_token: float,
    ) -> None:
        self._rules = tuple(rules)
        self._prices = prices
        self._ledger = ledger
        self._max_output = max_output_tokens
        self._bytes_per_token = bytes_per_token

    @classmethod
    def from_settings(cls, settings: Settings, ledger: Ledger) -> Budgets:
        return cls(
            parse_rules(settings.budgets),
            parse_prices(settings.model_prices),
            ledger,
            max_output_tokens=settings.max_output_tokens,
            bytes_per_token=settings.budget_prompt_bytes_per_token,
        )

    @property
    def active(self) -> bool:
        return bool(self._rules)

    def price(self, model: str) -> ModelPrice | None:
        return self._prices.get(model)

    async def reserve(
        self, *, caller: Caller, agent: str, model: str, prompt_bytes: int, first_call: bool
    ) -> Reservation:
        """Hold the worst case of one model call, or raise :class:`QuotaExceeded` naming the budget."""
        input_tokens = math.ceil(prompt_bytes / self._bytes_per_token)
        amounts: dict[Metric, int] = {
            "tokens": input_tokens + self._max_output,
            "requests": 1 if first_call else 0,
            "cost": self._cost(model, input_tokens, self._max_output),
        }
        counters = self._counters(caller, agent, amounts, time.time())
        if not counters:
            return Reservation((), model, 0.0)
        result = await self._ledger.reserve([counter.line for counter in counters])
        if isinstance(result, Refusal):
            raise self._refused(counters[result.index], result.spent)
        pressure = max(total / counter.line.limit for total, counter in zip(result, counters, strict=True))
        return Reservation(tuple(counters), model, pressure)

    async def settle(self, reservation: Reservation, usage: TokenUsage) -> None:
        """Replace the reserved tokens and cost with what the call really spent."""
        actual: dict[Metric, int] = {
            "tokens": usage.total_tokens,
            "cost": self._cost(reservation.model, usage.prompt_tokens, usage.completion_tokens),
        }
        deltas = [
            (counter.line.key, actual[counter.metric] - counter.line.amount)
            for counter in reservation.counters
            if counter.metric in actual and actual[counter.metric] != counter.line.amount
        ]
        if deltas:
            await self._ledger.adjust(deltas)

    def _cost(self, model: str, input_tokens: int, output_tokens: int) -> int:
        price = self._prices.get(model)
        return price.micro_usd(input_tokens, output_tokens) if price else 0

    def _counters(self, caller: Caller, agent: str, amounts: dict[Metric, int], now: float) -> list[_Counter]:
        subjects = {"tenant": caller.tenant, "agent": agent, "caller": caller.id}
        counters: list[_Counter] = []
        for rule in self._rules:
            subject = subjects[rule.scope]
            if rule.match not in ("*", subject):
                continue
            start = now // rule.window_seconds * rule.window_seconds
            end = start + rule.window_seconds
            limits: dict[Metric, int | None] = {
                "tokens": rule.tokens,
                "requests": rule.requests,
                "cost": round(rule.cost_usd * MICRO) if rule.cost_usd is not None else None,
            }
            for metric, limit in limits.items():
                if limit is None or (metric == "requests" and not amounts["requests"]):
                    continue
                key = f"{rule.name}|{rule.scope}:{subject}|{metric}|{int(start)}"
                counters.append(_Counter(rule, subject, metric, Line(key, limit, amounts[metric], end)))
        return counters

    @staticmethod
    def _refused(counter: _Counter, spent: int) -> QuotaExceeded:
        scale = MICRO if counter.metric == "cost" else 1
        return QuotaExceeded(
            budget=counter.rule.name,
            scope=counter.rule.scope,
            subject=counter.subject,
            metric="cost_usd" if counter.metric == "cost" else counter.metric,
            limit=counter.line.limit / scale,
            remaining=max(0, counter.line.limit - spent) / scale,
            reset=max(0.0, counter.line.expires_at - time.time()),
        )


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
