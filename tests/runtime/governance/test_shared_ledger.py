"""Two runtime processes, one ledger: what a stage's scaled-out instances share.

Each process has its own SQLite file (so nothing is shared through it); the budget ledger and the
idempotency records live in the shared backend. A 1,000-request storm spread over both never passes a
budget and leaves an exact ledger, and a side-effecting tool call retried with the same idempotency key
on the other process runs once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from runtime_helpers import calls
from settling import once_settled

from agent_runtime.governance.ledger import Usage
from agent_runtime.governance.ledger_cosmos import CosmosLedger
from agent_runtime.governance.ledger_redis import RedisLedger
from agent_runtime.testing import Rule, Script, ScriptedModelServer

HERE = Path(__file__).resolve().parent
RUNTIME = HERE.parents[2] / "runtime"
KEY = "ledger-key-0123456789"
FOREVER = 10**8
REQUESTS = 400
BUDGETS = [
    {"name": "storm", "scope": "tenant", "window_seconds": FOREVER, "requests": REQUESTS, "tokens": 10**7}
]


@pytest.fixture(scope="module")
def charging_model() -> Iterator[ScriptedModelServer]:
    rules = [
        Rule(pattern=r"^charge (?P<amount>\d+)$", tool_calls=calls("charge", {"amount": r"\g<amount>"})),
        Rule(pattern=r"^hi$", reply="one two three"),
    ]
    with ScriptedModelServer(Script(rules)) as server:
        yield server


@contextmanager
def _runtime(env: dict[str, str]) -> Iterator[str]:
    """One runtime process (uvicorn, one worker); its URL once it answers."""
    from agent_runtime.testing.serve import bind_socket

    with bind_socket("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "agent_runtime.api:serve_app",
        "--factory",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        [*command, "--log-level", "warning"],
        cwd=RUNTIME,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the runtime did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def _environment(model: ScriptedModelServer, state: Path, backend: dict[str, str]) -> dict[str, str]:
    settings = {
        "LLM_ENDPOINT": model.base_url,
        "LLM_AUTH": "none",
        "LLM_MAX_RETRIES": "0",
        "API_KEY": KEY,
        "SQLITE_PATH": str(state / "state.db"),
        "AGENTS": json.dumps([{"name": "payer", "tools": ["charge"], "memory": {"persist": False}}]),
        "TOOL_MODULES": json.dumps(["ledger_tools"]),
        "BUDGETS": json.dumps(BUDGETS),
        "MAX_OUTPUT_TOKENS": "16",
        "DEADLINE_SECONDS": "60",
        **backend,
    }
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(RUNTIME)]),
        "LEDGER_TEST_EFFECTS": str(state.parent / "effects.txt"),
        **{f"AGENTSTAGE_{name}": value for name, value in settings.items()},
    }


@dataclass(frozen=True)
class Shared:
    """Two runtimes on one ledger: their URLs, a reader of the ledger's counters, the budget they enforce and
    the file the side-effecting tool appends to."""

    urls: list[str]
    usage: Callable[[list[str]], Awaitable[list[Usage]]]
    budget: str
    effects: Path


@pytest.fixture(params=["redis", "cosmos", "dynamodb"])
def shared(
    request: pytest.FixtureRequest, charging_model: ScriptedModelServer, tmp_path: Path
) -> Iterator[Shared]:
    """Two runtimes on Redis, on Cosmos DB reached with the managed identity as on App Service, or on DynamoDB
    (a table where a fifth of the writes lose a race to another transaction, and are retried)."""
    budget = f"storm-{uuid.uuid4().hex[:6]}"  # the ledger outlives the test: counters of its own
    extra: dict[str, str] = {}
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        backend = {"BUDGET_BACKEND": "redis", "REDIS_URL": url}
        open_ledger: Callable[[], Awaitable[Any]] = partial(RedisLedger.connect, url)
    elif request.param == "dynamodb":
        from agent_runtime.governance.ledger_dynamodb import DynamoDBLedger

        dynamodb = request.getfixturevalue("dynamodb")
        table = dynamodb.create("ledger", conflicted=True)
        backend = {"BUDGET_BACKEND": "dynamodb", "DYNAMODB_LEDGER_TABLE": table}
        extra = dynamodb.environment
        open_ledger = partial(DynamoDBLedger.connect, table)
    else:
        cosmos = request.getfixturevalue("cosmos_ledger")
        backend = {
            "BUDGET_BACKEND": "cosmos",
            "COSMOS_ENDPOINT": cosmos.url,
            "IDENTITY_CLIENT_ID": cosmos.client_id,
        }
        extra = cosmos.environment
        for name, value in extra.items():  # this process reads the counters with the same identity
            request.getfixturevalue("monkeypatch").setenv(name, value)
        open_ledger = partial(
            CosmosLedger.connect, cosmos.url, "agentstage", container="ledger", client_id=cosmos.client_id
        )
    backend["BUDGETS"] = json.dumps([{**BUDGETS[0], "name": budget}])
    with ExitStack() as stack:
        urls = [
            stack.enter_context(_runtime({**_environment(charging_model, tmp_path / name, backend), **extra}))
            for name in "ab"
        ]
        yield Shared(urls, _reader(open_ledger), budget, tmp_path / "effects.txt")


def _reader(open_ledger: Callable[[], Awaitable[Any]]) -> Callable[[list[str]], Awaitable[list[Usage]]]:
    async def usage(keys: list[str]) -> list[Usage]:
        ledger = await open_ledger()
        try:
            return list(await ledger.usage(keys))
        finally:
            await ledger.close()

    return usage


def _counter(budget: str, metric: str) -> str:
    start = int(time.time() // FOREVER * FOREVER)
    return f"{budget}|tenant:default|{metric}|{start}"


async def _storm(urls: list[str], total: int, concurrent: int) -> list[httpx.Response]:
    gate = asyncio.Semaphore(concurrent)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrent)) as client:

        async def call(index: int) -> httpx.Response:
            async with gate:
                return await client.post(
                    f"{urls[index % len(urls)]}/v1/chat/completions",
                    json={"model": "payer", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"Authorization": f"Bearer {KEY}"},
                )

        return await asyncio.gather(*(call(i) for i in range(total)))


def test_a_storm_across_two_processes_never_passes_a_budget_and_leaves_an_exact_ledger(
    shared: Shared,
) -> None:
    responses = asyncio.run(_storm(shared.urls, 1000, 100))

    assert Counter(r.status_code for r in responses) == {200: REQUESTS, 429: 1000 - REQUESTS}, "no 5xx"
    assert {r.json()["error"]["budget"]["reason"] for r in responses if r.status_code == 429} == {"exhausted"}
    tokens = sum(r.json()["usage"]["total_tokens"] for r in responses if r.status_code == 200)
    counters = [_counter(shared.budget, "requests"), _counter(shared.budget, "tokens")]
    requests, settled_tokens = once_settled(
        lambda: asyncio.run(shared.usage(counters)), lambda usages: not any(usage.held for usage in usages)
    )
    assert requests == Usage(settled=REQUESTS, held=0)
    assert settled_tokens == Usage(settled=tokens, held=0), "every hold settled to what its call used"


def test_a_side_effect_retried_on_the_other_process_runs_once(shared: Shared) -> None:
    urls, effects = shared.urls, shared.effects
    body = {"model": "payer", "messages": [{"role": "user", "content": "charge 5"}]}
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "order-4711"}
    first = httpx.post(f"{urls[0]}/v1/chat/completions", json=body, headers=headers, timeout=30)
    retried = httpx.post(f"{urls[1]}/v1/chat/completions", json=body, headers=headers, timeout=30)

    assert first.status_code == retried.status_code == 200, (first.text, retried.text)
    assert len(effects.read_text().splitlines()) == 1, "the retry replayed the recorded result"
    assert "charged 5" in retried.json()["choices"][0]["message"]["content"]
