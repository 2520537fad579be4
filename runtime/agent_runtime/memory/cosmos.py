"""Azure Cosmos DB for NoSQL backends (``azure.cosmos.aio``), authenticated with Entra ID only.

The runtime never holds an account key: it uses the user-assigned managed identity named by
``identity_client_id`` when set, and ``DefaultAzureCredential`` otherwise (``az login`` on a laptop). The
identity needs the *Cosmos DB Built-in Data Contributor* data-plane role.

Containers are opened with ``create_container_if_not_exists`` and the policies below, which is idempotent:
an existing container is only read. Cosmos DB's data-plane RBAC cannot create containers, so in Azure the
infrastructure creates them (with exactly :data:`CONVERSATIONS_CONTAINER` / :data:`VECTORS_CONTAINER`, the
partition keys and the vector policies of :func:`vector_embedding_policy` / :func:`vector_indexing_policy`,
on an account with the ``EnableNoSQLVectorSearch`` capability); if one is missing the error says so.

Conversations: a container with a hierarchical partition key (tenant, caller, conversation id), so each
conversation is one logical partition inside its owner's, and an owner's or a tenant's conversations are a
prefix query away. One document per message, plus a ``head`` document holding the next sequence number and
the conversation's times. An append replaces the head (with its ETag) and creates the messages in one
transactional batch, so concurrent appends never interleave or reuse a number; a lost race is retried.
A container partitioned by ``/conversationId`` alone holds history written before conversations had owners;
the store refuses to open one (it has no owner, so no caller may see it).
Vectors: one document per item, partitioned by namespace, searched with ``VectorDistance``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agent_runtime.cosmos_account import CosmosAccount

from .base import Conversation, HistoryPage, Message, Owner, VectorHit, VectorItem
from .common import (
    DimensionMismatchError,
    check_count,
    check_embedding,
    check_id,
    check_items,
    check_messages,
    check_owner,
    check_where,
    conversation_key,
    page_span,
    position_cursor,
    read_position,
)

if TYPE_CHECKING:
    from azure.cosmos.aio import ContainerProxy

CONVERSATION_PARTITION_KEY = ["/tenant", "/caller", "/conversationId"]
MEMORY_PARTITION_KEY = "/namespace"
"""The containers' layout. Infrastructure (components/azure/state_store.py) creates them to match."""
_HEAD_ID = "head"
_BATCH_LIMIT = 100  # operations per transactional batch (service limit)
_APPEND_ATTEMPTS = 8
_WRITE_CONCURRENCY = 16


def vector_embedding_policy(dimensions: int) -> dict[str, Any]:
    """The vectors container's embedding policy: float32 cosine vectors at ``/embedding``."""
    return {
        "vectorEmbeddings": [
            {
                "path": "/embedding",
                "dataType": "float32",
                "distanceFunction": "cosine",
                "dimensions": dimensions,
            }
        ]
    }


def vector_indexing_policy() -> dict[str, Any]:
    """Index everything but the raw vector; a quantizedFlat index on it, exact enough per namespace partition.

    The vector path is excluded from the regular index because indexing 384+ numbers per document as ordinary
    values costs RU on every write and serves no query.
    """
    return {
        "indexingMode": "consistent",
        "automatic": True,
        "includedPaths": [{"path": "/*"}],
        "excludedPaths": [{"path": '/"_etag"/?'}, {"path": "/embedding/*"}],
        "vectorIndexes": [{"path": "/embedding", "type": "quantizedFlat"}],
    }


def document_id(item_id: str) -> str:
    """A Cosmos DB id for ``item_id``: ids may not contain ``/ \\ ? #``, so they are percent-encoded."""
    return quote(item_id, safe="")


