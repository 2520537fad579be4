"""A task recorded but never sent (the API died between writing it and sending its message) still runs:
workers periodically re-send the messages of tasks queued too long, a bounded number per sweep."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from task_stack import Stack, run_worker_until_finished

from agent_runtime.bus.base import OutgoingMessage
from agent_runtime.caller import Caller
from agent_runtime.tasks import service, worker
from agent_runtime.tasks.model import TaskRecord, TaskState
from agent_runtime.tasks.service import worker_queue

pytestmark = pytest.mark.anyio

ALICE = Caller("alice", frozenset({"user"}))


class ApiDied(BaseException):
    """The API process killed in its send: nothing after it runs (not even the send's error handling)."""


async def test_a_task_whose_api_died_before_sending_its_message_runs_after_a_sweep(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "ORPHANED_AFTER_SECONDS", 0.5, raising=False)
    monkeypatch.setattr(worker, "SWEEP_SECONDS", 0.2, raising=False)

    async def die(queue: str, message: OutgoingMessage) -> str:
        raise ApiDied

    stack.tasks.bus.send = die  # type: ignore[method-assign]
    try:
        with pytest.raises(ApiDied):
            await stack.tasks.submit(
                "payer", [{"role": "user", "content": "pay orphan 0"}], ALICE, parent_id="p"
            )
    finally:
        del stack.tasks.bus.send
    [orphan] = await stack.tasks.store.children("p")
    assert orphan.state is TaskState.QUEUED
    assert await stack.bus.receive(worker_queue(stack.settings), wait_seconds=0) == []

    [done] = await run_worker_until_finished(stack, [orphan.id], timeout=8)

    assert done.state is TaskState.SUCCEEDED, done
    assert done.result is not None and done.result["answer"] == "paid orphan"


async def test_a_sweep_re_sends_a_bounded_number_once_per_period_whoever_sweeps(stack: Stack) -> None:
    """Every worker process sweeps: of concurrent sweeps one sends each task, and a task re-sent is not
    re-sent again before another period; a sweep sends at most ORPHAN_SWEEP_LIMIT."""
    queue = worker_queue(stack.settings)
    old = time.time() - service.ORPHANED_AFTER_SECONDS - 10
    orphans = [await create(stack, old) for _ in range(service.ORPHAN_SWEEP_LIMIT + 3)]
    fresh = await create(stack, time.time())
    running = await create(stack, old, TaskState.RUNNING)

    first, second = await asyncio.gather(
        stack.tasks.requeue_orphans(queue), stack.tasks.requeue_orphans(queue)
    )
    third = await stack.tasks.requeue_orphans(queue)

    swept = [record.id for record in [*first, *second, *third]]
    assert len(first) + len(second) == service.ORPHAN_SWEEP_LIMIT
    assert sorted(swept) == sorted(record.id for record in orphans)
    assert await stack.tasks.requeue_orphans(queue) == []
    sent = await stack.bus.receive(queue, max_messages=100, wait_seconds=0)
    assert sorted(message.body["task_id"] for message in sent) == sorted(swept)
    assert {fresh.id, running.id}.isdisjoint(swept)


async def create(stack: Stack, at: float, state: TaskState = TaskState.QUEUED) -> TaskRecord:
    record = TaskRecord(
        id=uuid.uuid4().hex,
        agent="payer",
        state=state,
        messages=[{"role": "user", "content": "pay x 0"}],
        queue=worker_queue(stack.settings),
        caller="alice",
        created_at=at,
        updated_at=at,
    )
    created, _ = await stack.tasks.store.create(record)
    return created


async def test_a_sweep_runs_every_job_whatever_another_does_and_raises_the_first_failure(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sweep, what a worker runs each minute and a serverless stage's timer: a store failing the first
    queue's read must not skip the other queue nor the approvals' expiry; the failure is raised after."""
    queue, other = worker_queue(stack.settings), "delegates-tasks"
    old = time.time() - service.ORPHANED_AFTER_SECONDS - 10
    elsewhere = await create(stack, old)
    stuck = await stack.tasks.store.replace(
        elsewhere.model_copy(update={"queue": other}), expected_version=elsewhere.version
    )
    swept: list[str] = []
    requeue = stack.tasks.requeue_orphans

    async def failing_first(name: str) -> list[TaskRecord]:
        if name == queue:
            raise OSError("the store is unreachable")
        return await requeue(name)

    async def expire() -> list[TaskRecord]:
        swept.append("approvals")
        return []

    monkeypatch.setattr(stack.tasks, "requeue_orphans", failing_first)
    monkeypatch.setattr(stack.tasks, "expire_approvals", expire)

    with pytest.raises(OSError, match="the store is unreachable"):
        await stack.tasks.sweep([queue, other])

    assert swept == ["approvals"]
    [message] = await stack.bus.receive(other, wait_seconds=0)
    assert message.body["task_id"] == stuck.id
