"""Budgets and quotas per tenant, agent, caller and application: tokens, requests and cost per window.

``AGENTSTAGE_BUDGETS`` is a JSON list of rules::

    [{"name": "tenant-daily", "scope": "tenant", "match": "*", "window_seconds": 86400,
      "tokens": 2000000, "requests": 5000, "cost_usd": 20},
     {"name": "bob-minute", "scope": "caller", "match": "bob", "window_seconds": 60, "requests": 10}]

``match`` is one tenant / agent / caller / application id, or ``"*"`` for a counter of its own per id (a
caller's counters are its own in its tenant: ``"match": "bob"`` limits each tenant's ``bob`` apart). An
application is the client that obtained the caller's credentials (:attr:`Caller.application`: a JWT's
``azp``, ``client_id`` or ``appid``), so ``{"scope": "application", "window_seconds": 60, "tokens": ...}`` is
the tokens-per-minute limit per calling application that the Azure gateway enforces in its token-limit
policy, for stages whose gateway has none (AWS). The runtime's own work (knowledge ingestion, in
:data:`~agent_runtime.caller.SYSTEM_TENANT`) is counted against agent rules only, never a tenant's.

Every model call *holds* its worst case before it is sent: tokens as an upper bound (prompt bytes /
``budget_prompt_bytes_per_token`` plus the agent's ``max_output_tokens``, which the model is told as its
cap), cost priced from ``AGENTSTAGE_MODEL_PRICES`` (integer micro-dollars, rounded up), and one request on
the run's first call. After the call the hold is settled to the actual usage (a call that failed before
the model answered spends no tokens and no cost; the request stays counted). A call whose usage is not
known spends its whole hold: a stream cut after the model began answering, a caller who left before the
end, an endpoint that reports no usage. All lines of all matching rules are held in one atomic ledger
step, so concurrent requests never overspend. An HTTP request's settlements are written after its answer
is sent (:mod:`agent_runtime.answer_first`): until then the hold stands in for the call.

A call without room is refused (429) only when the budget is really spent: its settled usage plus what
the call needs passes the limit (``"reason": "exhausted"``). When calls in flight merely hold the room, it
waits for them to settle, in arrival order among its process's calls (:mod:`.budget_queue`), up to
``budget_wait_seconds`` and the request's deadline; only then is it refused with ``"reason": "held"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal, Protocol

from agent_runtime.answer_first import AfterAnswer, do_kept_work
from agent_runtime.caller import SYSTEM_TENANT, Caller
from agent_runtime.errors import QuotaExceeded
from agent_runtime.governance.budget_queue import HeldQueue
from agent_runtime.governance.budget_rules import (
    MICRO,
    BudgetRule,
    Metric,
    ModelPrice,
    limits,
    parse_prices,
    parse_rules,
)
from agent_runtime.governance.ledger import Ledger, Line, Refusal
from agent_runtime.trace import TokenUsage

if TYPE_CHECKING:
    from agent_runtime.settings import Settings

log = logging.getLogger("agentstage.budgets")
Reason = Literal["exhausted", "held"]
FIRST_POLL_SECONDS, LONGEST_POLL_SECONDS = 0.005, 0.2
"""How often a waiting call looks again for settlements of other processes (doubling in between)."""
HOLD_LEASE_MARGIN_SECONDS = 60.0
"""A hold outlives its request's deadline by this much before it is presumed dead and counted as spent."""


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

    hold: str
    counters: tuple[_Counter, ...]
    model: str
    pressure: float


class BudgetMeter(Protocol):
    """Where budgets report what they do (the runtime's telemetry; amounts in tokens, requests or
    micro-dollars)."""

    def budget_reserved(self, budget: str, metric: str, amount: int) -> None: ...

    def budget_settled(self, budget: str, metric: str, amount: int) -> None: ...

    def budget_refused(self, budget: str, metric: str, reason: Reason) -> None: ...

    def budget_waited(self, budget: str, seconds: float) -> None: ...


