"""Budgets hold under concurrency: reserve-before-call is atomic on SQLite and on Redis, and an exhausted
budget answers 429 with the budget, its limit, what remains, when it resets and ``Retry-After``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from runtime_helpers import ADMIN_KEY, USER_KEY, Runtime, RuntimeFactory
from settling import once_settled

from agent_runtime.caller import SYSTEM_TENANT
from agent_runtime.errors import ConfigurationError
from agent_runtime.governance.ledger import Line, Refusal, Usage
from agent_runtime.governance.ledger_cosmos import CosmosLedger
from agent_runtime.governance.ledger_redis import PREFIX, RedisLedger
from agent_runtime.governance.ledger_sqlite import SqliteLedger

LEDGERS = ["sqlite", "redis", "cosmos", "dynamodb"]
FOREVER = 10**8
"""A window no test run crosses the end of."""

AGENTS = [{"name": "counted"}, {"name": "metered"}]
BUDGETS = [
    {
        "name": "counted-requests",
        "scope": "agent",
        "match": "counted",
        "window_seconds": FOREVER,
        "requests": 25,
    },
    {
        "name": "metered-tokens",
        "scope": "agent",
        "match": "metered",
        "window_seconds": FOREVER,
        "tokens": 2000,
    },
    {
        "name": "metered-cost",
        "scope": "agent",
        "match": "metered",
        "window_seconds": FOREVER,
        "cost_usd": 0.5,
    },
]
PRICES = {"gpt-4o-mini": {"input": 1000, "output": 2000}}
"""USD per million tokens, chosen so one "hi" -> "hi" call (2 + 1 tokens) costs exactly 4,000 micro-dollars."""


def _budgeted(factory: RuntimeFactory, **overrides: Any) -> Runtime:
    return factory(
        agents=json.dumps(AGENTS),
        budgets=json.dumps(BUDGETS),
        model_prices=json.dumps(PRICES),
        max_output_tokens=100,
        **overrides,
    )


def test_an_exhausted_budget_is_a_429_naming_the_budget_with_retry_after(
    runtime_factory: RuntimeFactory,
) -> None:
    budgets = [
        {"name": "alice-hourly", "scope": "caller", "match": "alice", "window_seconds": 3600, "requests": 2}
    ]
    runtime = runtime_factory(budgets=json.dumps(budgets))
    assert [runtime.invoke("restricted", "hi").status_code for _ in range(2)] == [200, 200]
    refused = runtime.invoke("restricted", "hi")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    budget = error["budget"]
    assert {k: budget[k] for k in ("name", "scope", "subject", "metric", "limit", "remaining")} == {
        "name": "alice-hourly",
        "scope": "caller",
        "subject": "alice",
        "metric": "requests",
        "limit": 2,
        "remaining": 0,
    }
    assert 0 < budget["reset_seconds"] <= 3600
    assert int(refused.headers["Retry-After"]) == max(1, budget["reset_seconds"])
    admin = runtime.invoke("restricted", "hi", key="admin-key-0123456789")
    assert admin.status_code == 200, "another caller's budget is its own"


def test_an_application_budget_that_names_one_application_counts_only_its_calls(
    runtime_factory: RuntimeFactory,
) -> None:
    keys = {
        USER_KEY: {"caller": "alice", "roles": ["user"], "application": "portal"},
        ADMIN_KEY: {"caller": "bob", "roles": ["user"]},
    }
    budgets = [
        {
            "name": "portal-hourly",
            "scope": "application",
            "match": "portal",
            "window_seconds": 3600,
            "requests": 1,
        }
    ]
    runtime = runtime_factory(api_keys=json.dumps(keys), budgets=json.dumps(budgets))

    assert runtime.invoke("restricted", "hi").status_code == 200
    refused = runtime.invoke("restricted", "hi")
    assert refused.status_code == 429
    budget = refused.json()["error"]["budget"]
    assert (budget["name"], budget["scope"], budget["subject"]) == ("portal-hourly", "application", "portal")
    others = [runtime.invoke("restricted", "hi", key=ADMIN_KEY).status_code for _ in range(3)]
    assert others == [200, 200, 200], "bob's application (bob) is not the one the budget names"


TENANT_KEYS = {
    "key-alice-tenant-a-0123": {"caller": "alice", "roles": ["user"], "tenant": "t-a"},
    "key-alice-tenant-b-0123": {"caller": "alice", "roles": ["user"], "tenant": "t-b"},
}
"""Two callers of one name in two tenants: two people."""


@pytest.mark.parametrize("scope", ["caller", "application"])
def test_a_same_named_caller_of_another_tenant_has_quotas_of_its_own(
    runtime_factory: RuntimeFactory, scope: str
) -> None:
    """Caller counters are kept per tenant, and an API key naming no application is its caller in its
    tenant: t-a's ``alice`` spending her quota leaves t-b's ``alice`` hers."""
    budgets = [{"name": "per-" + scope, "scope": scope, "match": "*", "window_seconds": 3600, "requests": 2}]
    runtime = runtime_factory(api_keys=json.dumps(TENANT_KEYS), budgets=json.dumps(budgets))
    in_a, in_b = TENANT_KEYS
    assert [runtime.invoke("restricted", "hi", key=in_a).status_code for _ in range(3)] == [200, 200, 429]
    assert [runtime.invoke("restricted", "hi", key=in_b).status_code for _ in range(2)] == [200, 200]


def test_a_credential_may_not_name_the_runtimes_own_tenant(runtime_factory: RuntimeFactory) -> None:
    keys = {"key-of-the-system-0123": {"caller": "mallory", "tenant": SYSTEM_TENANT}}
    with pytest.raises(ConfigurationError, match=f"entry #1: 'tenant' must not be '{SYSTEM_TENANT}'"):
        runtime_factory(api_keys=json.dumps(keys))


async def _storm(runtime: Runtime, agents: list[str]) -> list[httpx.Response]:
    """One request per entry of ``agents``, all at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(agents), max_keepalive_connections=len(agents))
    async with httpx.AsyncClient(base_url=runtime.url, timeout=120, limits=limits) as client:
        headers = {"Authorization": f"Bearer {USER_KEY}"}
        return await asyncio.gather(
            *(
                client.post(
                    "/v1/chat/completions",
                    json={"model": agent, "messages": [{"role": "user", "content": "hi"}]},
                    headers=headers,
                )
                for agent in agents
            )
        )


