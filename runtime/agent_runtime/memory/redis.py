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

import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .base import Conversation, HistoryPage, Message, Owner, VectorHit, VectorItem
from .common import (
    CloseOnce,
    check_count,
    check_embedding,
    check_id,
    check_items,
    check_messages,
    check_owner,
    check_where,
    dump_json,
    page_span,
    position_cursor,
    read_position,
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
    """Per owner: one Redis list of JSON messages per conversation, and an index of the owner's
    conversations (a sorted set by last change, a hash of start times); per tenant, the set of its owners.

    Owners and tenants appear in key names only as SHA-256 digests: any caller id is safe in a key and in a
    Redis Cluster hash tag (``{owner}``, so one owner's keys share a slot and an append is one ``MULTI``),
    and the keys say nothing about who owns them. History written before conversations had owners is under
    ``<prefix>conversation:<id>``, which this store never reads (no caller may see it; it expires with its
    TTL or can be deleted with ``SCAN``/``DEL``).
    """

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX, ttl_seconds: int | None = None):
        """``ttl_seconds``: forget a conversation that has not been appended to for this long (None: never)."""
        self._redis = redis
        self._close = CloseOnce(redis.aclose)
        self._prefix = prefix
        self._ttl = ttl_seconds

    @classmethod
    async def connect(cls, url: str, **options: Any) -> RedisConversationStore:
        return await _ready(cls(_connect(url), **options))

    def _owner_keys(self, owner: Owner) -> tuple[str, str, str]:
        check_owner(owner)
        return self._keys(_digest(owner.tenant, owner.caller))

    def _keys(self, tag: str) -> tuple[str, str, str]:
        """The prefix of an owner's conversation lists, its index by last change and its start times."""
        prefix = self._prefix
        return f"{prefix}conv:{{{tag}}}:", f"{prefix}convs:{{{tag}}}", f"{prefix}conv-started:{{{tag}}}"

    def _tenant_key(self, tenant: str) -> str:
        return f"{self._prefix}tenant-owners:{{{_digest(check_id(tenant, 'tenant'))}}}"

    async def append(self, owner: Owner, conversation_id: str, messages: Sequence[Message]) -> None:
        lists, index, started = self._owner_keys(owner)
        key = lists + check_id(conversation_id, "conversation id")
        encoded = [dump_json(m) for m in check_messages(messages)]
        if not encoded:
            return
        # The tenant's set of owners lives in another slot: added first, so an erasure never misses data.
        await self._redis.sadd(self._tenant_key(owner.tenant), _digest(owner.tenant, owner.caller))
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *encoded)
            pipe.zadd(index, {conversation_id: now}, gt=True)  # adds new ids; never moves one back in time
            pipe.hsetnx(started, conversation_id, repr(now))
            if self._ttl is not None:
                for each in (key, index, started):
                    pipe.expire(each, self._ttl)
            await pipe.execute()

    async def history(self, owner: Owner, conversation_id: str, limit: int | None = None) -> list[Message]:
        lists, _, _ = self._owner_keys(owner)
        key = lists + check_id(conversation_id, "conversation id")
        limit = check_count(limit, "limit", optional=True)
        if limit == 0:
            return []
        raw = await self._redis.lrange(key, 0 if limit is None else -limit, -1)
        return [json.loads(item) for item in raw]

    async def page(
        self, owner: Owner, conversation_id: str, limit: int, before: int | None = None
    ) -> HistoryPage:
        lists, _, _ = self._owner_keys(owner)
        key = lists + check_id(conversation_id, "conversation id")
        # Two commands, one consistent page: the positions below the length read first never change.
        length = await self._redis.llen(key)
        span = page_span(length, limit, before)
        raw = await self._redis.lrange(key, span.start, span.stop - 1) if span else []
        return HistoryPage(span.start, [json.loads(item) for item in raw], length)

    async def conversations(
        self, owner: Owner, limit: int = 100, after: str | None = None
    ) -> list[Conversation]:
        lists, index, started = self._owner_keys(owner)
        limit = check_count(limit, "limit")
        position = read_position(after) if after is not None else None
        found: list[Conversation] = []
        while len(found) < limit:
            entries = await self._listed_after(index, position, limit - len(found))
            if not entries:
                return found
            position = entries[-1]
            async with self._redis.pipeline(transaction=False) as pipe:
                for _, conversation_id in entries:
                    pipe.llen(lists + conversation_id)
                    pipe.hget(started, conversation_id)
                replies = await pipe.execute()
            for (updated, conversation_id), length, began in zip(
                entries, replies[::2], replies[1::2], strict=True
            ):
                if length:
                    cursor = position_cursor(updated, conversation_id)
                    found.append(
                        Conversation(conversation_id, float(began or updated), updated, length, cursor)
                    )
                else:  # the list expired on its own: drop it from the index too
                    await self._redis.zrem(index, conversation_id)
        return found

    async def _listed_after(
        self, index: str, position: tuple[float, str] | None, count: int
    ) -> list[tuple[float, str]]:
        """The next ``count`` (last change, id) of an owner's index after ``position``, in the order a listing
        walks it: by last change, ties by id (as bytes), both descending. A keyset walk, not offsets: an
        entry dropped or moved meanwhile shifts nothing after it."""
        if position is None:
            entries = await self._redis.zrevrange(index, 0, count - 1, withscores=True)
        else:
            changed, last = position
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrevrangebyscore(index, changed, changed, withscores=True)  # the position's ties
                pipe.zrevrangebyscore(index, f"({changed!r}", "-inf", start=0, num=count, withscores=True)
                tied, older = await pipe.execute()
            entries = [entry for entry in tied if entry[0] < last.encode()] + older
        return [(score, member.decode()) for member, score in entries[:count]]

    async def delete(self, owner: Owner, conversation_id: str) -> bool:
        lists, index, started = self._owner_keys(owner)
        key = lists + check_id(conversation_id, "conversation id")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zrem(index, conversation_id)
            pipe.hdel(started, conversation_id)
            deleted, unindexed, _ = await pipe.execute()
        return bool(deleted or unindexed)

    async def delete_tenant(self, tenant: str) -> int:
        tenant_key = self._tenant_key(tenant)
        count = 0
        for tag in await self._redis.smembers(tenant_key):
            lists, index, started = self._keys(tag.decode())
            ids = [member.decode() for member in await self._redis.zrange(index, 0, -1)]
            async with self._redis.pipeline(transaction=True) as pipe:
                for conversation_id in ids:
                    pipe.delete(lists + conversation_id)
                pipe.delete(index, started)
                deleted = await pipe.execute()
            count += sum(deleted[:-1])
            await self._redis.srem(tenant_key, tag)
        return count

    async def close(self) -> None:
        await self._close()


def _digest(*parts: str) -> str:
    """128 bits of SHA-256 over the parts as a JSON list: unambiguous whatever characters they hold."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


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
