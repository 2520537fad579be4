"""Work an answer does not wait for (:mod:`agent_runtime.answer_first`): the budget settlement is written
after the answer is sent, and the request still waits for it before its handler returns.

Over HTTP the ledger's file is locked by the test while the model answers: the answer must reach the caller
while the settlement cannot be written, and the ledger be exact once the lock is gone. Inline (before this
existed) the answer waited for the lock, and failed once SQLite's wait for it ran out.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import sqlite3
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from raw_model import Answer, RawModel, chunk, completion, usage_chunk
from runtime_helpers import USER_KEY, RuntimeFactory
from settling import once_settled
from token_ledger import TokenLedger

from agent_runtime.answer_first import AfterAnswer, Work, answering_first, do_kept_work
from agent_runtime.governance.ledger_sqlite import SqliteLedger

USAGE = {"prompt_tokens": 30, "completion_tokens": 70, "total_tokens": 100}
BUDGET = [{"name": "tokens", "scope": "caller", "match": "*", "window_seconds": 86400, "tokens": 10**6}]
MODEL_SECONDS = 0.4
"""How long the model takes to answer: the test locks the ledger meanwhile."""


AFTER = AfterAnswer(logging.getLogger("tests.answer_first"), "the test's work failed")


def _work(events: list[str], name: str = "work done", seconds: float = 0.0) -> Work:
    """Work that takes ``seconds`` (awaiting the loop even at 0), then notes ``name`` in ``events``."""

    async def work() -> None:
        await asyncio.sleep(seconds)
        events.append(name)

    return work


def test_outside_a_request_that_answers_first_the_work_is_done_in_line() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []
        await AFTER.run(_work(events))
        events.append("returned")
        return events

    assert asyncio.run(scenario()) == ["work done", "returned"]


def test_inside_one_the_work_runs_after_the_block_body_and_the_block_waits_for_it() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []
        async with answering_first():
            await AFTER.run(_work(events, seconds=0.05))
            events.append("answered")
        events.append("block ended")
        return events

    assert asyncio.run(scenario()) == ["answered", "work done", "block ended"]


def test_work_started_in_a_task_of_the_request_is_waited_for_too() -> None:
    """A streamed response's body is produced in a task of its own (Starlette's), which copies the context."""

    async def scenario() -> list[str]:
        events: list[str] = []
        async with answering_first():
            await asyncio.create_task(AFTER.run(_work(events, seconds=0.05)))
        events.append("block ended")
        return events

    assert asyncio.run(scenario()) == ["work done", "block ended"]


def test_a_failure_is_logged_not_raised_into_the_request(caplog: pytest.LogCaptureFixture) -> None:
    async def failing() -> None:
        raise RuntimeError("the ledger is gone")

    async def scenario() -> None:
        async with answering_first():
            await AFTER.run(failing)

    with caplog.at_level(logging.ERROR, logger="tests.answer_first"):
        asyncio.run(scenario())
    assert [record.getMessage() for record in caplog.records] == [
        "the test's work failed: RuntimeError: the ledger is gone"
    ]


def _cancelled(request: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
    """``request`` run as a task and cancelled 10 ms in, its cancellation awaited."""

    async def run() -> None:
        task = asyncio.create_task(request)
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    return run()


def test_a_request_cancelled_while_answering_still_does_its_kept_work() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []

        async def request() -> None:
            async with answering_first():
                await AFTER.run(_work(events, seconds=0.01))
                await asyncio.sleep(10)  # the answer, interrupted

        await _cancelled(request())
        events.append("request cancelled")
        return events

    assert asyncio.run(scenario()) == ["work done", "request cancelled"]


def test_kept_work_interrupted_is_dropped_whole() -> None:
    """Cancelled again while doing its kept work (a server stopping), a request drops what is left: its
    holds lapse with their leases, as a crashed process's do."""

    async def scenario() -> list[str]:
        events: list[str] = []

        async def request() -> None:
            async with answering_first():
                await AFTER.run(_work(events, "first", seconds=0.05))
                await AFTER.run(_work(events, "second", seconds=0.05))

        await _cancelled(request())  # during the first kept work
        await asyncio.sleep(0.1)
        return events

    assert asyncio.run(scenario()) == []


def test_work_handed_over_after_the_request_ended_is_done_at_once() -> None:
    """A generator abandoned by its request and finalised later, in a copy of the request's context, still
    settles: nobody would do work kept for a request that is over."""

    async def scenario() -> list[str]:
        events: list[str] = []
        async with answering_first():
            context = contextvars.copy_context()
        events.append("request ended")
        await asyncio.create_task(AFTER.run(_work(events)), context=context)
        events.append("handed over")
        return events

    assert asyncio.run(scenario()) == ["request ended", "work done", "handed over"]


