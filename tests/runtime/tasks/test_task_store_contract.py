"""The TaskStore contract, for every store: create with idempotency, compare-and-set, children, the
reviewers' queues (every tenant's, and a tenant's that reads no other tenant's records), the queued tasks a
sweep re-sends, and records stored by an older runtime (fields added since) still loading."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_cosmos_tasks import FakeAccount, FakeTasksContainer
from memory.conftest import redis_url  # noqa: F401  (the session's throwaway redis-server)
from pydantic import Field

from agent_runtime.caller import DEFAULT_TENANT, UNKNOWN_APPLICATION
from agent_runtime.tasks.model import TaskConflict, TaskRecord, TaskState, TaskStore
from agent_runtime.tasks.store_cosmos import CosmosTaskStore
from agent_runtime.tasks.store_redis import RedisTaskStore
from agent_runtime.tasks.store_sqlite import SqliteTaskStore

pytestmark = pytest.mark.anyio


async def flush(url: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    await redis.flushdb()
    await redis.aclose()


@pytest.fixture(params=["sqlite", "redis", "cosmos", "dynamodb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    opened: TaskStore
    if request.param == "sqlite":
        opened = await SqliteTaskStore.open(str(tmp_path / "state.db"))
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
        await flush(url)
        opened = await RedisTaskStore.connect(url)
    elif request.param == "dynamodb":
        from agent_runtime.tasks.store_dynamodb import DynamoDBTaskStore

        opened = await DynamoDBTaskStore.connect(request.getfixturevalue("dynamodb").create("tasks"))
    else:
        opened = CosmosTaskStore(FakeAccount(), FakeTasksContainer())  # type: ignore[arg-type]
    yield opened
    await opened.close()


class StoredBeforeApplications(TaskRecord):
    """A record as a runtime wrote it before tasks carried the caller's application: serialised without it."""

    application: str = Field(default=UNKNOWN_APPLICATION, exclude=True)


def record(
    caller: str = "alice",
    key: str | None = None,
    parent: str | None = None,
    at: float = 0.0,
    application: str = "portal",
    tenant: str | None = None,
) -> TaskRecord:
    now = at or time.time()
    return TaskRecord(
        id=uuid.uuid4().hex,
        agent="payer",
        messages=[{"role": "user", "content": "hi"}],
        queue="q",
        caller=caller,
        application=application,
        tenant=tenant,
        idempotency_key=key,
        parent_id=parent,
        created_at=now,
        updated_at=now,
    )


async def test_create_then_get_round_trips_the_record(store: TaskStore) -> None:
    task = record()
    created, new = await store.create(task)
    assert new and created == task
    assert await store.get(task.id) == task
    assert await store.get("no-such-task") is None
    replaced = await store.replace(task.model_copy(update={"state": TaskState.RUNNING}), expected_version=0)
    assert (await store.get(task.id)) == replaced and replaced.application == "portal"


async def test_a_record_stored_before_applications_loads_as_the_unknown_application(store: TaskStore) -> None:
    legacy = StoredBeforeApplications.model_validate(record(application="portal").model_dump())
    assert "application" not in legacy.model_dump_json()
    await store.create(legacy)
    loaded = await store.get(legacy.id)
    assert loaded is not None and loaded.application == UNKNOWN_APPLICATION
    assert loaded.model_dump(exclude={"application"}) == legacy.model_dump()


async def test_the_same_idempotency_key_returns_the_first_task(store: TaskStore) -> None:
    first, new = await store.create(record(key="k1"))
    again, again_new = await store.create(record(key="k1"))
    assert new and not again_new
    assert again.id == first.id
    other_caller, other_new = await store.create(record(caller="bob", key="k1"))
    assert other_new and other_caller.id != first.id
    unkeyed = [await store.create(record()) for _ in range(2)]
    assert all(new for _, new in unkeyed)


async def test_concurrent_submissions_with_one_key_create_one_task(store: TaskStore) -> None:
    results = await asyncio.gather(*(store.create(record(key="race")) for _ in range(8)))
    assert sum(new for _, new in results) == 1
    assert len({task.id for task, _ in results}) == 1


async def test_replace_is_compare_and_set_on_the_version(store: TaskStore) -> None:
    task, _ = await store.create(record())
    running = await store.replace(task.model_copy(update={"state": TaskState.RUNNING}), expected_version=0)
    assert running.version == 1
    assert (await store.get(task.id)) == running
    with pytest.raises(TaskConflict):
        await store.replace(task.model_copy(update={"state": TaskState.FAILED}), expected_version=0)
    assert (await store.get(task.id)).state is TaskState.RUNNING  # type: ignore[union-attr]


