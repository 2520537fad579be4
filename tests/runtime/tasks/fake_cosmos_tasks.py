"""An in-memory stand-in for a Cosmos DB container, faithful to what the task store relies on: ids unique
per container (409), ``_etag`` changing on every write and ``IfNotModified`` replaces failing with 412.

No Cosmos DB emulator runs here (it is a container image and there is no Docker), so the task store's
contract suite runs against this fake; the requests it sends are pinned in test_task_store_cosmos.py.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)


class FakeTasksContainer:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[Any, ...]] = []

    async def create_item(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", body["id"]))
        if body["id"] in self.items:
            raise CosmosResourceExistsError(status_code=409, message="conflict")
        return self._store(body)

    async def read_item(self, item: str, partition_key: str) -> dict[str, Any]:
        self.calls.append(("read", item, partition_key))
        assert partition_key == item, "the tasks container is partitioned by /id"
        if item not in self.items:
            raise CosmosResourceNotFoundError(status_code=404, message="not found")
        return copy.deepcopy(self.items[item])

    async def replace_item(
        self, item: str, body: dict[str, Any], *, etag: str | None = None, match_condition: Any = None
    ) -> dict[str, Any]:
        self.calls.append(("replace", item, etag, match_condition))
        if item not in self.items:
            raise CosmosResourceNotFoundError(status_code=404, message="not found")
        if match_condition == MatchConditions.IfNotModified and self.items[item]["_etag"] != etag:
            raise CosmosAccessConditionFailedError(status_code=412, message="precondition failed")
        return self._store(body)

    async def delete_item(self, item: str, partition_key: str) -> None:
        self.calls.append(("delete", item, partition_key))
        if self.items.pop(item, None) is None:
            raise CosmosResourceNotFoundError(status_code=404, message="not found")

    def query_items(self, query: str, parameters: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(("query", query, parameters))
        tasks = [d for d in self.items.values() if d.get("type") == "task"]
        values = {parameter["name"]: parameter["value"] for parameter in parameters}
        if "c.parentId = @parent" in query:
            rows = [{"record": d["record"]} for d in tasks if d.get("parentId") == parameters[0]["value"]]
        elif "c.record.state = 'queued'" in query:
            rows = _queued_before(query, values, [d["record"] for d in tasks])
        else:
            assert "c.record.state = 'awaiting_approval'" in query and query.endswith(
                "ORDER BY c.record.created_at"
            )
            awaiting = [
                d["record"]
                for d in tasks
                if d["record"]["state"] == "awaiting_approval" and _of_tenant(query, values, d["record"])
            ]
            awaiting.sort(key=lambda record: record["created_at"])
            rows = [{"record": record} for record in awaiting[: values["@limit"]]]

        async def iterate() -> AsyncIterator[dict[str, Any]]:
            for row in rows:
                yield copy.deepcopy(row)

        return iterate()

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        stored = {**copy.deepcopy(body), "_etag": uuid.uuid4().hex}
        self.items[body["id"]] = stored
        return copy.deepcopy(stored)


def _queued_before(query: str, values: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweep's query: a queue's queued records last written before ``@before``, oldest write first."""
    assert query == (
        "SELECT TOP @limit c.record FROM c WHERE c.type = 'task' AND c.record.state = 'queued' "
        "AND c.record.queue = @queue AND c.record.updated_at < @before ORDER BY c.record.updated_at"
    )
    queued = [
        record
        for record in records
        if record["state"] == "queued"
        and record["queue"] == values["@queue"]
        and record["updated_at"] < values["@before"]
    ]
    queued.sort(key=lambda record: record["updated_at"])
    return [{"record": record} for record in queued[: values["@limit"]]]


def _of_tenant(query: str, values: dict[str, Any], record: dict[str, Any]) -> bool:
    """The tenant conditions the task store writes: ``c.record.tenant = @tenant``, which
    ``OR NOT IS_STRING(c.record.tenant)`` widens to records without a tenant (null or missing)."""
    if "@tenant" not in values:
        assert "c.record.tenant" not in query
        return True
    tenant = record.get("tenant")
    if "(c.record.tenant = @tenant OR NOT IS_STRING(c.record.tenant))" in query:
        return tenant == values["@tenant"] or not isinstance(tenant, str)
    assert "(c.record.tenant = @tenant)" in query
    return tenant == values["@tenant"]


class FakeAccount:
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1