def test_the_requests_kept_work_is_done_before_it_reserves_again() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []
        async with answering_first():
            await AFTER.run(_work(events, "settled"))
            await do_kept_work()
            events.append("reserving again")
        return events

    assert asyncio.run(scenario()) == ["settled", "reserving again"]


def _slow_plain(body: dict[str, Any]) -> Answer:
    time.sleep(MODEL_SECONDS)  # the model server's own loop: one request at a time is all this test sends
    return completion("the answer", **USAGE)


def _slow_stream(body: dict[str, Any]) -> Answer:
    return [chunk("the "), chunk("answer"), chunk(finish="stop"), usage_chunk(**USAGE), "[DONE]"]


@pytest.fixture(params=["plain", "streamed"])
def streamed(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "streamed")


@pytest.fixture
def slow_model(streamed: bool) -> Iterator[RawModel]:
    model = RawModel(_slow_stream if streamed else _slow_plain, pause=MODEL_SECONDS / 4)
    yield model
    model.close()


def _ask(url: str, streamed: bool) -> httpx.Response:
    body = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}], "stream": streamed}
    headers = {"Authorization": f"Bearer {USER_KEY}"}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_the_answer_reaches_the_caller_while_its_settlement_cannot_be_written(
    runtime_factory: RuntimeFactory, slow_model: RawModel, streamed: bool
) -> None:
    runtime = runtime_factory(llm_endpoint=slow_model.url, budgets=json.dumps(BUDGET))
    path = runtime.settings.sqlite_path
    ledger = TokenLedger(path)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(_ask, runtime.url, streamed)
        deadline = time.monotonic() + 5
        while not ledger.held() and time.monotonic() < deadline:  # reserved: the model is answering
            time.sleep(0.01)
        assert ledger.held(), "the call reserved its budget"
        locked = sqlite3.connect(path, isolation_level=None)
        try:
            locked.execute("BEGIN IMMEDIATE")  # nobody else writes the ledger now
            response = answer.result(timeout=3)
            assert response.status_code == 200, response.text
            assert "answer" in response.text
            assert ledger.held(), "the settlement is still waiting for the lock"
        finally:
            locked.execute("ROLLBACK")
            locked.close()
    assert ledger.settled() == USAGE["total_tokens"]


def test_a_run_does_not_wait_for_its_own_kept_settlement_when_it_calls_the_model_again(
    runtime_factory: RuntimeFactory,
) -> None:
    """Two holds do not fit the budget, a hold and the first call's real usage do: the run's second model
    call (after a tool) reserves only once the first call is settled, though its answer is not sent yet.
    (A hold here is ~4,500 tokens: the agent's 2,000 output tokens and its prompt with seven tool schemas.)"""
    budget = [{"name": "tokens", "scope": "caller", "match": "*", "window_seconds": 86400, "tokens": 8000}]
    runtime = runtime_factory(budgets=json.dumps(budget), max_output_tokens=2000, budget_wait_seconds=5)
    started = time.monotonic()
    response = runtime.invoke("assistant", "calc 2+3")
    assert response.status_code == 200, response.text
    steps = response.json()["steps"]
    assert [step["kind"] for step in steps] == ["model", "tool", "model"], steps
    assert time.monotonic() - started < 2, "the second call did not wait for the first one's hold"
    assert TokenLedger(runtime.settings.sqlite_path).settled() <= 8000  # never past the limit


def test_a_settlement_failing_after_the_answer_is_logged_and_the_answer_stands(
    runtime_factory: RuntimeFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """In line, the ledger's failure replaced the model's answer with a 500 the caller had already paid for."""

    async def failing(self: SqliteLedger, hold: str, spent: Any) -> None:
        await asyncio.sleep(0.1)  # fails well after the answer is sent: the test must wait for the log
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SqliteLedger, "settle", failing)
    runtime = runtime_factory(budgets=json.dumps(BUDGET))
    with caplog.at_level(logging.ERROR, logger="agentstage.budgets"):
        response = runtime.invoke("assistant", "hello")
        assert response.status_code == 200, response.text
        assert response.json()["answer"] == "hello"
        logged = once_settled(  # the settlement runs once the answer is sent: the caller may read first
            lambda: [record.getMessage() for record in caplog.records if record.name == "agentstage.budgets"],
            bool,
        )
    assert logged == [
        "a budget settlement failed after its answer was sent; the hold counts as spent until its lease ends: "
        + "OperationalError: disk I/O error"
    ]
    assert TokenLedger(runtime.settings.sqlite_path).held(), "the hold stands until its lease ends"