def _sqlite_ledger(path: str) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT key, spent FROM budget_ledger").fetchall()
    return {key.split("|")[0] + "|" + key.split("|")[2]: spent for key, spent in rows}


def _redis_ledger(url: str) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    keys = [key for key in client.scan_iter(f"{PREFIX}*") if "|" in key]
    return {
        key.removeprefix(PREFIX).split("|")[0] + "|" + key.split("|")[2]: int(client.get(key) or 0)
        for key in keys
    }


def _dynamodb_ledger(client: Any, table: str) -> dict[str, int]:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    assert not [name for item in items for name in item if name.startswith(("h:", "b:"))], "a hold is left"
    return {
        item["key"]["S"].split("|")[0] + "|" + item["key"]["S"].split("|")[2]: int(item["settled"]["N"])
        for item in items
        if "key" in item
    }


@pytest.mark.parametrize("backend", ["sqlite", "redis", "dynamodb"])
def test_a_thousand_concurrent_requests_never_overspend_and_the_ledger_is_exact(
    backend: str, runtime_factory: RuntimeFactory, request: pytest.FixtureRequest
) -> None:
    overrides: dict[str, Any] = {}
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        import redis

        redis.Redis.from_url(url).flushdb()
        overrides = {"budget_backend": "redis", "redis_url": url}
    if backend == "dynamodb":
        dynamodb = request.getfixturevalue("dynamodb")
        table = dynamodb.create("ledger")
        overrides = {"budget_backend": "dynamodb", "dynamodb_ledger_table": table}
    runtime = _budgeted(runtime_factory, deadline_seconds=120, **overrides)

    responses = asyncio.run(_storm(runtime, ["counted", "metered"] * 500))
    counted, metered = responses[0::2], responses[1::2]

    assert Counter(r.status_code for r in counted) == {200: 25, 429: 475}
    metered_ok = [r for r in metered if r.status_code == 200]
    assert {r.status_code for r in metered} == {200, 429} and metered_ok
    assert all(r.json()["error"]["code"] == "quota_exceeded" for r in metered if r.status_code == 429)
    assert all(r.json()["usage"]["total_tokens"] == 3 for r in metered_ok)
    readers: dict[str, Callable[[], dict[str, int]]] = {
        "sqlite": lambda: _sqlite_ledger(runtime.settings.sqlite_path),
        "redis": lambda: _redis_ledger(overrides["redis_url"]),
        "dynamodb": lambda: _dynamodb_ledger(dynamodb.client(), table),
    }
    expected = {
        "counted-requests|requests": 25,
        "metered-tokens|tokens": 3 * len(metered_ok),
        "metered-cost|cost": 4000 * len(metered_ok),
    }
    ledger = once_settled(readers[backend], lambda ledger: ledger == expected)
    assert ledger == expected
    assert ledger["metered-tokens|tokens"] <= 2000 and ledger["metered-cost|cost"] <= 500_000


