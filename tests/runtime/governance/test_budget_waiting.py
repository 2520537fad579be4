"""No false 429s: calls wait while calls in flight hold a budget, and only a budget really spent refuses.

The operator's report, replayed: a caller budget of 30,000 tokens, 400 chat calls 100 at a time, a model
that reports 17 tokens per call. Every call holds ~4,100 tokens (its cap) while it runs, so seven calls
in flight held the whole budget and the rest were refused with 17 % of it spent. Now they wait their turn.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from otel_helpers import Otel
from runtime_helpers import USER_KEY, Runtime, RuntimeFactory
from settling import once_settled

from agent_runtime.api import create_app
from agent_runtime.errors import ConfigurationError
from agent_runtime.settings import Settings
from agent_runtime.testing import Rule, Script, ScriptedModelServer

REPLY = " ".join(["word"] * 15)
"""With the prompt "hi" (2 tokens by the scripted model's count), every call reports 17 tokens."""
AGENTS = [{"name": "spender"}, {"name": "capped", "max_output_tokens": 64}]


@pytest.fixture(scope="module")
def seventeen() -> Iterator[ScriptedModelServer]:
    rules = [Rule(pattern=r"^slow$", reply=REPLY, delay=0.3), Rule(pattern=r"^hi$", reply=REPLY)]
    with ScriptedModelServer(Script(rules)) as server:
        yield server


def _runtime(
    factory: RuntimeFactory,
    model: ScriptedModelServer,
    backend: str,
    budgets: list[dict[str, Any]],
    **more: Any,
) -> Runtime:
    overrides: dict[str, Any] = {
        "llm_endpoint": model.base_url,
        "agents": json.dumps(AGENTS),
        "deadline_seconds": 60,
    }
    if backend == "redis":
        overrides |= {"budget_backend": "redis", "redis_url": more.pop("redis_url")}
    if backend == "dynamodb":
        overrides |= {
            "budget_backend": "dynamodb",
            "dynamodb_ledger_table": more.pop("dynamodb_ledger_table"),
        }
    return factory(budgets=json.dumps(budgets), **overrides | more)


def _budget(name: str, **limits: int) -> dict[str, Any]:
    return {"name": name, "scope": "caller", "match": "*", "window_seconds": 3600, **limits}


async def _calls(
    runtime: Runtime, total: int, concurrent: int, agent: str, text: str = "hi"
) -> list[httpx.Response]:
    gate = asyncio.Semaphore(concurrent)
    limits = httpx.Limits(max_connections=concurrent, max_keepalive_connections=concurrent)
    async with httpx.AsyncClient(base_url=runtime.url, timeout=120, limits=limits) as client:

        async def call() -> httpx.Response:
            async with gate:
                return await client.post(
                    "/v1/chat/completions",
                    json={"model": agent, "messages": [{"role": "user", "content": text}]},
                    headers={"Authorization": f"Bearer {USER_KEY}"},
                )

        return await asyncio.gather(*(call() for _ in range(total)))


def _redis_url(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    if backend == "dynamodb":  # a fresh table on the session's moto server
        return {"dynamodb_ledger_table": request.getfixturevalue("dynamodb").create("ledger")}
    if backend != "redis":
        return {}
    import redis

    url = request.getfixturevalue("redis_url")
    redis.Redis.from_url(url).flushdb()
    return {"redis_url": url}


@pytest.mark.parametrize("backend", ["sqlite", "redis", "dynamodb"])
def test_calls_wait_for_calls_in_flight_instead_of_a_false_429(
    backend: str,
    runtime_factory: RuntimeFactory,
    seventeen: ScriptedModelServer,
    request: pytest.FixtureRequest,
) -> None:
    budgets = [_budget("caller-hourly", tokens=30_000)]
    runtime = _runtime(runtime_factory, seventeen, backend, budgets, **_redis_url(backend, request))
    responses = asyncio.run(_calls(runtime, 400, 100, "spender"))

    assert Counter(r.status_code for r in responses) == {200: 400}, [
        r.text for r in responses if r.status_code != 200
    ][:2]
    assert sum(r.json()["usage"]["total_tokens"] for r in responses) == 6_800


@pytest.mark.parametrize("backend", ["sqlite", "redis", "dynamodb"])
def test_a_spent_budget_refuses_as_exhausted_and_is_never_overspent(
    backend: str,
    runtime_factory: RuntimeFactory,
    seventeen: ScriptedModelServer,
    request: pytest.FixtureRequest,
    otel: Otel,
) -> None:
    budgets = [_budget("caller-small", tokens=2_000)]
    runtime = _runtime(
        runtime_factory,
        seventeen,
        backend,
        budgets,
        max_output_tokens=64,
        # A call may wait as long as its deadline: on a machine loaded enough to stretch the 400 calls past
        # the default 30 s of waiting, a call would be refused as "held", which this test is not about.
        budget_wait_seconds=60,
        app_options=otel.app_options,
        **_redis_url(backend, request),
    )
    responses = asyncio.run(_calls(runtime, 400, 100, "spender"))

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == 400, "no 5xx"
    spent = 17 * len(ok)
    assert spent <= 2_000, "never overspent"
    assert spent + max(r.json()["error"]["budget"]["needed"] for r in refused) > 2_000, (
        "refused only when spent"
    )
    assert {r.json()["error"]["budget"]["reason"] for r in refused} == {"exhausted"}
    assert all(
        int(r.headers["Retry-After"]) == max(1, r.json()["error"]["budget"]["reset_seconds"]) for r in refused
    ), "an exhausted budget is retried when its window resets"

    refusals = [
        p
        for p in otel.metric_points("agentstage.budget.refused")
        if p.attributes["agentstage.budget.reason"] == "exhausted"
    ]
    assert sum(p.value for p in refusals) == len(refused)
    settled_tokens = once_settled(
        lambda: sum(
            p.value
            for p in otel.metric_points("agentstage.budget.settled")
            if p.attributes["agentstage.budget.metric"] == "tokens"
        ),
        lambda tokens: tokens == spent,
    )
    assert settled_tokens == spent, "every settlement counted once it landed (after its answer)"


def test_a_call_that_may_not_wait_is_refused_as_held_with_a_short_retry(
    runtime_factory: RuntimeFactory, seventeen: ScriptedModelServer, otel: Otel
) -> None:
    """With no time to wait, the refusal says the budget was held by calls in flight, not spent."""
    budgets = [_budget("one-at-a-time", tokens=6_000)]  # one call holds ~4,100 of it
    runtime = _runtime(
        runtime_factory, seventeen, "sqlite", budgets, budget_wait_seconds=0, app_options=otel.app_options
    )
    first, second = asyncio.run(_staggered(runtime, ["slow", "hi"], gap=0.1))

    assert first.status_code == 200
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    budget = second.json()["error"]["budget"]
    assert (budget["reason"], budget["remaining"]) == ("held", 6_000 - budget["held"])
    assert "held by calls in flight" in second.json()["error"]["message"]
    [point] = otel.metric_points("agentstage.budget.refused")
    assert point.attributes["agentstage.budget.reason"] == "held"


def test_waiting_calls_are_served_in_the_order_they_came(
    runtime_factory: RuntimeFactory, seventeen: ScriptedModelServer, otel: Otel
) -> None:
    budgets = [_budget("one-at-a-time", tokens=6_000)]
    runtime = _runtime(runtime_factory, seventeen, "sqlite", budgets, app_options=otel.app_options)
    responses = asyncio.run(_staggered(runtime, ["slow"] * 4, gap=0.05, finished_order=True))

    assert [order for order, _ in responses] == [0, 1, 2, 3]
    assert all(response.status_code == 200 for _, response in responses)
    waits = otel.metric_points("agentstage.budget.wait.duration")
    assert sum(p.count for p in waits) == 3, "every call but the first waited"


async def _staggered(
    runtime: Runtime, texts: list[str], gap: float, finished_order: bool = False
) -> list[Any]:
    """One call per text, each ``gap`` seconds after the previous; in finishing order when asked."""
    finished: list[tuple[int, httpx.Response]] = []
    async with httpx.AsyncClient(base_url=runtime.url, timeout=60) as client:

        async def call(index: int, text: str) -> httpx.Response:
            await asyncio.sleep(index * gap)
            response = await client.post(
                "/v1/chat/completions",
                json={"model": "spender", "messages": [{"role": "user", "content": text}]},
                headers={"Authorization": f"Bearer {USER_KEY}"},
            )
            finished.append((index, response))
            return response

        responses = await asyncio.gather(*(call(i, text) for i, text in enumerate(texts)))
    return finished if finished_order else responses


def test_an_agents_own_output_cap_is_sent_and_held(
    runtime_factory: RuntimeFactory, seventeen: ScriptedModelServer
) -> None:
    capped_only = {**_budget("b", tokens=100), "scope": "agent", "match": "capped"}  # 64 + the prompt fits
    runtime = _runtime(runtime_factory, seventeen, "sqlite", [capped_only])
    seventeen.requests.clear()
    started = time.monotonic()
    assert (
        runtime.post(
            "/v1/chat/completions", {"model": "capped", "messages": [{"role": "user", "content": "hi"}]}
        ).status_code
        == 200
    )
    assert time.monotonic() - started < 5
    assert seventeen.requests[-1]["max_completion_tokens"] == 64


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (
            {"tokens": 3_000},
            r"budget 'tight' allows 3,000 tokens, but one call of agent 'spender' holds at least 4,1\d\d",
        ),
        (
            {"cost_usd": 0.001},
            r"budget 'tight' allows \$0.001 of cost, but one call of agent 'spender' holds at least \$0.0",
        ),
    ],
)
def test_a_budget_that_could_never_admit_a_call_is_refused_at_start(
    limits: dict[str, Any], message: str
) -> None:
    settings = Settings(
        agents=json.dumps([{"name": "spender", "model": "gpt-4o"}]),
        budgets=json.dumps([_budget("tight", **limits)]),
        model_prices=json.dumps({"gpt-4o": {"input": 2.5, "output": 10}}),
    )
    with pytest.raises(ConfigurationError, match=message) as refused:
        create_app(settings)
    assert "max_output_tokens 4,096" in str(refused.value) and refused.value.field == "AGENTSTAGE_BUDGETS"
