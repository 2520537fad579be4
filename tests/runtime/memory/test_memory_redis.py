"""Redis specifics beyond the contract: the optional conversation expiry and a clear startup failure."""

from __future__ import annotations

import uuid

import pytest
import redis

from agent_runtime.memory.redis import RedisConversationStore

pytestmark = pytest.mark.anyio


async def test_conversations_expire_after_the_ttl_counted_from_the_last_append(redis_url):
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    store = await RedisConversationStore.connect(redis_url, prefix=prefix, ttl_seconds=600)
    try:
        await store.append("c", [{"role": "user", "content": "hi"}])
        ttl = redis.Redis.from_url(redis_url).ttl(f"{prefix}conversation:c")
        assert 590 < ttl <= 600
    finally:
        await store.close()


async def test_an_unreachable_server_fails_at_connect():
    with pytest.raises(redis.ConnectionError):
        await RedisConversationStore.connect("redis://127.0.0.1:1/0")
