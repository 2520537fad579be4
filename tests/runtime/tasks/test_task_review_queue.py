"""The reviewers' queue costs a reviewer what it is shown: ``GET /v1/approvals`` of a tenant's reviewer reads
that tenant's parked tasks only, however many other tenants park (the store contract pins each store's
side). And the stores that index the queue (Redis, DynamoDB) keep showing tasks an older runtime parked,
before an upgrade or beside it during one."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dynamodb_support import DynamoDB
from memory.conftest import redis_url  # noqa: F401  (the session's throwaway redis-server)
from runtime_helpers import Runtime, RuntimeFactory
from task_effects import AGENTS
from task_stack import task_registry

from agent_runtime.tasks.factory import open_task_store
from agent_runtime.tasks.model import TaskRecord, TaskState, TaskStore
from agent_runtime.tasks.store_dynamodb import DynamoDBTaskStore
from agent_runtime.tasks.store_redis import RedisTaskStore
from agent_runtime.testing import ScriptedModelServer

pytestmark = pytest.mark.anyio

KEYS = {
    "ruth-key": {"caller": "ruth", "roles": ["user", "reviewer"], "tenant": "t-a"},
    "pat-key": {"caller": "pat", "roles": ["reviewer"], "tenant": "platform"},
}
CHECKPOINT = {"parked_call": {"name": "wire", "arguments": json.dumps({"memo": "z" * 50_000})}}
"""What makes a parked record heavy: the run's checkpoint, the parked call's arguments in it."""


def task(at: float, tenant: str | None, caller: str = "mallory") -> TaskRecord:
    return TaskRecord(
        id=uuid.uuid4().hex,
        agent="payer",
        messages=[{"role": "user", "content": "wire it"}],
        queue="q",
        caller=caller,
        tenant=tenant,
        checkpoint=CHECKPOINT,
        created_at=at,
        updated_at=at,
    )


async def park(store: TaskStore, at: float, tenant: str | None, caller: str = "mallory") -> TaskRecord:
    created, _ = await store.create(task(at, tenant, caller))
    return await store.replace(
        created.model_copy(update={"state": TaskState.AWAITING_APPROVAL}), expected_version=0
    )


async def flush(url: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    await redis.flushdb()
    await redis.aclose()


@pytest.fixture(params=["sqlite", "redis", "dynamodb"])
async def api(
    runtime_factory: RuntimeFactory, task_model: ScriptedModelServer, request: pytest.FixtureRequest
) -> Runtime:
    """The runtime, its state (conversations and task records) on each backend that serves tasks here."""
    state: dict[str, str] = {}
    if request.param == "redis":
        state = {"state_backend": "redis", "redis_url": request.getfixturevalue("redis_url")}
        await flush(state["redis_url"])
    elif request.param == "dynamodb":
        dynamodb = request.getfixturevalue("dynamodb")
        state = {
            "state_backend": "dynamodb",
            "dynamodb_conversations_table": dynamodb.create("conversations"),
            "dynamodb_tasks_table": dynamodb.create("tasks"),
        }
    return runtime_factory(
        task_registry(),
        llm_endpoint=task_model.base_url,
        agents=json.dumps(AGENTS),
        api_keys=json.dumps(KEYS),
        platform_tenant="platform",
        **state,
    )


def queue(api: Runtime, key: str, limit: int = 50) -> list[str]:
    response = api.http.get(f"/v1/approvals?limit={limit}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return [view["id"] for view in response.json()["tasks"]]


async def test_a_reviewer_of_a_tenant_with_nothing_parked_reads_no_other_tenants_tasks(
    api: Runtime, loaded: list[TaskRecord]
) -> None:
    """The audit's case: another tenant parks many heavy tasks (here straight into the store; a user of t-b
    through the API and a worker in the audit). t-a's reviewer loads none of them, its own queue reads what
    it shows, and the platform's reviewer reads one page of every tenant's."""
    store = await open_task_store(api.settings)  # the runtime's own
    try:
        flood = [await park(store, at=float(at), tenant="t-b") for at in range(1, 41)]
        loaded.clear()
        assert queue(api, "ruth-key") == []
        assert loaded == [], "t-a's reviewer loaded t-b's parked records"

        own = [await park(store, at=at, tenant="t-a", caller="alice") for at in (500.0, 400.0)]
        loaded.clear()
        assert queue(api, "ruth-key", limit=1) == [own[1].id]
        assert [record.id for record in loaded] == [own[1].id]

        loaded.clear()
        assert queue(api, "pat-key", limit=3) == [record.id for record in flood[:3]]
        assert len(loaded) == 3, "the platform's reviewer reads one page, not every parked task"
        assert queue(api, "pat-key", limit=100) == [record.id for record in [*flood, own[1], own[0]]]
    finally:
        await store.close()


# -- DynamoDB: the index's partitions ------------------------------------------------------------------------

OLDER_QUEUE = {"S": "awaiting_approval"}
"""``awaiting`` of every parked task, whatever its tenant, as runtimes before per-tenant queues wrote it."""


@pytest.fixture
async def dynamodb_store(dynamodb: DynamoDB) -> AsyncIterator[tuple[DynamoDBTaskStore, str, Any]]:
    table = dynamodb.create("tasks")
    store = await DynamoDBTaskStore.connect(table)
    yield store, table, dynamodb.client()
    await store.close()


def item_key(task_id: str, sk: str = "task") -> dict[str, Any]:
    return {"pk": {"S": f"task#{task_id}"}, "sk": {"S": sk}}


async def test_dynamodb_moves_what_an_older_runtime_parked_to_the_tenants_queue(
    dynamodb_store: tuple[DynamoDBTaskStore, str, Any], loaded: list[TaskRecord]
) -> None:
    """A task parked before the upgrade (one partition of every tenant's, no review entry) is shown to its
    tenant's reviewers and the platform's; the first reader moves it, so later reads are the tenant's own."""
    store, table, client = dynamodb_store
    theirs, mine = await park(store, 1.0, "t-b"), await park(store, 2.0, "t-a")
    for parked in (theirs, mine):  # as the older runtime left them
        client.update_item(
            TableName=table,
            Key=item_key(parked.id),
            UpdateExpression="SET awaiting = :older",
            ExpressionAttributeValues={":older": OLDER_QUEUE},
        )
        client.delete_item(TableName=table, Key=item_key(parked.id, "review"))

    assert [t.id for t in await store.awaiting_approval(10, tenant="t-a")] == [mine.id]
    assert client.get_item(TableName=table, Key=item_key(theirs.id))["Item"]["awaiting"] == {
        "S": "awaiting_approval#tenant#t-b"
    }
    assert "Item" in client.get_item(TableName=table, Key=item_key(theirs.id, "review"))
    loaded.clear()
    assert [t.id for t in await store.awaiting_approval(10, tenant="t-a")] == [mine.id]
    assert [t.id for t in loaded] == [mine.id], "once moved, a tenant's queue reads its own tasks only"
    assert [t.id for t in await store.awaiting_approval(10)] == [theirs.id, mine.id]
    assert [t.id for t in await store.awaiting_approval(10, tenant="t-b")] == [theirs.id]
    assert await store.get(mine.id) == mine, "moving a task changes no record"


async def test_dynamodb_drops_the_review_entry_an_older_runtime_leaves_behind(
    dynamodb_store: tuple[DynamoDBTaskStore, str, Any],
) -> None:
    """An older replica decides a task with a PutItem of the task alone: the task leaves its tenant's queue,
    its review entry stays. Neither queue shows the task, and the reader that finds the entry deletes it."""
    store, table, client = dynamodb_store
    decided, waiting = await park(store, 1.0, "t-a"), await park(store, 2.0, "t-a")
    record = decided.model_copy(update={"state": TaskState.QUEUED, "version": decided.version + 1})
    client.put_item(
        TableName=table,
        Item={
            **item_key(decided.id),
            "record": {"S": record.model_dump_json()},
            "version": {"N": str(record.version)},
            "created_at": {"N": str(record.created_at)},
        },
    )
    assert [t.id for t in await store.awaiting_approval(10, tenant="t-a")] == [waiting.id]
    assert [t.id for t in await store.awaiting_approval(1)] == [waiting.id]
    assert "Item" not in client.get_item(TableName=table, Key=item_key(decided.id, "review"))
    assert "Item" in client.get_item(TableName=table, Key=item_key(waiting.id, "review"))


async def test_dynamodb_a_decided_task_leaves_both_queues_with_its_entry(
    dynamodb_store: tuple[DynamoDBTaskStore, str, Any],
) -> None:
    store, table, client = dynamodb_store
    parked = await park(store, 1.0, "t-a")
    resumed = await store.replace(
        parked.model_copy(update={"state": TaskState.QUEUED}), expected_version=parked.version
    )
    assert "Item" not in client.get_item(TableName=table, Key=item_key(parked.id, "review"))
    # Out of the reviewers' queues, into its task queue's queued tasks.
    assert client.get_item(TableName=table, Key=item_key(parked.id))["Item"]["awaiting"] == {"S": "queued#q"}
    assert await store.awaiting_approval(10) == await store.awaiting_approval(10, tenant="t-a") == []
    again = await store.replace(
        resumed.model_copy(update={"state": TaskState.AWAITING_APPROVAL}), expected_version=resumed.version
    )
    assert [t.id for t in await store.awaiting_approval(10)] == [again.id]
    assert [t.id for t in await store.awaiting_approval(10, tenant="t-a")] == [again.id]


# -- Redis: the sorted sets ----------------------------------------------------------------------------------

TAG = "agentstage:{agentstage-tasks}"
OLDER_SET = f"{TAG}:awaiting-approval"
"""The one sorted set of every tenant's parked tasks that runtimes before the per-tenant queues kept."""


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[tuple[RedisTaskStore, Any]]:  # noqa: F811
    from redis.asyncio import Redis

    await flush(redis_url)
    redis = Redis.from_url(redis_url)
    store = await RedisTaskStore.connect(redis_url)
    yield store, redis
    await store.close()
    await redis.aclose()


async def test_redis_files_what_an_older_runtime_parked_in_the_tenants_queue(
    redis_store: tuple[RedisTaskStore, Any], loaded: list[TaskRecord]
) -> None:
    store, redis = redis_store
    theirs, mine = await park(store, 1.0, "t-b"), await park(store, 2.0, "t-a")
    for key in await redis.keys(f"{TAG}:review-queue*"):  # as the older runtime left them
        await redis.delete(key)
    await redis.zadd(OLDER_SET, {theirs.id: theirs.created_at, mine.id: mine.created_at})

    assert [t.id for t in await store.awaiting_approval(10, tenant="t-a")] == [mine.id]
    assert await redis.zcard(OLDER_SET) == 0
    loaded.clear()
    assert [t.id for t in await store.awaiting_approval(10, tenant="t-a")] == [mine.id]
    assert [t.id for t in loaded] == [mine.id], "once filed, a tenant's queue reads its own tasks only"
    assert [t.id for t in await store.awaiting_approval(10, tenant="t-b")] == [theirs.id]
    assert [t.id for t in await store.awaiting_approval(10)] == [theirs.id, mine.id]


async def test_redis_reads_past_tasks_an_older_runtime_decided_and_files_them_out(
    redis_store: tuple[RedisTaskStore, Any], loaded: list[TaskRecord]
) -> None:
    """An older replica's compare-and-set takes a decided task out of its own index only: the task stays
    listed in the queues. A read skips it, still fills its page, and files it out for the next one."""
    store, redis = redis_store
    decided = [await park(store, float(at), "t-a") for at in range(1, 6)]
    waiting = await park(store, 10.0, "t-a")
    for parked in decided:
        record = parked.model_copy(update={"state": TaskState.FAILED, "version": parked.version + 1})
        await redis.hset(
            f"{TAG}:task:{parked.id}", mapping={"record": record.model_dump_json(), "version": 2}
        )

    assert [t.id for t in await store.awaiting_approval(1, tenant="t-a")] == [waiting.id]
    loaded.clear()
    assert [t.id for t in await store.awaiting_approval(1, tenant="t-a")] == [waiting.id]
    assert [t.id for t in loaded] == [waiting.id], "the decided tasks were filed out"
    assert [t.id for t in await store.awaiting_approval(1)] == [waiting.id]
