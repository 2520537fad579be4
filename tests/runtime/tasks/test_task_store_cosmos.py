"""What the Cosmos DB task store sends: the container it opens, ETag-guarded replaces, the idempotency
claim document. (Its semantics run in the contract suite against the fake container.)"""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core import MatchConditions
from fake_cosmos_tasks import FakeAccount, FakeTasksContainer

from agent_runtime.cosmos_account import CosmosAccount
from agent_runtime.settings import Settings
from agent_runtime.tasks.factory import open_task_store
from agent_runtime.tasks.model import TaskRecord
from agent_runtime.tasks.store_cosmos import CosmosTaskStore, idempotency_document_id

pytestmark = pytest.mark.anyio


def record(key: str | None = None) -> TaskRecord:
    now = time.time()
    return TaskRecord(
        id="t1",
        agent="payer",
        messages=[],
        queue="q",
        caller="alice",
        idempotency_key=key,
        created_at=now,
        updated_at=now,
    )


async def test_the_factory_opens_the_tasks_container_partitioned_by_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[tuple[Any, ...]] = []
    container = FakeTasksContainer()

    class Account(FakeAccount):
        async def container(self, database: str, name: str, partition_key_path: str) -> tuple[Any, dict]:
            opened.append((database, name, partition_key_path))
            return container, {}

    monkeypatch.setattr(CosmosAccount, "connect", classmethod(lambda cls, endpoint, client_id: Account()))
    settings = Settings(
        state_backend="cosmos",
        cosmos_endpoint="https://acct.documents.azure.com",
        cosmos_tasks_container="jobs",
    )
    store = await open_task_store(settings)
    assert isinstance(store, CosmosTaskStore)
    assert opened == [("agentstage", "jobs", "/id")]


async def test_replace_sends_the_read_etag_with_if_not_modified() -> None:
    container = FakeTasksContainer()
    store = CosmosTaskStore(FakeAccount(), container)  # type: ignore[arg-type]
    await store.create(record())
    etag = container.items["t1"]["_etag"]
    await store.replace(record(), expected_version=0)
    assert ("replace", "t1", etag, MatchConditions.IfNotModified) in container.calls
    assert container.items["t1"]["version"] == 1


async def test_an_idempotent_submission_claims_a_deterministic_document_and_loser_cleans_up() -> None:
    container = FakeTasksContainer()
    store = CosmosTaskStore(FakeAccount(), container)  # type: ignore[arg-type]
    first, _ = await store.create(record(key="k"))
    claim = idempotency_document_id("alice", "k")
    assert container.items[claim]["taskId"] == first.id
    second, created = await store.create(record(key="k").model_copy(update={"id": "t2"}))
    assert (second.id, created) == ("t1", False)
    assert "t2" not in container.items  # the loser's task document is gone
    assert await store.get(claim) is None  # a claim is not a task


async def test_other_state_backends_are_refused_with_the_setting_named() -> None:
    from agent_runtime.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="STATE_BACKEND=sqlite, redis, cosmos or dynamodb"):
        await open_task_store(Settings(state_backend="postgres", postgres_dsn="postgresql://x"))
    with pytest.raises(ConfigurationError, match="needs AGENTSTAGE_REDIS_URL"):
        await open_task_store(Settings(state_backend="redis"))
    with pytest.raises(ConfigurationError, match="needs AGENTSTAGE_COSMOS_ENDPOINT"):
        await open_task_store(Settings(state_backend="cosmos"))
