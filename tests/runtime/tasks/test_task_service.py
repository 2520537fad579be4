"""TaskService rules the API does not show directly: a lost send, re-sends on replay, wait deadlines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from task_stack import Stack

from agent_runtime.bus.base import BusError
from agent_runtime.bus.sqlite import SqliteBus
from agent_runtime.caller import Caller
from agent_runtime.tasks.model import TaskState
from agent_runtime.tasks.service import worker_queue

pytestmark = pytest.mark.anyio

ALICE = Caller("alice", frozenset({"user"}))
MESSAGES = [{"role": "user", "content": "pay r 0"}]


def broken_bus(tmp_path: Path) -> SqliteBus:
    directory = tmp_path / "bus-is-a-directory"
    directory.mkdir(exist_ok=True)
    return SqliteBus(directory)


async def queued_messages(stack: Stack) -> int:
    return len(await stack.bus.receive(worker_queue(stack.settings), max_messages=10, wait_seconds=0))


async def test_a_lost_send_with_a_key_keeps_the_task_for_the_retry(stack: Stack, tmp_path: Path) -> None:
    working, stack.tasks.bus = stack.tasks.bus, broken_bus(tmp_path)
    with pytest.raises(BusError, match="retry with the same Idempotency-Key"):
        await stack.tasks.submit("payer", MESSAGES, ALICE, idempotency_key="k")
    stack.tasks.bus = working
    record, created = await stack.tasks.submit("payer", MESSAGES, ALICE, idempotency_key="k")
    assert not created and record.state is TaskState.QUEUED
    assert await queued_messages(stack) == 1  # the retry sent the message the first attempt lost


async def test_a_lost_send_without_a_key_fails_the_task(stack: Stack, tmp_path: Path) -> None:
    stack.tasks.bus = broken_bus(tmp_path)
    with pytest.raises(BusError):
        await stack.tasks.submit("payer", MESSAGES, ALICE, parent_id="lost")
    stack.tasks.bus = stack.bus
    [orphan] = await stack.tasks.store.children("lost")  # nobody could retry into it: it must not stay queued
    assert orphan.state is TaskState.FAILED
    assert orphan.error is not None and orphan.error["code"] == "bus_unavailable"


async def test_wait_returns_the_records_as_they_are_at_the_deadline(stack: Stack) -> None:
    record, _ = await stack.tasks.submit("payer", MESSAGES, ALICE, parent_id="parent-1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    [waited] = await stack.tasks.wait([record.id], started + 0.2)
    assert waited.state is TaskState.QUEUED
    assert 0.2 <= loop.time() - started < 1.5
    assert [child.id for child in await stack.tasks.store.children("parent-1")] == [record.id]
