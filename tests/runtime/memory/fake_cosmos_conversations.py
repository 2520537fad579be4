"""An in-memory stand-in for the Cosmos DB conversations container, faithful to what the store relies on:
a hierarchical partition key (documents unique per partition, queries scoped by a full key or a prefix),
transactional batches that apply all or nothing (409 on a duplicate create, 412 on a stale ETag, 404 on a
missing item), and ``_etag`` changing on every write.

No Cosmos DB emulator runs here (it is a container image and there is no Docker), so the conversation
contract suite runs against this fake. It evaluates the store's own queries (``history_query``,
``LIST_QUERY``, ``OLDER_QUERY``, ``TIED_QUERY``, ``IDS_QUERY``) by their meaning; their text is pinned in test_memory_cosmos.py.
"""

from __future__ import annotations

import asyncio
import copy
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosResourceNotFoundError

from agent_runtime.memory.cosmos import (
    CONVERSATION_PARTITION_KEY,
    IDS_QUERY,
    LIST_QUERY,
    OLDER_QUERY,
    PAGE_QUERY,
    TIED_QUERY,
    history_query,
)

Key = tuple[str, ...]


class FakeConversationsContainer:
    def __init__(self) -> None:
        self.documents: dict[tuple[Key, str], dict[str, Any]] = {}

    async def read_item(self, item: str, partition_key: list[str]) -> dict[str, Any]:
        await asyncio.sleep(0)  # let concurrent appends interleave between the read and the batch
        document = self.documents.get((_full(partition_key), item))
        if document is None:
            raise CosmosResourceNotFoundError(status_code=404, message="not found")
        return copy.deepcopy(document)

    async def execute_item_batch(self, operations: list[tuple[Any, ...]], partition_key: list[str]) -> list:
        await asyncio.sleep(0)
        key = _full(partition_key)
        staged = dict(self.documents)
        for operation in operations:
            kind, args, options = operation if len(operation) == 3 else (*operation, {})
            if kind == "create":
                (body,) = args
                self._check_partition(body, key)
                if (key, body["id"]) in staged:
                    raise _batch_error(409)
                staged[(key, body["id"])] = _stored(body)
            elif kind == "replace":
                item, body = args
                current = staged.get((key, item))
                if current is None:
                    raise _batch_error(404)
                if options.get("if_match_etag") not in (None, current["_etag"]):
                    raise _batch_error(412)
                staged[(key, item)] = _stored(body)
            elif kind == "delete":
                (item,) = args
                if staged.pop((key, item), None) is None:
                    raise _batch_error(404)
            else:
                raise AssertionError(f"operation {kind!r} is not one the store uses")
        self.documents = staged
        return []

    def query_items(
        self,
        query: str,
        parameters: list[dict[str, Any]] | None = None,
        partition_key: list[str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        assert partition_key, "every query of the store is scoped to a partition key or a prefix of one"
        prefix = tuple(partition_key)
        scoped = [doc for (key, _), doc in self.documents.items() if key[: len(prefix)] == prefix]
        values = {p["name"]: p["value"] for p in parameters or ()}
        if query == IDS_QUERY:
            rows = [
                {name: doc[name] for name in ("id", "caller", "conversationId", "type")} for doc in scoped
            ]
        elif query in (LIST_QUERY, OLDER_QUERY, TIED_QUERY):
            rows = _heads(query, values, [doc for doc in scoped if doc["type"] == "head"])
        elif query == PAGE_QUERY:
            assert len(prefix) == len(CONVERSATION_PARTITION_KEY), "a page reads one conversation"
            span = range(values["@start"], values["@stop"])
            messages = sorted(
                (d for d in scoped if d["type"] == "message" and d["seq"] in span), key=lambda d: d["seq"]
            )
            rows = [{"message": doc["message"]} for doc in messages]
        else:
            assert len(prefix) == len(CONVERSATION_PARTITION_KEY), "history reads one conversation"
            limit = values.get("@limit")
            assert query == history_query(limit)[0], query
            messages = sorted(
                (d for d in scoped if d["type"] == "message"), key=lambda d: d["seq"], reverse=True
            )
            rows = [{"message": doc["message"]} for doc in messages[:limit]]

        async def iterate() -> AsyncIterator[dict[str, Any]]:
            for row in rows:
                yield copy.deepcopy(row)

        return iterate()

    @staticmethod
    def _check_partition(body: dict[str, Any], key: Key) -> None:
        assert (body["tenant"], body["caller"], body["conversationId"]) == key, (
            "a document outside its partition"
        )


def _heads(query: str, values: dict[str, Any], heads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listing queries' rows. Cosmos DB orders equal ``ORDER BY`` values in no particular order, so ties
    are shuffled: a store that relied on an order among them would fail here."""
    if query == OLDER_QUERY:
        heads = [head for head in heads if head["updatedAt"] < values["@updated"]]
    elif query == TIED_QUERY:
        heads = [head for head in heads if head["updatedAt"] == values["@updated"]]
    random.shuffle(heads)
    if query != TIED_QUERY:
        heads = sorted(heads, key=lambda head: head["updatedAt"], reverse=True)[: values["@limit"]]
    return [
        {name: head[name] for name in ("conversationId", "createdAt", "updatedAt", "next")} for head in heads
    ]


def _full(partition_key: list[str]) -> Key:
    assert len(partition_key) == len(CONVERSATION_PARTITION_KEY), "point operations need the full key"
    return tuple(partition_key)


def _stored(body: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(body), "_etag": uuid.uuid4().hex}


def _batch_error(status: int) -> CosmosBatchOperationError:
    return CosmosBatchOperationError(
        error_index=0, headers={}, status_code=status, message="", operation_responses=[]
    )


class FakeAccount:
    """What ``CosmosAccount`` gives the store: a client whose database opens the one shared container."""

    def __init__(self, container: FakeConversationsContainer, paths: list[str]) -> None:
        self.container, self.paths = container, paths
        self.client = self

    def get_database_client(self, name: str) -> FakeAccount:
        return self

    async def create_container_if_not_exists(self, **kwargs: Any) -> tuple[FakeConversationsContainer, dict]:
        return self.container, {
            "id": kwargs["id"],
            "partitionKey": {"paths": self.paths, "kind": "MultiHash"},
        }

    async def close(self) -> None:
        """The fake holds no connections."""