def test_separate_connections_to_one_sqlite_file_never_overspend(tmp_path: Path) -> None:
    """Four ledgers (four connections, four threads: as four processes would) race for 100 units."""

    async def race() -> tuple[int, Usage]:
        path = str(tmp_path / "ledger.db")
        ledgers = [await SqliteLedger.open(path) for _ in range(4)]
        line = Line("shared", limit=100, amount=1, expires_at=2**40)
        try:
            results = await asyncio.gather(
                *(
                    ledger.reserve(f"h{i}-{n}", [line], 60)
                    for i, ledger in enumerate(ledgers)
                    for n in range(100)
                )
            )
            [usage] = await ledgers[0].usage(["shared"])
        finally:
            await asyncio.gather(*(ledger.close() for ledger in ledgers))
        return sum(not isinstance(r, Refusal) for r in results), usage

    assert asyncio.run(race()) == (100, Usage(settled=0, held=100))


_RACER = """
import asyncio, sys, time
from agent_runtime.caller import SYSTEM_TENANT
from agent_runtime.errors import ConfigurationError
from agent_runtime.governance.ledger import Line, Refusal, Usage
from agent_runtime.governance.ledger_cosmos import CosmosLedger
from agent_runtime.governance.ledger_sqlite import SqliteLedger

async def race():
    ledger = await SqliteLedger.open(sys.argv[1])
    line = Line("shared", limit=1000, amount=1, expires_at=2**40)
    await asyncio.sleep(float(sys.argv[2]) - time.time())  # all start together, whenever each imported
    try:
        results = await asyncio.gather(*(ledger.reserve(f"{sys.argv[3]}-{n}", [line], 60) for n in range(600)))
        granted = [f"{sys.argv[3]}-{n}" for n, r in enumerate(results) if not isinstance(r, Refusal)]
        await asyncio.gather(*(ledger.settle(hold, [("shared", 1)]) for hold in granted))
    finally:
        await ledger.close()
    print(len(granted))

asyncio.run(race())
"""


def test_worker_processes_sharing_one_sqlite_file_never_overspend(tmp_path: Path) -> None:
    """Three processes (as three uvicorn workers) race for 1,000 units and settle them: exactly 1,000."""
    path = str(tmp_path / "ledger.db")
    start = str(time.time() + 3)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, path, start, f"p{n}"], stdout=subprocess.PIPE, text=True
        )
        for n in range(3)
    ]
    granted = sum(int(racer.communicate(timeout=60)[0]) for racer in racers)
    with sqlite3.connect(path) as conn:
        [(spent,)] = conn.execute("SELECT spent FROM budget_ledger WHERE key = 'shared'").fetchall()
        [(holds,)] = conn.execute("SELECT count(*) FROM budget_holds").fetchall()
    assert (granted, spent, holds) == (1000, 1000, 0)