def vector_query(
    embedding: list[float], top_k: int, where: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    """The parameterised search; ``where`` keys are identifiers (checked), written as quoted property names."""
    conditions = "".join(f" AND c.metadata[{json.dumps(key)}] = @where{i}" for i, key in enumerate(where))
    text = (
        "SELECT TOP @top_k c.itemId, c.text, c.metadata, VectorDistance(c.embedding, @embedding) AS score"
        f" FROM c WHERE true{conditions}"
        " ORDER BY VectorDistance(c.embedding, @embedding)"
    )
    parameters = [{"name": "@top_k", "value": top_k}, {"name": "@embedding", "value": embedding}]
    parameters += [{"name": f"@where{i}", "value": value} for i, value in enumerate(where.values())]
    return text, parameters


def history_query(limit: int | None) -> tuple[str, list[dict[str, Any]]]:
    """Newest messages first (so ``TOP`` keeps the newest); the caller reverses them."""
    top = "TOP @limit " if limit is not None else ""
    text = f"SELECT {top}c.message FROM c WHERE c.type = 'message' ORDER BY c.seq DESC"
    return text, [{"name": "@limit", "value": limit}] if limit is not None else []


PAGE_QUERY = (
    "SELECT c.message FROM c WHERE c.type = 'message' AND c.seq >= @start AND c.seq < @stop ORDER BY c.seq"
)
"""One conversation's messages at positions ``@start`` to ``@stop - 1``, oldest first (run in its partition)."""

_HEAD_FIELDS = "c.conversationId, c.createdAt, c.updatedAt, c.next FROM c WHERE c.type = 'head'"
LIST_QUERY = f"SELECT TOP @limit {_HEAD_FIELDS} ORDER BY c.updatedAt DESC"
"""An owner's conversations, most recently changed first (run with the owner's partition key prefix). Cosmos
DB orders ties in no particular order (a second ORDER BY property needs a composite index): see
:meth:`CosmosConversationStore.conversations`."""
OLDER_QUERY = f"SELECT TOP @limit {_HEAD_FIELDS} AND c.updatedAt < @updated ORDER BY c.updatedAt DESC"
"""The same, of those changed before ``@updated``: a listing's page after a cursor."""
TIED_QUERY = f"SELECT {_HEAD_FIELDS} AND c.updatedAt = @updated"
"""An owner's conversations changed at the instant ``@updated`` (ties: usually one)."""
IDS_QUERY = "SELECT c.id, c.caller, c.conversationId, c.type FROM c"
"""Every document's key (run in one conversation's partition, or with a tenant's prefix)."""


async def _bounded(calls: Iterable[Awaitable[Any]]) -> None:
    """Await ``calls`` with at most a few in flight, so a large upsert is not one burst of throttled requests."""
    gate = asyncio.Semaphore(_WRITE_CONCURRENCY)

    async def run(call: Awaitable[Any]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(run(call) for call in calls))


def _document(key: tuple[str, str, str], kind: str, id_: str) -> dict[str, Any]:
    tenant, caller, conversation_id = key
    return {"id": id_, "tenant": tenant, "caller": caller, "conversationId": conversation_id, "type": kind}


class CosmosConversationStore:
    """Messages as documents ``{tenant, caller, conversationId, seq, message}``, one logical partition per
    conversation under its owner's (hierarchical partition key)."""

    def __init__(self, account: CosmosAccount, container: ContainerProxy):
        self._account = account
        self._container = container

    @classmethod
    async def connect(
        cls,
        endpoint: str,
        database: str,
        *,
        client_id: str | None = None,
        container: str,
    ) -> CosmosConversationStore:
        account = CosmosAccount.connect(endpoint, client_id)
        try:
            proxy, properties = await account.container(database, container, CONVERSATION_PARTITION_KEY)
            _check_partitioned_by_owner(properties, container)
        except BaseException:
            await account.close()
            raise
        return cls(account, proxy)

    async def append(self, owner: Owner, conversation_id: str, messages: Sequence[Message]) -> None:
        key = conversation_key(owner, conversation_id)
        checked = check_messages(messages)
        # One batch holds the head and at most 99 messages; a longer append is split, each part atomic.
        for start in range(0, len(checked), _BATCH_LIMIT - 1):
            await self._append_batch(key, checked[start : start + _BATCH_LIMIT - 1])

    async def _append_batch(self, key: tuple[str, str, str], messages: list[Message]) -> None:
        from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosResourceNotFoundError

        for attempt in range(_APPEND_ATTEMPTS):
            try:
                head = await self._container.read_item(_HEAD_ID, partition_key=list(key))
            except CosmosResourceNotFoundError:
                head = None
            now = time.time()
            first = head["next"] if head else 0
            new_head = {
                **_document(key, "head", _HEAD_ID),
                "next": first + len(messages),
                "createdAt": head["createdAt"] if head else now,
                "updatedAt": max(head["updatedAt"], now) if head else now,
            }
            operations: list[tuple[Any, ...]] = [
                ("replace", (_HEAD_ID, new_head), {"if_match_etag": head["_etag"]})
                if head
                else ("create", (new_head,))
            ]
            operations += [
                ("create", ({**_document(key, "message", f"{seq:012d}"), "seq": seq, "message": m},))
                for seq, m in enumerate(messages, start=first)
            ]
            try:
                await self._container.execute_item_batch(operations, partition_key=list(key))
                return
            except CosmosBatchOperationError as error:
                if error.status_code not in (409, 412):  # 409/412: another writer moved the head first
                    raise
            await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise RuntimeError(
            f"could not append to conversation {key[2]!r}: {_APPEND_ATTEMPTS} attempts lost to concurrent writers"
        )

    async def history(self, owner: Owner, conversation_id: str, limit: int | None = None) -> list[Message]:
        key = conversation_key(owner, conversation_id)
        limit = check_count(limit, "limit", optional=True)
        if limit == 0:
            return []
        text, parameters = history_query(limit)
        rows = self._container.query_items(text, parameters=parameters, partition_key=list(key))
        newest_first = [row["message"] async for row in rows]
        return newest_first[::-1]

    async def page(
        self, owner: Owner, conversation_id: str, limit: int, before: int | None = None
    ) -> HistoryPage:
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        key = conversation_key(owner, conversation_id)
        # Two reads, one consistent page: the positions below the length read first never change.
        try:
            length = (await self._container.read_item(_HEAD_ID, partition_key=list(key)))["next"]
        except CosmosResourceNotFoundError:
            length = 0
        span = page_span(length, limit, before)
        if not span:
            return HistoryPage(span.start, [], length)
        parameters = [{"name": "@start", "value": span.start}, {"name": "@stop", "value": span.stop}]
        rows = self._container.query_items(PAGE_QUERY, parameters=parameters, partition_key=list(key))
        return HistoryPage(span.start, [row["message"] async for row in rows], length)

    async def conversations(
        self, owner: Owner, limit: int = 100, after: str | None = None
    ) -> list[Conversation]:
        """Ordered by last change, ties by id, both descending. Cosmos DB returns ties in no particular order,
        so a ``TOP`` can cut an instant's ties anywhere: the ties of a page's last instant are read whole, and
        sorted here, before the page ends, so the next page, after (that instant, the last id), misses none."""
        check_owner(owner)
        limit = check_count(limit, "limit")
        if limit == 0:
            return []
        heads: list[dict[str, Any]] = []
        if after is not None:
            changed, last = read_position(after)
            heads = [
                head
                for head in await self._heads(owner, TIED_QUERY, changed)
                if head["conversationId"] < last
            ]
        if len(heads) < limit:
            wanted = limit - len(heads)
            if after is None:
                older = await self._heads(owner, LIST_QUERY, limit=wanted)
            else:
                older = await self._heads(owner, OLDER_QUERY, changed, limit=wanted)
            if len(older) == wanted:  # the TOP may have cut the last instant's ties: read them whole
                instant = older[-1]["updatedAt"]
                older = [head for head in older if head["updatedAt"] != instant]
                older += await self._heads(owner, TIED_QUERY, instant)
            heads += older
        heads.sort(key=lambda head: (head["updatedAt"], head["conversationId"]), reverse=True)
        return [
            Conversation(
                head["conversationId"],
                head["createdAt"],
                head["updatedAt"],
                head["next"],
                position_cursor(head["updatedAt"], head["conversationId"]),
            )
            for head in heads[:limit]
        ]

    async def _heads(
        self, owner: Owner, query: str, updated: float | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The head documents ``query`` finds among the owner's conversations."""
        parameters = [{"name": "@updated", "value": updated}] if updated is not None else []
        if limit is not None:
            parameters.append({"name": "@limit", "value": limit})
        rows = self._container.query_items(
            query,
            parameters=parameters,
            partition_key=[owner.tenant, owner.caller],  # a prefix: every conversation of this owner
        )
        return [row async for row in rows]

    async def delete(self, owner: Owner, conversation_id: str) -> bool:
        key = conversation_key(owner, conversation_id)
        return await self._delete_where(list(key)) > 0

    async def delete_tenant(self, tenant: str) -> int:
        return await self._delete_where([check_id(tenant, "tenant")])

    async def _delete_where(self, prefix: list[str]) -> int:
        """Delete every document under a partition key (or a prefix of one); how many conversations went."""
        from azure.cosmos.exceptions import CosmosBatchOperationError

        deleted: set[tuple[str, str]] = set()
        while True:
            rows = self._container.query_items(IDS_QUERY, partition_key=prefix)
            by_partition: dict[tuple[str, str], list[str]] = {}
            async for row in rows:
                by_partition.setdefault((row["caller"], row["conversationId"]), []).append(row["id"])
            if not by_partition:
                return len(deleted)
            try:
                for (caller, conversation_id), ids in by_partition.items():
                    partition = [prefix[0], caller, conversation_id]
                    for start in range(0, len(ids), _BATCH_LIMIT):
                        operations = [("delete", (id_,)) for id_ in ids[start : start + _BATCH_LIMIT]]
                        await self._container.execute_item_batch(operations, partition_key=partition)
                    deleted.add((caller, conversation_id))
            except CosmosBatchOperationError as error:
                if error.status_code != 404:  # 404: a concurrent delete got there first; list again
                    raise

    async def close(self) -> None:
        await self._account.close()


def _check_partitioned_by_owner(properties: dict[str, Any], container: str) -> None:
    """Refuse a container laid out before conversations had owners (or for something else)."""
    paths = (properties.get("partitionKey") or {}).get("paths")
    if paths != CONVERSATION_PARTITION_KEY:
        raise RuntimeError(
            f"Cosmos DB container {container} is partitioned by {paths}, not by {CONVERSATION_PARTITION_KEY}: "
            "it holds history written before conversations had owners, which no caller may read. Point "
            "AGENTSTAGE_COSMOS_CONVERSATIONS_CONTAINER at a container partitioned by owner (the state store "
            "component creates one)"
        )


class CosmosVectorStore:
    """Items as documents ``{namespace, itemId, embedding, text, metadata}``, partitioned by namespace."""

    def __init__(self, account: CosmosAccount, container: ContainerProxy, dimensions: int):
        self._account = account
        self._container = container
        self._dimensions = dimensions

    @classmethod
    async def connect(
        cls,
        endpoint: str,
        database: str,
        dimensions: int,
        *,
        client_id: str | None = None,
        container: str,
    ) -> CosmosVectorStore:
        account = CosmosAccount.connect(endpoint, client_id)
        try:
            proxy, properties = await account.container(
                database,
                container,
                MEMORY_PARTITION_KEY,
                vector_embedding_policy=vector_embedding_policy(dimensions),
                indexing_policy=vector_indexing_policy(),
            )
            _check_dimensions(properties, container, dimensions)
        except BaseException:
            await account.close()
            raise
        return cls(account, proxy, dimensions)

    async def upsert(self, namespace: str, items: Sequence[VectorItem]) -> None:
        check_id(namespace, "namespace")
        documents = [
            {
                "id": document_id(item.id),
                "namespace": namespace,
                "itemId": item.id,
                "embedding": values,
                "text": item.text,
                "metadata": item.metadata,
            }
            for item, values in check_items(items, self._dimensions)
        ]
        # Individual upserts, not a batch: a batch is capped at 2 MB, about 60 items of 1536 dimensions.
        await _bounded(self._container.upsert_item(document) for document in documents)

    async def query(
        self,
        namespace: str,
        embedding: Sequence[float],
        top_k: int = 5,
        where: dict[str, Any] | None = None,
    ) -> list[VectorHit]:
        check_id(namespace, "namespace")
        values = check_embedding(embedding, self._dimensions)
        top_k = check_count(top_k, "top_k")
        where = check_where(where)
        if top_k == 0:
            return []
        text, parameters = vector_query(values, top_k, where)
        rows = self._container.query_items(text, parameters=parameters, partition_key=namespace)
        return [
            VectorHit(id=row["itemId"], text=row["text"], score=float(row["score"]), metadata=row["metadata"])
            async for row in rows
        ]

    async def delete(self, namespace: str, ids: Sequence[str]) -> None:
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        check_id(namespace, "namespace")
        ids = [check_id(id_, "item id") for id_ in ids]

        async def delete_one(item_id: str) -> None:
            try:
                await self._container.delete_item(document_id(item_id), partition_key=namespace)
            except CosmosResourceNotFoundError:
                pass  # unknown ids are ignored, as the interface promises

        await _bounded(delete_one(id_) for id_ in ids)

    async def close(self) -> None:
        await self._account.close()


def _check_dimensions(properties: dict[str, Any], container: str, dimensions: int) -> None:
    """Refuse a container whose vector policy was created for another embedding size."""
    embeddings = (properties.get("vectorEmbeddingPolicy") or {}).get("vectorEmbeddings") or []
    policy = next((e for e in embeddings if e.get("path") == "/embedding"), None)
    if policy is None:
        raise RuntimeError(
            f"Cosmos DB container {container} has no vector embedding policy for /embedding; "
            "recreate it with vector_embedding_policy() and vector_indexing_policy()"
        )
    if policy.get("dimensions") != dimensions:
        raise DimensionMismatchError(
            f"Cosmos DB container {container} holds {policy.get('dimensions')}-dimensional vectors but "
            f"AGENTSTAGE_EMBEDDING_DIMENSIONS is {dimensions}"
        )
