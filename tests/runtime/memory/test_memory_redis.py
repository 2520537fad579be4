"""Redis specifics beyond the contract: the optional conversation expiry and a clear startup failure."""

from __future__ import annotations

import uuid

import pytest
import redis

from agent_runtime.memory import Owner
from agent_runtime.memory.redis import RedisConversationStore

pytestmark = pytest.mark.anyio


async def test_conversations_expire_after_the_ttl_counted_from_the_last_append(redis_url):
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    store = await RedisConversationStore.connect(redis_url, prefix=prefix, ttl_seconds=600)
    try:
        await store.append(Owner("t-a", "alice"), "c", [{"role": "user", "content": "hi"}])
        client = redis.Redis.from_url(redis_url)
        keys = [key.decode() for key in client.scan_iter(f"{prefix}conv*")]
        assert len(keys) == 3, "the conversation, the owner's index and its start times"
        assert all(590 < client.ttl(key) <= 600 for key in keys)
        names = [key.removeprefix(prefix) for key in keys]
        assert not [name for name in names if "alice" in name or "t-a" in name], (
            "owners appear only as digests"
        )
    finally:
        await store.close()


async def test_a_conversation_that_expired_alone_leaves_the_listing(redis_url):
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    store = await RedisConversationStore.connect(redis_url, prefix=prefix)
    owner = Owner("t-a", "alice")
    try:
        await store.append(owner, "gone", [{"role": "user", "content": "hi"}])
        await store.append(owner, "kept", [{"role": "user", "content": "hi"}])
        client = redis.Redis.from_url(redis_url)
        [gone] = [key for key in client.scan_iter(f"{prefix}conv:*") if key.endswith(b":gone")]
        client.delete(gone)  # as its own expiry would
        assert [c.id for c in await store.conversations(owner)] == ["kept"]
    finally:
        await store.close()


async def test_an_unreachable_server_fails_at_connect():
    with pytest.raises(redis.ConnectionError):
        await RedisConversationStore.connect("redis://127.0.0.1:1/0")