async def _ledger(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    if backend == "sqlite":
        return await SqliteLedger.open(str(tmp_path / "l.db"))
    if backend == "redis":
        return await RedisLedger.connect(request.getfixturevalue("redis_url"))
    if backend == "dynamodb":  # a table per test, where a fifth of the writes lose a race (and are retried)
        from agent_runtime.governance.ledger_dynamodb import DynamoDBLedger

        if not hasattr(request.node, "ledger_table"):
            request.node.ledger_table = request.getfixturevalue("dynamodb").create("ledger", conflicted=True)
        return await DynamoDBLedger.connect(request.node.ledger_table)
    cosmos = request.getfixturevalue("cosmos_ledger")
    patch = request.getfixturevalue("monkeypatch")
    for name, value in cosmos.environment.items():  # as App Service sets them for the app's identity
        patch.setenv(name, value)
    return await CosmosLedger.connect(
        cosmos.url, "agentstage", container="ledger", client_id=cosmos.client_id
    )


@pytest.mark.parametrize("backend", LEDGERS)
def test_holds_are_all_or_nothing_and_settle_to_actual_usage(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async def scenario() -> None:
        ledger = await _ledger(backend, tmp_path, request)
        tag = uuid.uuid4().hex[:8]
        try:
            await ledger.settle("nobody", [])  # nothing to settle is fine
            a, b = Line(f"{tag}-a", 10, 4, 2**40), Line(f"{tag}-b", 5, 4, 2**40)
            assert await ledger.reserve("h1", [a, b], 60) == [4, 4]
            assert await ledger.reserve("h2", [a, b], 60) == Refusal(1, settled=0, held=4), (
                "b has no room: a must not move either"
            )
            assert await ledger.usage([a.key, b.key]) == [Usage(0, 4), Usage(0, 4)]
            await ledger.settle("h1", [(a.key, 1), (b.key, 1)])  # the call used 1 of the 4 held
            assert await ledger.usage([a.key, b.key]) == [Usage(1, 0), Usage(1, 0)]
            await ledger.settle("h1", [(a.key, 1), (b.key, 1)])
            assert await ledger.usage([a.key, b.key]) == [Usage(1, 0), Usage(1, 0)], "a hold settles once"
            assert await ledger.reserve("h3", [b], 60) == [5]
            assert await ledger.reserve("h4", [b], 60) == Refusal(0, settled=1, held=4)
        finally:
            await ledger.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("backend", LEDGERS)
def test_racing_clients_never_hold_past_a_limit(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Four clients (four connections, as four processes would) race 200 holds for 100 units, then settle."""

    async def race() -> tuple[int, Usage]:
        ledgers = [await _ledger(backend, tmp_path, request) for _ in range(4)]
        line = Line(f"race-{uuid.uuid4().hex[:8]}", limit=100, amount=1, expires_at=2**40)
        try:
            results = await asyncio.gather(
                *(
                    ledger.reserve(f"h{i}-{n}", [line], 60)
                    for i, ledger in enumerate(ledgers)
                    for n in range(50)
                )
            )
            granted = [f"h{i}-{n}" for i in range(4) for n in range(50)]
            granted = [
                hold for hold, result in zip(granted, results, strict=True) if not isinstance(result, Refusal)
            ]
            await asyncio.gather(*(ledgers[0].settle(hold, [(line.key, 1)]) for hold in granted))
            [usage] = await ledgers[0].usage([line.key])
        finally:
            await asyncio.gather(*(ledger.close() for ledger in ledgers))
        return len(granted), usage

    assert asyncio.run(race()) == (100, Usage(settled=100, held=0))


LEASE_SECONDS = 0.5
"""The lease of the dead call's hold in the test below."""


@pytest.mark.parametrize("backend", LEDGERS)
def test_a_hold_whose_lease_passed_counts_as_spent(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A call that died holding its worst case: once the lease passes, the worst case is what it spent."""

    async def scenario() -> None:
        ledger = await _ledger(backend, tmp_path, request)
        key = f"lease-{uuid.uuid4().hex[:8]}"
        line = Line(key, 10, 4, 2**40)
        try:
            # A lease long enough for a loaded machine's round trips to a served ledger (moto, Redis) to
            # read the hold before it lapses: 50 ms was not, once, in a fresh clone's run.
            assert await ledger.reserve("dead", [line], LEASE_SECONDS) == [4]
            assert await ledger.usage([key]) == [Usage(0, 4)]
            await asyncio.sleep(LEASE_SECONDS + 0.1)
            assert await ledger.usage([key]) == [Usage(4, 0)]
            await ledger.settle("dead", [(key, 1)])  # too late: its worst case stays counted
            assert await ledger.usage([key]) == [Usage(4, 0)]
            assert await ledger.reserve("next", [line], 60) == [8]
        finally:
            await ledger.close()

    asyncio.run(scenario())


def test_a_locked_sqlite_file_delays_reservations_without_blocking_the_event_loop(tmp_path: Path) -> None:
    """Another process's write lock makes transactions wait for it, while the event loop goes on."""

    async def scenario() -> None:
        path = str(tmp_path / "locked.db")
        ledger = await SqliteLedger.open(path)
        other = sqlite3.connect(path, isolation_level=None)
        line = Line("locked", limit=10, amount=4, expires_at=2**40)
        try:
            other.execute("BEGIN IMMEDIATE")  # as another worker process mid-transaction
            first = asyncio.ensure_future(ledger.reserve("first", [line], 60))
            second = asyncio.ensure_future(ledger.reserve("second", [line], 60))
            ticks = 0
            for _ in range(5):
                await asyncio.sleep(0.01)  # the loop keeps running while both wait for the lock
                ticks += 1
            assert ticks == 5 and not first.done() and not second.done()
            other.execute("COMMIT")
            assert sorted([await first, await second]) == [[4], [8]]
            assert await ledger.reserve("third", [line], 60) == Refusal(0, settled=0, held=8)
        finally:
            other.close()
            await ledger.close()

    asyncio.run(scenario())