async def test_of_two_writers_of_one_version_exactly_one_wins(store: TaskStore) -> None:
    task, _ = await store.create(record())
    outcomes = await asyncio.gather(
        *(store.replace(task.model_copy(update={"attempts": n}), expected_version=0) for n in (1, 2, 3)),
        return_exceptions=True,
    )
    assert sum(isinstance(outcome, TaskRecord) for outcome in outcomes) == 1
    assert sum(isinstance(outcome, TaskConflict) for outcome in outcomes) == 2


async def test_replace_of_a_missing_task_conflicts(store: TaskStore) -> None:
    with pytest.raises(TaskConflict):
        await store.replace(record(), expected_version=0)


async def test_children_are_listed_oldest_first(store: TaskStore) -> None:
    parent, _ = await store.create(record())
    later, _ = await store.create(record(parent=parent.id, at=200.0))
    earlier, _ = await store.create(record(parent=parent.id, at=100.0))
    await store.create(record(parent="someone-else"))
    assert [child.id for child in await store.children(parent.id)] == [earlier.id, later.id]
    assert await store.children("nobody") == []


async def test_the_reviewers_queue_holds_the_parked_tasks_oldest_first(store: TaskStore) -> None:
    parked = []
    for at in (300.0, 100.0, 200.0):
        task, _ = await store.create(record(at=at))
        parked.append(
            await store.replace(
                task.model_copy(update={"state": TaskState.AWAITING_APPROVAL}), expected_version=0
            )
        )
    other, _ = await store.create(record())
    assert [t.id for t in await store.awaiting_approval(10)] == [parked[1].id, parked[2].id, parked[0].id]
    assert [t.id for t in await store.awaiting_approval(1)] == [parked[1].id]
    resumed = parked[1].model_copy(update={"state": TaskState.QUEUED})
    await store.replace(resumed, expected_version=parked[1].version)
    assert [t.id for t in await store.awaiting_approval(10)] == [parked[2].id, parked[0].id]
    assert other.id not in {t.id for t in await store.awaiting_approval(10)}


async def park(store: TaskStore, at: float, tenant: str | None) -> TaskRecord:
    """A task of ``tenant`` created at ``at``, parked for a reviewer."""
    task, _ = await store.create(record(at=at, tenant=tenant))
    return await store.replace(
        task.model_copy(update={"state": TaskState.AWAITING_APPROVAL}), expected_version=0
    )


async def test_a_tenants_queue_reads_its_own_parked_tasks_only(
    store: TaskStore, loaded: list[TaskRecord]
) -> None:
    """Other tenants' parked tasks, older than all of t-a's, are neither shown to t-a's queue nor read for it:
    the store loads t-a's tasks only, ``limit`` of them. Every tenant's queue stays whole and bounded."""
    others = [await park(store, at=float(at), tenant=("t-b", "t-c", None)[at % 3]) for at in range(1, 31)]
    mine = {at: await park(store, at=at, tenant="t-a") for at in (300.0, 100.0, 200.0)}
    await store.create(record(at=50.0, tenant="t-a"))  # queued, not parked
    resumed = await park(store, at=60.0, tenant="t-a")
    await store.replace(
        resumed.model_copy(update={"state": TaskState.QUEUED}), expected_version=resumed.version
    )

    loaded.clear()
    assert [t.id for t in await store.awaiting_approval(2, tenant="t-a")] == [mine[100.0].id, mine[200.0].id]
    assert {t.id for t in loaded} <= {t.id for t in mine.values()} and len(loaded) <= 2, "read past t-a's"
    loaded.clear()
    assert [t.id for t in await store.awaiting_approval(10, tenant="t-a")] == [
        mine[at].id for at in sorted(mine)
    ]
    assert {t.tenant for t in loaded} == {"t-a"} and len(loaded) <= 10
    loaded.clear()
    assert await store.awaiting_approval(10, tenant="t-nobody") == []
    assert loaded == [], "a tenant with nothing parked reads nothing"
    loaded.clear()
    defaults = await store.awaiting_approval(50, tenant=DEFAULT_TENANT)
    assert [t.id for t in defaults] == [t.id for t in others if t.tenant is None]  # callers without a tenant
    assert {t.tenant for t in loaded} == {None}

    loaded.clear()
    assert [t.id for t in await store.awaiting_approval(5)] == [t.id for t in others[:5]]
    assert len(loaded) <= 5, "every tenant's queue reads one page too"
    everyone = [*others, *(mine[at] for at in sorted(mine))]
    assert [t.id for t in await store.awaiting_approval(100)] == [t.id for t in everyone]

    decided = mine[100.0].model_copy(update={"state": TaskState.FAILED})
    await store.replace(decided, expected_version=mine[100.0].version)
    assert decided.id not in {t.id for t in await store.awaiting_approval(100)}
    assert [t.id for t in await store.awaiting_approval(10, tenant="t-a")] == [mine[200.0].id, mine[300.0].id]


