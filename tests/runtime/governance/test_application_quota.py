"""Tokens per minute per calling application, on DynamoDB: the AWS stage's counterpart of the Azure gateway's
token limit per ``azp``/``appid``, enforced in the runtime's budget ledger because API Gateway has none.

A storm of 1,000 concurrent chat calls from five applications (named by ``azp``, ``client_id``, ``appid``, or
not at all) and several users each, with JWTs signed by a local JWKS, through the HTTP app onto a DynamoDB
ledger where a fifth of the writes lose a race and are retried. Four applications spend far more than their
quota; the fifth stays under it and must never notice the others.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from runtime_helpers import Runtime, RuntimeFactory
from settling import once_settled
from test_auth import AUDIENCE, ISSUER, Issuer

from agent_runtime.testing import ServerThread

BUDGET = "app-tokens-per-minute"
TOKENS_PER_MINUTE = 400
MAX_OUTPUT_TOKENS = 16
LARGEST_HOLD = 64
"""More than any call here holds: its prompt (16 bytes of overhead, at most 19 of text, 2 of tool schemas, at
one token per byte) plus its output cap. A quota refused as spent has less than this left."""

CLAIMS: dict[str, dict[str, str]] = {
    "web-portal": {"azp": "web-portal"},
    "cognito-client": {"client_id": "cognito-client"},
    "v1-app": {"appid": "v1-app"},
    "unknown": {},
    "reporting": {"azp": "reporting"},
}
"""The application each token names, by the claim it names it with (none: the shared ``unknown``)."""
QUIET = "reporting"
NOISY = [application for application in CLAIMS if application != QUIET]
CALLS = 1000
QUIET_EVERY = 40
"""Every 40th call is the quiet application's: 25 calls, at most 11 tokens each, well within its quota."""
USERS = 7


@dataclass(frozen=True)
class Call:
    application: str
    user: str
    text: str


def _calls() -> list[Call]:
    """Interleaved, so the quiet application's calls arrive while the others exhaust their quotas; between
    1 and 5 words each, so calls use between 3 and 11 tokens (the scripted model counts words)."""
    return [
        Call(
            QUIET if index % QUIET_EVERY == 0 else NOISY[index % len(NOISY)],
            f"user-{index % USERS}",
            " ".join(["tok"] * (1 + index % 5)),
        )
        for index in range(CALLS)
    ]


@pytest.fixture
def issuer() -> Iterator[tuple[Issuer, str]]:
    issuer = Issuer()
    with ServerThread(issuer.app()) as server:
        yield issuer, f"{server.url}/keys"


@pytest.fixture
def governed(
    runtime_factory: RuntimeFactory, issuer: tuple[Issuer, str], request: pytest.FixtureRequest
) -> tuple[Runtime, Any, str]:
    """A runtime taking JWTs, with a per-application tokens-per-minute budget on a fresh DynamoDB table; the
    table's client and name."""
    dynamodb = request.getfixturevalue("dynamodb")
    table = dynamodb.create("ledger", conflicted=True)
    budget = {"name": BUDGET, "scope": "application", "window_seconds": 60, "tokens": TOKENS_PER_MINUTE}
    runtime = runtime_factory(
        auth_mode="jwt",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_jwks_url=issuer[1],
        api_keys=None,
        agents=json.dumps([{"name": "metered", "memory": {"persist": False}}]),
        budgets=json.dumps([budget]),
        max_output_tokens=MAX_OUTPUT_TOKENS,
        budget_backend="dynamodb",
        dynamodb_ledger_table=table,
        budget_wait_seconds=60,
        deadline_seconds=120,
    )
    return runtime, dynamodb.client(), table


async def _storm(
    runtime: Runtime, calls: list[Call], tokens: dict[tuple[str, str], str]
) -> list[httpx.Response]:
    """Every call at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=len(calls))
    async with httpx.AsyncClient(base_url=runtime.url, timeout=120, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/v1/chat/completions",
                    json={"model": "metered", "messages": [{"role": "user", "content": call.text}]},
                    headers={"Authorization": f"Bearer {tokens[call.application, call.user]}"},
                )
                for call in calls
            )
        )


def _settled_per_window(client: Any, table: str) -> dict[str, dict[int, int]]:
    """Application -> window start -> settled tokens, as the ledger has them; no hold may be left."""
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    assert not [name for item in items for name in item if name.startswith(("h:", "b:"))], "a hold is left"
    settled: dict[str, dict[int, int]] = defaultdict(dict)
    for item in items:
        name, counted, metric, start = item["key"]["S"].split("|")
        assert (name, metric) == (BUDGET, "tokens")
        scope, _, application = counted.partition(":")
        assert scope == "application"
        settled[application][int(start)] = int(item["settled"]["N"])
    return settled


def test_a_storm_of_applications_each_gets_exactly_its_own_tokens_per_minute(
    governed: tuple[Runtime, Any, str], issuer: tuple[Issuer, str]
) -> None:
    runtime, client, table = governed
    calls = _calls()
    tokens = {
        (call.application, call.user): issuer[0].token(sub=call.user, **CLAIMS[call.application])
        for call in calls
    }
    started = time.time()
    responses = asyncio.run(_storm(runtime, calls, tokens))

    assert {r.status_code for r in responses} <= {200, 429}, "no call failed otherwise"
    admitted: dict[str, int] = defaultdict(int)
    refused: dict[str, int] = defaultdict(int)
    for call, response in zip(calls, responses, strict=True):
        if response.status_code == 200:
            admitted[call.application] += response.json()["usage"]["total_tokens"]
            continue
        refused[call.application] += 1
        error = response.json()["error"]
        budget = error["budget"]
        assert (error["code"], budget["name"], budget["scope"], budget["subject"]) == (
            "quota_exceeded",
            BUDGET,
            "application",
            call.application,
        )
        expected_retry = max(1, budget["reset_seconds"]) if budget["reason"] == "exhausted" else 1
        assert int(response.headers["Retry-After"]) == expected_retry

    settled = once_settled(
        lambda: _settled_per_window(client, table),
        lambda settled: {app: sum(windows.values()) for app, windows in settled.items()} == admitted,
    )
    windows = {int(started // 60 * 60), int(time.time() // 60 * 60)}  # the storm may cross a minute
    assert set(settled) == set(CLAIMS)
    for application, per_window in settled.items():
        assert set(per_window) <= windows
        assert all(total <= TOKENS_PER_MINUTE for total in per_window.values()), (application, per_window)
        assert sum(per_window.values()) == admitted[application], (
            f"{application}: lost or doubled settlements"
        )
    for application in NOISY:
        assert refused[application] > 0, f"{application} spent far more than its quota"
        assert max(settled[application].values()) > TOKENS_PER_MINUTE - LARGEST_HOLD, (
            f"{application} was refused before its own quota was spent"
        )
    assert refused[QUIET] == 0, "the others' spent quotas refused none of the quiet application's calls"
    assert admitted[QUIET] == sum(2 * len(c.text.split()) + 1 for c in calls if c.application == QUIET)
