"""Tasks replay only their creator's history: a worker's run, and a run resumed after a reviewer's approval,
read and write the conversation of the caller who submitted the task (tenant and id), never another's.
A caller of the same name in another tenant is another caller: it cannot see, cancel or replay into the task.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from task_stack import (
    Stack,
    close_stack,
    open_stack,
    parked,
    run_worker_until,
    run_worker_until_finished,
    task_settings,
)

from agent_runtime.caller import Caller
from agent_runtime.tasks.errors import TaskNotFound
from agent_runtime.tasks.model import TaskState
from agent_runtime.testing import ScriptedModelServer

pytestmark = pytest.mark.anyio

ALICE = Caller("alice", frozenset({"user"}), "t-a")
BOB = Caller("bob", frozenset({"user"}), "t-b")
TWIN = Caller("alice", frozenset({"user"}), "t-b")
RITA = Caller("rita", frozenset({"reviewer"}), "t-b")
"""A reviewer of Bob's tenant (a reviewer acts within its own tenant, unless it is the platform's)."""
RUTH = Caller("ruth", frozenset({"reviewer"}), "t-a")
PLATFORM = Caller("pat", frozenset({"reviewer"}), "platform")
"""A reviewer of the platform's tenant (``AGENTSTAGE_PLATFORM_TENANT``): it reviews for every tenant."""
KEEPER = {"name": "keeper", "instructions": "Keep.", "tools": ["transfer"], "memory": {"history_window": 10}}


@pytest.fixture(params=["sqlite", "dynamodb"])
async def keeper(
    task_model: ScriptedModelServer, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    """Conversations and task records in SQLite, or in fresh DynamoDB tables (the session's moto server)."""
    state: dict[str, str] = {}
    if request.param == "dynamodb":
        dynamodb = request.getfixturevalue("dynamodb")
        state = {
            "state_backend": "dynamodb",
            "dynamodb_conversations_table": dynamodb.create("conversations"),
            "dynamodb_tasks_table": dynamodb.create("tasks"),
        }
    settings = task_settings(
        task_model, tmp_path, agents=json.dumps([KEEPER]), platform_tenant=PLATFORM.tenant, **state
    )
    opened = await open_stack(settings)
    yield opened
    await close_stack(opened)


async def _run(stack: Stack, caller: Caller, text: str, conversation: str) -> str:
    record, _ = await stack.tasks.submit(
        "keeper", [{"role": "user", "content": text}], caller, conversation_id=conversation
    )
    [done] = await run_worker_until_finished(stack, [record.id])
    assert done.state is TaskState.SUCCEEDED, done.error
    return done.id


async def test_a_workers_run_replays_only_the_task_creators_history(
    keeper: Stack, task_model: ScriptedModelServer
) -> None:
    await _run(keeper, ALICE, "alice's secret is 271828", "C")
    for other in (BOB, TWIN):
        task_model.requests.clear()
        await _run(keeper, other, "what was said before?", "C")
        assert "271828" not in json.dumps(task_model.requests), f"{other} replayed Alice's history"

    conversations = keeper.services.conversations
    assert [m["content"] for m in await conversations.history(ALICE.owner, "C")] == [
        "alice's secret is 271828",
        "alice's secret is 271828",
    ], "nothing was appended to Alice's conversation"
    assert len(await conversations.history(BOB.owner, "C")) == 2


async def test_a_run_resumed_after_approval_remembers_for_its_creator(keeper: Stack) -> None:
    await _run(keeper, ALICE, "alice's turn", "C")
    record, _ = await keeper.tasks.submit(
        "keeper", [{"role": "user", "content": "transfer 5"}], BOB, conversation_id="C"
    )
    assert (await run_worker_until(keeper, record.id, parked)).state is TaskState.AWAITING_APPROVAL
    await keeper.tasks.decide(record.id, RITA, approve=True)
    [done] = await run_worker_until_finished(keeper, [record.id])
    assert done.state is TaskState.SUCCEEDED, done.error

    conversations = keeper.services.conversations
    bobs = await conversations.history(BOB.owner, "C")
    assert bobs[0] == {"role": "user", "content": "transfer 5"} and bobs[-1]["role"] == "assistant"
    assert [m["content"] for m in await conversations.history(ALICE.owner, "C")] == [
        "alice's turn",
        "alice's turn",
    ]


async def test_a_same_named_caller_of_another_tenant_is_another_caller(keeper: Stack) -> None:
    record, created = await keeper.tasks.submit(
        "keeper", [{"role": "user", "content": "hello"}], ALICE, idempotency_key="order-1"
    )
    with pytest.raises(TaskNotFound):
        await keeper.tasks.get(record.id, TWIN)
    with pytest.raises(TaskNotFound):
        await keeper.tasks.cancel(record.id, TWIN)
    twins, twin_created = await keeper.tasks.submit(
        "keeper", [{"role": "user", "content": "hello"}], TWIN, idempotency_key="order-1"
    )
    assert created and twin_created and twins.id != record.id, "the same key in another tenant is a new task"
    replayed, again = await keeper.tasks.submit(
        "keeper", [{"role": "user", "content": "hello"}], ALICE, idempotency_key="order-1"
    )
    assert (replayed.id, again) == (record.id, False), "the creator's own retry still replays"


async def test_a_reviewer_reviews_its_own_tenant_only_unless_it_is_the_platforms(keeper: Stack) -> None:
    """A reviewer of t-a neither reads, decides nor queues a task of t-b; t-b's own reviewer and the
    platform's do. The queue holds the reviewer's oldest tasks even behind other tenants' older ones."""
    tenants_a = []
    for index in range(3):
        record, _ = await keeper.tasks.submit(
            "keeper", [{"role": "user", "content": f"transfer {index}"}], ALICE
        )
        tenants_a.append(record.id)
    bobs, _ = await keeper.tasks.submit("keeper", [{"role": "user", "content": "transfer 5"}], BOB)
    for task_id in (*tenants_a, bobs.id):
        assert (await run_worker_until(keeper, task_id, parked)).state is TaskState.AWAITING_APPROVAL

    with pytest.raises(TaskNotFound):
        await keeper.tasks.get(bobs.id, RUTH)
    with pytest.raises(TaskNotFound):
        await keeper.tasks.decide(bobs.id, RUTH, approve=True)
    assert [r.id for r in await keeper.tasks.awaiting_review(RUTH, limit=10)] == tenants_a
    assert [r.id for r in await keeper.tasks.awaiting_review(RITA, limit=1)] == [bobs.id]
    assert [r.id for r in await keeper.tasks.awaiting_review(PLATFORM, limit=10)] == [*tenants_a, bobs.id]
    decided = await keeper.tasks.decide(bobs.id, PLATFORM, approve=True)
    assert decided.state is TaskState.QUEUED