async def test_of_writers_racing_to_park_or_resume_a_task_the_queues_follow_the_one_that_wins(
    store: TaskStore,
) -> None:
    """Parking and un-parking write the queues with the record (Redis: one script; DynamoDB: one
    transaction with the review entry): whichever write wins, both queues agree with the record."""
    queued, _ = await store.create(record(at=1.0, tenant="t-a"))
    parked = await park(store, at=2.0, tenant="t-a")
    for task, state in ((queued, TaskState.AWAITING_APPROVAL), (parked, TaskState.QUEUED)):
        writes = [task.model_copy(update={"state": state, "attempts": attempt}) for attempt in range(3)]
        writes.append(task.model_copy(update={"state": TaskState.RUNNING}))
        outcomes = await asyncio.gather(
            *(store.replace(write, expected_version=task.version) for write in writes), return_exceptions=True
        )
        [won] = [outcome for outcome in outcomes if isinstance(outcome, TaskRecord)]
        assert sum(isinstance(outcome, TaskConflict) for outcome in outcomes) == 3
        assert await listed(store, task.id) == (won.state is TaskState.AWAITING_APPROVAL,) * 2
        await store.replace(
            won.model_copy(update={"state": TaskState.SUCCEEDED}), expected_version=won.version
        )
        assert await listed(store, task.id) == (False, False)


async def listed(store: TaskStore, task_id: str) -> tuple[bool, bool]:
    """Whether every tenant's queue, and t-a's, lists ``task_id``."""
    everyone, tenants = await store.awaiting_approval(10), await store.awaiting_approval(10, tenant="t-a")
    return task_id in {t.id for t in everyone}, task_id in {t.id for t in tenants}


async def rewritten(store: TaskStore, task: TaskRecord, at: float, state: TaskState) -> TaskRecord:
    """``task`` moved to ``state`` by a write at ``at`` (``updated_at`` as every write through ``update``)."""
    return await store.replace(
        task.model_copy(update={"state": state, "updated_at": at}), expected_version=task.version
    )


async def test_the_sweep_lists_a_queues_tasks_queued_and_unwritten_since_a_time(
    store: TaskStore, loaded: list[TaskRecord]
) -> None:
    """What a worker's sweep for tasks whose message was lost reads: its queue's tasks still queued and last
    written before the cut-off, ``limit`` at most, found through an index (no other task is loaded)."""
    orphans = [(await store.create(record(at=at)))[0] for at in (30.0, 10.0, 20.0)]
    touched = await rewritten(store, (await store.create(record(at=10.0)))[0], 500.0, TaskState.QUEUED)
    running = await rewritten(store, (await store.create(record(at=10.0)))[0], 20.0, TaskState.RUNNING)
    parked = await rewritten(store, (await store.create(record(at=5.0)))[0], 6.0, TaskState.AWAITING_APPROVAL)
    resumed = await rewritten(store, parked, 40.0, TaskState.QUEUED)
    done = await rewritten(store, (await store.create(record(at=10.0)))[0], 20.0, TaskState.SUCCEEDED)
    elsewhere, _ = await store.create(record(at=10.0).model_copy(update={"queue": "other"}))

    loaded.clear()
    found = await store.queued_before("q", 100.0, 10)
    assert sorted(t.id for t in found) == sorted(t.id for t in [*orphans, resumed])
    never = {running.id, done.id, elsewhere.id}
    assert not never & {t.id for t in loaded}, "the sweep read tasks that are not queued"
    assert len(await store.queued_before("q", 100.0, 2)) == 2
    assert await store.queued_before("q", 10.0, 10) == []
    assert [t.id for t in await store.queued_before("q", 1000.0, 10) if t.id == touched.id] == [touched.id]
    assert [t.id for t in await store.queued_before("other", 100.0, 10)] == [elsewhere.id]

    claimed = await rewritten(store, orphans[0], 50.0, TaskState.RUNNING)
    assert claimed.id not in {t.id for t in await store.queued_before("q", 100.0, 10)}


async def test_tasks_written_lately_do_not_hide_an_older_orphan_from_the_sweep(store: TaskStore) -> None:
    """The sweep reads ``limit`` tasks at a time: those it re-sent a moment ago (created first, written
    last) must not stand in front of a task created after them but written before the cut-off."""
    for _ in range(3):
        await rewritten(store, (await store.create(record(at=1.0)))[0], 500.0, TaskState.QUEUED)
    orphan, _ = await store.create(record(at=50.0))

    assert [t.id for t in await store.queued_before("q", 100.0, 1)] == [orphan.id]
