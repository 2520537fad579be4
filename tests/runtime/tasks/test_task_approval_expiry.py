"""A parked task waits for a reviewer only ``approval_timeout_seconds``: then it fails with
``approval_expired``, audited as the system's decision, and its callback is delivered. Workers' sweeps expire
it (each task once, a bounded number per sweep, tasks that parked recently hiding none for long), and a
decision arriving too late expires it itself and is refused; a decision and a sweep racing end one way."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest
from memory.conftest import redis_url  # noqa: F401  (the session's throwaway redis-server)
from runtime_helpers import audit_records
from task_hooks import LOOPBACK_CALLBACKS, hook
from task_stack import Stack, called_back, close_stack, open_stack, parked, run_worker_until, task_settings
from test_task_store_contract import store  # noqa: F401  (every store, opened as the contract tests do)

from agent_runtime.bus.base import BusError, OutgoingMessage
from agent_runtime.caller import Caller
from agent_runtime.runner import Checkpoint
from agent_runtime.tasks.cas import update
from agent_runtime.tasks.errors import TaskStateConflict
from agent_runtime.tasks.model import PendingApproval, TaskRecord, TaskState, TaskStore
from agent_runtime.tasks.service import (
    APPROVAL_EXPIRY_LIMIT,
    APPROVAL_EXPIRY_WINDOW,
    TaskService,
    worker_queue,
)
from agent_runtime.testing import ScriptedModelServer
from agent_runtime.trace import TokenUsage

pytestmark = pytest.mark.anyio

ALICE = Caller("alice", frozenset({"user"}))
RITA = Caller("rita", frozenset({"user", "reviewer"}))
OTHER_QUEUE = "another-deployments-tasks"
"""The queue of the tasks parked here: not the sweeping worker's own."""
CHECKPOINT = Checkpoint(agent="payer", step=0, prompt=[], steps=[], usage=TokenUsage()).model_dump(
    mode="json"
)


def timeout_of(stack: Stack) -> float:
    return stack.settings.approval_timeout_seconds


async def park(
    into: TaskStore, requested_at: float, created_at: float | None = None, callback_url: str | None = None
) -> TaskRecord:
    """A task of alice's on :data:`OTHER_QUEUE`, parked on a ``transfer`` call requested at ``requested_at``."""
    at = requested_at if created_at is None else created_at
    record = TaskRecord(
        id=uuid.uuid4().hex,
        agent="payer",
        messages=[{"role": "user", "content": "transfer 5"}],
        queue=OTHER_QUEUE,
        caller="alice",
        callback_url=callback_url,
        created_at=at,
        updated_at=at,
    )
    created, _ = await into.create(record)
    approval = PendingApproval(tool="transfer", call_id="call-1", arguments={}, requested_at=requested_at)
    return await into.replace(
        created.model_copy(
            update={"state": TaskState.AWAITING_APPROVAL, "approval": approval, "checkpoint": CHECKPOINT}
        ),
        expected_version=created.version,
    )


