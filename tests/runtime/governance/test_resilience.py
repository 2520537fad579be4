"""Resilience over real HTTP against a model server that injects faults: retries (honouring Retry-After),
fallback deployments and agents, circuit breakers that open and recover, deadlines, idempotent tools —
and never a 500 to the caller."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import httpx
import pytest
from runtime_helpers import AGENTS, EXECUTED, USER_KEY, Runtime, RuntimeFactory

from agent_runtime.errors import ModelError
from agent_runtime.llm import LLM, retry_after
from agent_runtime.resilience import BreakerState, CircuitBreaker, RetryPolicy
from agent_runtime.settings import Settings
from agent_runtime.testing import Faults, ScriptedModelServer

FAST_RETRIES = {"llm_max_retries": 4, "retry_base_seconds": 0.01, "retry_max_seconds": 2.0}


def test_the_model_client_does_not_retry_on_its_own(model: ScriptedModelServer) -> None:
    model.faults["*"] = Faults(rate_500=1.0)
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none", llm_max_retries=7))

    async def chat() -> None:
        try:
            await llm.complete("m", [{"role": "user", "content": "hi"}])
        finally:
            await llm.close()

    with pytest.raises(ModelError) as raised:
        asyncio.run(chat())
    assert raised.value.retryable and len(model.requests) == 1, "retries belong to the resilience layer"


def test_backoff_is_jittered_exponential_and_never_shorter_than_retry_after() -> None:
    policy = RetryPolicy(max_retries=5, base_seconds=0.1, max_seconds=1.0)
    delays = [policy.delay(3, None) for _ in range(200)]
    assert all(0 <= d <= 0.8 for d in delays) and len(set(delays)) > 100, "full jitter up to base * 2**retry"
    assert all(0 <= policy.delay(9, None) <= 1.0 for _ in range(50)), "capped at max_seconds"
    assert all(policy.delay(0, 0.7) >= 0.7 for _ in range(50)), "Retry-After is a floor"
    assert retry_after(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    assert retry_after(httpx.Headers({"retry-after": "3"})) == 3.0


def test_the_breaker_opens_after_the_threshold_and_half_opens_for_one_probe() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=10, clock=lambda: now[0])
    for _ in range(2):
        breaker.failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    now[0] = 10.0
    assert breaker.allow() and not breaker.allow(), "half-open lets exactly one probe through"
    breaker.failure()
    assert breaker.state is BreakerState.OPEN, "a failed probe reopens at once"
    now[0] = 20.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED


def test_429s_with_retry_after_are_retried_until_they_succeed(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer
) -> None:
    model.faults["*"] = Faults(rate_429=0.4, retry_after=0.05, seed=1)
    runtime = runtime_factory(breaker_failure_threshold=100, **(FAST_RETRIES | {"llm_max_retries": 8}))
    started = time.monotonic()
    responses = [runtime.invoke("restricted", f"hello {i}") for i in range(20)]
    assert [r.status_code for r in responses] == [200] * 20
    retried = len(model.requests) - 20
    assert retried > 5, "the fault rate must have forced retries"
    assert time.monotonic() - started >= retried * 0.05, "each retry waited at least Retry-After"


@pytest.mark.parametrize("fault", ["rate_500", "rate_malformed", "rate_timeout"])
def test_5xx_malformed_answers_and_timeouts_are_retried(
    fault: str, runtime_factory: RuntimeFactory, model: ScriptedModelServer
) -> None:
    model.faults["*"] = Faults(**{fault: 0.4}, timeout_delay=1.0, seed=3)
    runtime = runtime_factory(llm_timeout_seconds=0.2, **FAST_RETRIES)
    statuses = [runtime.invoke("restricted", f"hello {i}").status_code for i in range(12)]
    assert statuses == [200] * 12
    assert len(model.requests) > 12


def _fallback_agents() -> str:
    return json.dumps(
        [
            *AGENTS,
            {"name": "primary", "model": "gpt-primary", "fallback_models": ["gpt-secondary"]},
            {"name": "lonely", "model": "gpt-primary"},
            {"name": "delegating", "model": "gpt-primary", "fallback_agent": "restricted"},
        ]
    )


def test_a_failing_deployment_falls_back_to_the_secondary(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer
) -> None:
    model.faults["gpt-primary"] = Faults(rate_500=1.0)
    runtime = runtime_factory(agents=_fallback_agents(), **FAST_RETRIES)
    body = runtime.invoke("primary", "hello").json()
    assert body["answer"] == "hello"
    assert [(s["model"], s["route"]) for s in body["steps"]] == [("gpt-secondary", "fallback")]


def test_a_fallback_agent_answers_when_every_deployment_fails(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer
) -> None:
    model.faults["gpt-primary"] = Faults(rate_500=1.0)
    runtime = runtime_factory(agents=_fallback_agents(), llm_max_retries=0)
    body = runtime.invoke("delegating", "calc 2+2").json()
    assert (body["agent"], body["answer"]) == ("restricted", "4")


def test_the_breaker_opens_sheds_load_and_recovers(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer
) -> None:
    model.faults["gpt-primary"] = Faults(rate_500=1.0)
    runtime = runtime_factory(
        agents=_fallback_agents(), llm_max_retries=0, breaker_failure_threshold=2, breaker_reset_seconds=0.5
    )
    assert [runtime.invoke("lonely", "hi").status_code for _ in range(2)] == [502, 502]
    sent = len(model.requests)
    shed = runtime.invoke("lonely", "hi")
    assert shed.status_code == 503 and shed.json()["error"]["code"] == "model_unavailable"
    assert shed.headers["Retry-After"] == "1"
    assert len(model.requests) == sent, "an open breaker sends nothing to the failing deployment"
    model.faults.clear()
    time.sleep(0.55)
    assert runtime.invoke("lonely", "hi").status_code == 200, "the half-open probe succeeds and closes it"
    assert runtime.invoke("lonely", "hi").status_code == 200


def test_a_hanging_deployment_is_cut_by_the_call_timeout_and_the_secondary_answers(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer
) -> None:
    model.faults["gpt-primary"] = Faults(rate_timeout=1.0, timeout_delay=3.0)
    runtime = runtime_factory(agents=_fallback_agents(), llm_timeout_seconds=0.3, llm_max_retries=0)
    started = time.monotonic()
    response = runtime.invoke("primary", "hello")
    assert response.status_code == 200 and time.monotonic() - started < 2.0


def test_a_fault_storm_never_returns_a_500(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer
) -> None:
    model.faults["*"] = Faults(
        rate_429=0.1,
        rate_500=0.1,
        rate_timeout=0.05,
        rate_malformed=0.1,
        retry_after=0.01,
        timeout_delay=3,
        seed=11,
    )
    runtime = runtime_factory(
        llm_timeout_seconds=1.5, llm_max_retries=4, retry_base_seconds=0.01, breaker_failure_threshold=1000
    )

    async def storm() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=runtime.url, timeout=30) as client:
            headers = {"Authorization": f"Bearer {USER_KEY}"}
            plain = [
                client.post("/v1/agents/assistant/invoke", json={"input": f"calc {i}+1"}, headers=headers)
                for i in range(30)
            ]
            streamed = [
                client.post(
                    "/v1/chat/completions",
                    json={
                        "model": "assistant",
                        "stream": True,
                        "messages": [{"role": "user", "content": "story"}],
                    },
                    headers=headers,
                )
                for _ in range(30)
            ]
            return await asyncio.gather(*plain, *streamed)

    statuses = Counter(r.status_code for r in asyncio.run(storm()))
    assert 500 not in statuses and set(statuses) <= {200, 502, 503, 504}
    assert statuses[200] >= 55, f"most requests must survive through retries: {statuses}"


def test_a_side_effecting_tool_runs_once_per_idempotency_key(runtime: Runtime) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = runtime.post("/v1/agents/assistant/invoke", {"input": "charge 30"}, headers=headers).json()
    replay = runtime.post("/v1/agents/assistant/invoke", {"input": "charge 30"}, headers=headers).json()
    assert first["answer"] == replay["answer"] == "charged 30 (charge #1)"
    assert EXECUTED == ["charge:30"]
    other = runtime.post(
        "/v1/agents/assistant/invoke", {"input": "charge 30"}, headers={"Idempotency-Key": "order-43"}
    )
    assert other.json()["answer"] == "charged 30 (charge #2)"


def test_model_errors_say_whether_a_retry_may_help() -> None:
    assert ModelError("x", retryable=True).retryable and not ModelError("y").retryable


def test_a_same_named_caller_of_another_tenant_never_gets_a_stored_tool_result(
    runtime_factory: RuntimeFactory,
) -> None:
    """The idempotency key is the caller in its tenant: ``alice`` of tenant t-b sending t-a's ``alice``'s
    key (or conversation) has her own charge run and is never shown the other tenant's stored result."""
    keys = {
        "key-alice-tenant-a-0123": {"caller": "alice", "roles": ["user"], "tenant": "t-a"},
        "key-alice-tenant-b-0123": {"caller": "alice", "roles": ["user"], "tenant": "t-b"},
    }
    runtime = runtime_factory(api_keys=json.dumps(keys))
    for scope in ({"headers": {"Idempotency-Key": "order-1"}}, {"conversation_id": "support-1"}):
        EXECUTED.clear()
        body, headers = {"input": "charge 30"}, scope.get("headers", {})
        if "conversation_id" in scope:
            body["conversation_id"] = scope["conversation_id"]
        answers = [
            runtime.post("/v1/agents/assistant/invoke", body, key=key, headers=headers).json()["answer"]
            for key in keys
        ]
        assert EXECUTED == ["charge:30", "charge:30"], scope
        assert answers[0] != answers[1], scope