class Budgets:
    """Holds and settles model calls against the configured budgets on a :class:`Ledger`."""

    def __init__(
        self,
        rules: Sequence[BudgetRule],
        prices: dict[str, ModelPrice],
        ledger: Ledger,
        meter: BudgetMeter,
        *,
        bytes_per_token: float,
        wait_seconds: float,
        lease_seconds: float,
    ) -> None:
        self._rules = tuple(rules)
        self._prices = prices
        self._ledger = ledger
        self._meter = meter
        self._bytes_per_token = bytes_per_token
        self._wait_seconds = wait_seconds
        self._lease_seconds = lease_seconds
        self._queue = HeldQueue()
        self._settlements = AfterAnswer(
            log,
            "a budget settlement failed after its answer was sent; the hold counts as spent until its lease ends",
        )

    @classmethod
    def from_settings(cls, settings: Settings, ledger: Ledger, meter: BudgetMeter) -> Budgets:
        return cls(
            parse_rules(settings.budgets),
            parse_prices(settings.model_prices),
            ledger,
            meter,
            bytes_per_token=settings.budget_prompt_bytes_per_token,
            wait_seconds=settings.budget_wait_seconds,
            lease_seconds=settings.deadline_seconds + HOLD_LEASE_MARGIN_SECONDS,
        )

    @property
    def active(self) -> bool:
        return bool(self._rules)

    def price(self, model: str) -> ModelPrice | None:
        return self._prices.get(model)

    def tokens_in(self, prompt_bytes: int) -> int:
        """The input tokens a reservation counts for ``prompt_bytes`` (an over-estimate, as reservations are)."""
        return math.ceil(prompt_bytes / self._bytes_per_token)

    async def reserve(
        self,
        *,
        caller: Caller,
        agent: str,
        model: str,
        prompt_bytes: int,
        output_tokens: int,
        first_call: bool,
        deadline: float,
    ) -> Reservation:
        """Hold the worst case of one model call: at once when there is room, after waiting when calls in
        flight hold it; else :class:`QuotaExceeded` naming the budget and why."""
        # The request's own settlements kept for after its answer land first: it must not wait for itself.
        await do_kept_work()
        input_tokens = self.tokens_in(prompt_bytes)
        amounts: dict[Metric, int] = {
            "tokens": input_tokens + output_tokens,
            "requests": 1 if first_call else 0,
            "cost": self._cost(model, input_tokens, output_tokens),
        }
        counters = self._counters(caller, agent, amounts, time.time())
        if not counters:
            return Reservation("", (), model, 0.0)
        hold = os.urandom(16).hex()
        waiting_on = self._queue.waiting_on(counter.line.key for counter in counters)
        if waiting_on is None:
            result = await self._ledger.reserve(
                hold, [counter.line for counter in counters], self._lease_seconds
            )
            if not isinstance(result, Refusal):
                return self._held(hold, counters, model, result)
            waiting_on = self._exhausted_or_held(counters, result)
        return await self._wait(waiting_on, hold, counters, model, deadline)

    async def settle(self, reservation: Reservation, usage: TokenUsage | None) -> None:
        """End the hold with what the call really spent (requests stay as held); with ``None`` (what it
        spent is not known) the hold itself is spent: the worst case the call reserved. In a request that
        answers first, the ledger is written once the answer is sent (:mod:`agent_runtime.answer_first`)."""
        if not reservation.counters:
            return
        actual: dict[Metric, int] = (
            {
                "tokens": usage.total_tokens,
                "cost": self._cost(reservation.model, usage.prompt_tokens, usage.completion_tokens),
            }
            if usage is not None
            else {}
        )
        spent = [
            (counter.line.key, actual.get(counter.metric, counter.line.amount))
            for counter in reservation.counters
        ]
        await self._settlements.run(partial(self._settle, reservation, spent))

    async def _settle(self, reservation: Reservation, spent: list[tuple[str, int]]) -> None:
        await self._ledger.settle(reservation.hold, spent)
        self._queue.settled(key for key, _ in spent)
        for counter, (_, amount) in zip(reservation.counters, spent, strict=True):
            self._meter.budget_settled(counter.rule.name, counter.metric, amount)

    async def _wait(
        self, key: str, hold: str, counters: list[_Counter], model: str, deadline: float
    ) -> Reservation:
        """Queue on ``key`` until the hold fits, the budget turns out spent, or the wait is over."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        lines = [counter.line for counter in counters]
        last: tuple[_Counter, Refusal] | None = None
        try:
            async with asyncio.timeout_at(min(deadline, started + self._wait_seconds)):
                async with self._queue.turn(key) as waiter:
                    pause = FIRST_POLL_SECONDS
                    while True:
                        result = await self._ledger.reserve(hold, lines, self._lease_seconds)
                        if not isinstance(result, Refusal):
                            self._meter.budget_waited(_budget_of(counters, key), loop.time() - started)
                            return self._held(hold, counters, model, result)
                        self._exhausted_or_held(counters, result)
                        last = (counters[result.index], result)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(waiter.wake.wait(), pause)
                        waiter.wake.clear()
                        pause = min(pause * 2, LONGEST_POLL_SECONDS)
        except TimeoutError:
            counter, refusal = last or await self._refusal_of(counters, key)
            self._meter.budget_refused(counter.rule.name, counter.metric, "held")
            raise self._refused(counter, refusal, "held") from None

    def _exhausted_or_held(self, counters: list[_Counter], refusal: Refusal) -> str:
        """Raise when the budget is spent whatever calls in flight settle to; else the counter to wait on."""
        counter = counters[refusal.index]
        if refusal.settled + counter.line.amount > counter.line.limit:
            self._meter.budget_refused(counter.rule.name, counter.metric, "exhausted")
            raise self._refused(counter, refusal, "exhausted")
        return counter.line.key

    def _held(self, hold: str, counters: list[_Counter], model: str, totals: list[int]) -> Reservation:
        for counter in counters:
            self._meter.budget_reserved(counter.rule.name, counter.metric, counter.line.amount)
        pressure = max(total / counter.line.limit for total, counter in zip(totals, counters, strict=True))
        return Reservation(hold, tuple(counters), model, pressure)

    async def _refusal_of(self, counters: list[_Counter], key: str) -> tuple[_Counter, Refusal]:
        """The counter a call waited on, as the ledger has it now (the wait ended before any attempt)."""
        index = next(i for i, counter in enumerate(counters) if counter.line.key == key)
        [usage] = await self._ledger.usage([key])
        return counters[index], Refusal(index, usage.settled, usage.held)

    def _cost(self, model: str, input_tokens: int, output_tokens: int) -> int:
        price = self._prices.get(model)
        return price.micro_usd(input_tokens, output_tokens) if price else 0

    def _counters(self, caller: Caller, agent: str, amounts: dict[Metric, int], now: float) -> list[_Counter]:
        subjects = {
            "tenant": caller.tenant,
            "agent": agent,
            "caller": caller.id,
            "application": caller.application,
        }
        own_work = caller.tenant == SYSTEM_TENANT
        counters: list[_Counter] = []
        for rule in self._rules:
            subject = subjects[rule.scope]
            if rule.match not in ("*", subject) or (own_work and rule.scope != "agent"):
                continue
            # A caller is counted in its tenant: a same-named caller of another tenant is someone else.
            counted = json.dumps([caller.tenant, subject]) if rule.scope == "caller" else subject
            start = now // rule.window_seconds * rule.window_seconds
            end = start + rule.window_seconds
            for metric, limit in limits(rule).items():
                if limit is None or (metric == "requests" and not amounts["requests"]):
                    continue
                key = f"{rule.name}|{rule.scope}:{counted}|{metric}|{int(start)}"
                counters.append(_Counter(rule, subject, metric, Line(key, limit, amounts[metric], end)))
        return counters

    @staticmethod
    def _refused(counter: _Counter, refusal: Refusal, reason: Reason) -> QuotaExceeded:
        scale = MICRO if counter.metric == "cost" else 1
        return QuotaExceeded(
            budget=counter.rule.name,
            scope=counter.rule.scope,
            subject=counter.subject,
            metric="cost_usd" if counter.metric == "cost" else counter.metric,
            limit=counter.line.limit / scale,
            remaining=max(0, counter.line.limit - refusal.settled - refusal.held) / scale,
            held=refusal.held / scale,
            needed=counter.line.amount / scale,
            reason=reason,
            reset=max(0.0, counter.line.expires_at - time.time()),
        )


def _budget_of(counters: list[_Counter], key: str) -> str:
    return next(counter.rule.name for counter in counters if counter.line.key == key)