def decisions(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [entry for entry in audit_records(caplog) if entry["event"] == "tool_approval"]


async def test_a_sweep_expires_each_lapsed_approval_once_on_every_store(
    store: TaskStore,  # noqa: F811
    stack: Stack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two workers sweep at once; any worker may expire any task, its callback message going to the task's
    own queue, due a lease later (the expiry is written meanwhile). A task parked within the timeout stays
    in the reviewers' queue."""
    caplog.set_level(logging.INFO, logger="agentstage.audit")
    lease = 0.5
    settings = stack.settings.model_copy(update={"task_lease_seconds": lease})
    tasks = TaskService(store, stack.bus, settings, stack.services.catalog)
    timeout, now = timeout_of(stack), time.time()
    requested_at = now - timeout - 5
    lapsed = await park(store, requested_at, callback_url="https://hooks.example.com/cb")
    recent = await park(store, now - timeout + 600)

    sweeps = await asyncio.gather(tasks.expire_approvals(), tasks.expire_approvals())
    assert [record.id for sweep in sweeps for record in sweep] == [lapsed.id]
    assert await tasks.expire_approvals() == []

    expired = await store.get(lapsed.id)
    assert expired is not None and expired.state is TaskState.FAILED
    assert expired.error is not None and expired.error["code"] == "approval_expired"
    assert (
        "tool 'transfer' within 259200 seconds (AGENTSTAGE_APPROVAL_TIMEOUT_SECONDS)"
        in expired.error["message"]
    )
    assert expired.approval is not None
    assert (expired.approval.decision, expired.approval.reviewer, expired.approval.decided_at) == (
        "expired",
        None,
        requested_at + timeout,
    )
    assert expired.checkpoint is None and expired.finished_at is not None
    assert [record.id for record in await store.awaiting_approval(10)] == [recent.id]
    assert await stack.bus.receive(OTHER_QUEUE, max_messages=10, wait_seconds=0) == []
    await asyncio.sleep(lease)
    due = await stack.bus.receive(OTHER_QUEUE, max_messages=10, wait_seconds=1)
    # One per sweep that found it lapsed: a worker's claim on the callback posts it once whatever arrives.
    assert due and {message.body["task_id"] for message in due} == {lapsed.id}
    assert await stack.bus.receive(worker_queue(stack.settings), max_messages=10, wait_seconds=0) == []
    [decision] = decisions(caplog)
    assert decision | {"args_sha256": None} == {
        "event": "tool_approval",
        "task": lapsed.id,
        "agent": "payer",
        "requester": "alice",
        "tool": "transfer",
        "call_id": "call-1",
        "args_sha256": None,
        "reviewer": None,
        "decided_by": "system",
        "decision": "expired",
    }


async def test_a_sweep_whose_callback_message_fails_leaves_the_task_parked_for_the_next(stack: Stack) -> None:
    """The callback's message goes first: a bus failing the sweep never leaves the task failed with no
    message to post its callback."""
    lapsed_at = time.time() - timeout_of(stack) - 5
    lapsed = await park(stack.tasks.store, lapsed_at, callback_url="https://hooks.example.com/cb")

    async def fail(queue: str, message: OutgoingMessage) -> str:
        raise BusError("the bus is down")

    stack.tasks.bus.send = fail  # type: ignore[method-assign]
    try:
        with pytest.raises(BusError):
            await stack.tasks.expire_approvals()
    finally:
        del stack.tasks.bus.send
    still = await stack.tasks.store.get(lapsed.id)
    assert still is not None and still.state is TaskState.AWAITING_APPROVAL
    assert [record.id for record in await stack.tasks.expire_approvals()] == [lapsed.id]


async def test_a_sweep_expires_at_most_its_bound(stack: Stack) -> None:
    lapsed_at = time.time() - timeout_of(stack) - 5
    lapsed = [await park(stack.tasks.store, lapsed_at) for _ in range(APPROVAL_EXPIRY_LIMIT + 3)]

    first, second = await stack.tasks.expire_approvals(), await stack.tasks.expire_approvals()

    assert (len(first), len(second)) == (APPROVAL_EXPIRY_LIMIT, 3)
    assert sorted(record.id for record in [*first, *second]) == sorted(record.id for record in lapsed)


async def test_a_sweep_of_a_queue_created_within_the_timeout_reads_one_page(
    stack: Stack, loaded: list[TaskRecord]
) -> None:
    """The usual queue: tasks created, and so parked, within the timeout. None behind the first page can
    have lapsed, so a sweep reads that page only, however long the queue."""
    now = time.time()
    for _ in range(3 * APPROVAL_EXPIRY_LIMIT):
        await park(stack.tasks.store, now)
    loaded.clear()
    assert await stack.tasks.expire_approvals() == []
    assert len(loaded) == APPROVAL_EXPIRY_LIMIT


async def test_tasks_created_earlier_but_parked_recently_do_not_hide_a_lapsed_one(
    stack: Stack, loaded: list[TaskRecord]
) -> None:
    """The reviewers' queue is in creation order: tasks created long ago that parked a moment ago sit in
    front of a lapsed one. A sweep reads past them, up to APPROVAL_EXPIRY_WINDOW tasks (fewer than twice that
    many records read); as many as that hide it until one of them leaves the queue."""
    records, now = stack.tasks.store, time.time()
    long_ago = now - timeout_of(stack) - 1000
    front = [await park(records, now, created_at=long_ago + i) for i in range(APPROVAL_EXPIRY_WINDOW - 1)]
    behind = await park(records, now - timeout_of(stack) - 5, created_at=long_ago + 500)

    loaded.clear()
    assert [record.id for record in await stack.tasks.expire_approvals()] == [behind.id]
    assert len(loaded) < 2 * APPROVAL_EXPIRY_WINDOW

    front.append(await park(records, now, created_at=long_ago - 1))
    hidden = await park(records, now - timeout_of(stack) - 5, created_at=long_ago + 600)
    assert await stack.tasks.expire_approvals() == []  # the documented bound
    await stack.tasks.cancel(front[0].id, ALICE)
    assert [record.id for record in await stack.tasks.expire_approvals()] == [hidden.id]


@pytest.mark.parametrize("first", ["decision", "sweep"])
async def test_a_decision_and_a_sweep_racing_end_one_way(
    first: str, stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Both read the parked task before either writes; ``first`` writes first. The sweeping replica counts a
    shorter timeout than the deciding one (as clocks, or a setting being rolled out, may differ), so each
    acts on what it read: the other's compare-and-set loses, re-reads and gives way."""
    caplog.set_level(logging.INFO, logger="agentstage.audit")
    records = stack.tasks.store
    task = await park(records, time.time() - 120, callback_url="https://hooks.example.com/cb")
    sweeper = TaskService(
        records,
        stack.bus,
        stack.settings.model_copy(update={"approval_timeout_seconds": 60}),
        stack.services.catalog,
    )
    winner = TaskState.QUEUED if first == "decision" else TaskState.FAILED
    writes: list[TaskState] = []
    both_read, won = asyncio.Event(), asyncio.Event()
    replace = records.replace

    async def in_order(record: TaskRecord, *, expected_version: int) -> TaskRecord:
        if len(writes) == 2:  # the loser's retry
            return await replace(record, expected_version=expected_version)
        writes.append(record.state)
        if len(writes) == 2:
            both_read.set()
        async with asyncio.timeout(5):  # a writer that never came fails the test rather than hang it
            await both_read.wait()
            if record.state is not winner:
                await won.wait()
        try:
            return await replace(record, expected_version=expected_version)
        finally:
            won.set()

    monkeypatch.setattr(records, "replace", in_order)
    decided, swept = await asyncio.gather(
        stack.tasks.decide(task.id, RITA, approve=True), sweeper.expire_approvals(), return_exceptions=True
    )

    final = await records.get(task.id)
    assert final is not None and sorted(writes) == sorted([TaskState.QUEUED, TaskState.FAILED])
    [decision] = decisions(caplog)
    if first == "decision":
        assert isinstance(decided, TaskRecord) and decided.state is TaskState.QUEUED and swept == []
        assert final.state is TaskState.QUEUED and final.approval is not None
        assert (final.approval.decision, decision["reviewer"]) == ("approved", "rita")
    else:
        assert isinstance(decided, TaskStateConflict) and "its approval expired at" in decided.message
        assert isinstance(swept, list) and [record.id for record in swept] == [task.id]
        assert final.error is not None and final.error["code"] == "approval_expired"
        assert (decision["decision"], decision["decided_by"]) == ("expired", "system")
    # The approved task's message now; an expired one's callback message is due a lease later.
    sent = await stack.bus.receive(OTHER_QUEUE, max_messages=10, wait_seconds=0)
    assert [message.body["task_id"] for message in sent] == ([task.id] if first == "decision" else [])


async def test_a_worker_of_any_queue_expires_a_task_whose_callback_is_then_posted_once(
    task_model: ScriptedModelServer, tmp_path: Any
) -> None:
    """The task parks through a worker; once its approval has lapsed, the sweep of a worker of another queue
    expires it, and a worker of the task's own queue posts its callback, once."""
    stack = await open_stack(task_settings(task_model, tmp_path, **LOOPBACK_CALLBACKS))
    try:
        with hook() as receiver:
            task, _ = await stack.tasks.submit(
                "payer", [{"role": "user", "content": "transfer 5"}], ALICE, callback_url=receiver.url
            )
            waiting = await run_worker_until(stack, task.id, parked)
            assert waiting.approval is not None
            late = waiting.approval.model_copy(update={"requested_at": time.time() - timeout_of(stack) - 5})
            await update(
                stack.tasks.store, task.id, lambda r: r.model_copy(update={"approval": late}), now=time.time()
            )

            elsewhere = stack.worker(task_queue="another-queue")
            running = asyncio.create_task(elsewhere.run())
            await asyncio.sleep(0.5)
            elsewhere.stop()
            await running
            expired = await stack.tasks.store.get(task.id)
            assert expired is not None and expired.state is TaskState.FAILED and receiver.posts == []

            done = await run_worker_until(stack, task.id, called_back)
            await run_worker_until(stack, task.id, lambda r: False, timeout=0.5)  # one more sweep
    finally:
        await close_stack(stack)

    assert done.callback is not None and done.callback["status"] == "delivered"
    assert [(post["id"], post["state"], post["error"]["code"]) for post in receiver.posts] == [
        (task.id, "failed", "approval_expired")
    ]
    assert done.checkpoint is None
