"""Redis backends (``redis.asyncio``), for Azure Cache for Redis / ElastiCache / any Redis 6+.

Conversations are lists: one ``RPUSH`` per append keeps an append's messages contiguous and in order, even
with many writers, and ``LRANGE`` with a negative start reads the newest ``limit`` messages.

Vectors use plain hashes, not RediSearch: Debian's Redis 7 (and Azure Cache for Redis below the Enterprise
tier) has no search module. Each namespace is two hashes (id -> float32 bytes, id -> JSON document) and a
revision key, all written in one ``MULTI`` transaction. A query compares the revision with the cached
snapshot and scores in numpy (see :mod:`.scoring`), so it is exact and needs one round trip while the
namespace is unchanged. This suits the per-agent memories the runtime keeps (up to some 100k vectors per
namespace); beyond that use the PostgreSQL or Cosmos DB backend, which index vectors on the server.

Keys carry a Redis Cluster hash tag (``{namespace}``) so a namespace's keys share one slot and the
transactions work on clustered deployments too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .base import Message, VectorHit, VectorItem
from .common import (
    CloseOnce,
    check_count,
    check_embedding,
    check_id,
    check_items,
    check_messages,
    check_where,
    dump_json,
)
from .scoring import Document, Snapshot, SnapshotCache, pack_embedding

if TYPE_CHECKING:
    from redis.asyncio import Redis

DEFAULT_PREFIX = "agentstage:"
_Store = TypeVar("_Store", "RedisConversationStore", "RedisVectorStore")


def _connect(url: str) -> Redis:
    from redis.asyncio import Redis  # lazy: only deployments that use Redis pay for the import

    return Redis.from_url(url)


async def _ready(store: _Store) -> _Store:
    """The store once its server answers: fail at startup, not on the first request."""
    try:
        await store._redis.ping()
    except BaseException:
        await store.close()
        raise
    return store


class RedisConversationStore:
    """One Redis list of JSON messages per conversation, with an optional idle expiry."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX, ttl_seconds: int | None = None):
        """``ttl_seconds``: forget a conversation that has not been appended to for this long (None: never)."""
        self._redis = redis
        self._close = CloseOnce(redis.aclose)
        self._prefix = prefix
        self._ttl = ttl_seconds

    @classmethod
    async def connect(cls, url: str, **options: Any) -> RedisConversationStore:
        return await _ready(cls(_connect(url), **options))

    def _key(self, conversation_id: str) -> str:
        return f"{self._prefix}conversation:{check_id(conversation_id, 'conversation id')}"

    async def append(self, conversation_id: str, messages: Sequence[Message]) -> None:
        key = self._key(conversation_id)
        encoded = [dump_json(m) for m in check_messages(messages)]
        if not encoded:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *encoded)
            if self._ttl is not None:
                pipe.expire(key, self._ttl)
            await pipe.execute()

    async def history(self, conversation_id: str, limit: int | None = None) -> list[Message]:
        key = self._key(conversation_id)
        limit = check_count(limit, "limit", optional=True)
        if limit == 0:
            return []
        raw = await self._redis.lrange(key, 0 if limit is None else -limit, -1)
        return [json.loads(item) for item in raw]

    async def delete(self, conversation_id: str) -> None:
        await self._redis.delete(self._key(conversation_id))

    async def close(self) -> None:
        await self._close()


class RedisVectorStore:
    """Per namespace: an embeddings hash, a documents hash and a revision token; exact numpy search."""

    def __init__(self, redis: Redis, dimensions: int, *, prefix: str = DEFAULT_PREFIX):
        self._redis = redis
        self._close = CloseOnce(redis.aclose)
        self._dimensions = dimensions
        self._prefix = prefix
        self._cache = SnapshotCache()

    @classmethod
    async def connect(cls, url: str, dimensions: int, **options: Any) -> RedisVectorStore:
        return await _ready(cls(_connect(url), dimensions, **options))

    def _keys(self, namespace: str) -> tuple[str, str, str]:
        """Embeddings hash, documents hash and revision key; the fixed suffixes keep namespaces apart."""
        base = f"{self._prefix}vectors:{{{check_id(namespace, 'namespace')}}}"
        return f"{base}:embeddings", f"{base}:documents", f"{base}:revision"

    async def upsert(self, namespace: str, items: Sequence[VectorItem]) -> None:
        embeddings_key, documents_key, revision_key = self._keys(namespace)
        checked = check_items(items, self._dimensions)
        if not checked:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(embeddings_key, mapping={item.id: pack_embedding(values) for item, values in checked})
            pipe.hset(
                documents_key,
                mapping={
                    item.id: dump_json({"text": item.text, "metadata": item.metadata}) for item, _ in checked
                },
            )
            pipe.set(revision_key, uuid.uuid4().hex)
            await pipe.execute()

    async def query(
        self,
        namespace: str,
        embedding: Sequence[float],
        top_k: int = 5,
        where: dict[str, Any] | None = None,
    ) -> list[VectorHit]:
        keys = self._keys(namespace)
        values = check_embedding(embedding, self._dimensions)
        top_k = check_count(top_k, "top_k")
        where = check_where(where)
        snapshot = await self._snapshot(namespace, keys)
        return snapshot.search(values, top_k, where) if snapshot else []

    async def _snapshot(self, namespace: str, keys: tuple[str, str, str]) -> Snapshot | None:
        """The namespace's snapshot, reloaded only when its revision changed (None if never written)."""
        embeddings_key, documents_key, revision_key = keys
        revision = await self._redis.get(revision_key)
        if revision is None:
            return None
        cached = self._cache.get(namespace, revision.decode())
        if cached is not None:
            return cached
        # Revision and data in one transaction: the snapshot is exactly the state that revision names.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(revision_key).hgetall(embeddings_key).hgetall(documents_key)
            revision, embeddings, documents = await pipe.execute()
        ids = [id_ for id_ in documents if id_ in embeddings]
        docs = []
        for id_ in ids:
            body = json.loads(documents[id_])
            docs.append(Document(id_.decode(), body["text"], body["metadata"]))
        snapshot = Snapshot((revision or b"").decode(), docs, [embeddings[i] for i in ids], self._dimensions)
        return self._cache.put(namespace, snapshot)

    async def delete(self, namespace: str, ids: Sequence[str]) -> None:
        embeddings_key, documents_key, revision_key = self._keys(namespace)
        ids = [check_id(id_, "item id") for id_ in ids]
        if not ids:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(embeddings_key, *ids).hdel(documents_key, *ids)
            pipe.set(revision_key, uuid.uuid4().hex)
            await pipe.execute()

    async def close(self) -> None:
        self._cache.clear()
        await self._close()
