"""The ledger on Redis: each reservation is one Lua script, which Redis runs without interleaving.

All keys share the hash tag ``{agentstage-ledger}`` so a reservation spanning several budgets stays in one
slot on Redis Cluster (a script may only touch one slot). Counters carry the TTL of their window, so old
windows disappear by themselves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_runtime.governance.ledger import PENDING, Line, Refusal

if TYPE_CHECKING:
    from redis.asyncio import Redis

PREFIX = "agentstage:{agentstage-ledger}:"
MAX_CONNECTIONS = 64
"""Connections per process; requests beyond wait for one, rather than storming the server with connects."""

_RESERVE = """
for i, key in ipairs(KEYS) do
  local spent = tonumber(redis.call('GET', key) or '0')
  if spent + tonumber(ARGV[3 * i - 1]) > tonumber(ARGV[3 * i - 2]) then return {i, spent} end
end
local after = {0}
for i, key in ipairs(KEYS) do
  after[i + 1] = redis.call('INCRBY', key, ARGV[3 * i - 1])
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[3 * i]) end
end
return after
"""

_ADJUST = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, ARGV[i]) end
end
"""


class RedisLedger:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._reserve = redis.register_script(_RESERVE)
        self._adjust = redis.register_script(_ADJUST)

    @classmethod
    async def connect(cls, url: str) -> RedisLedger:
        # lazy: only deployments with a Redis ledger pay for the import
        from redis.asyncio import BlockingConnectionPool, Redis

        pool = BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, decode_responses=True)
        redis = Redis(connection_pool=pool)
        try:
            await redis.ping()
        except BaseException:
            await redis.aclose(close_connection_pool=True)
            raise
        return cls(redis)

    async def reserve(self, lines: Sequence[Line]) -> Refusal | list[int]:
        now = time.time()
        args: list[Any] = []
        for line in lines:
            args += [line.limit, line.amount, max(1, math.ceil((line.expires_at - now) * 1000))]
        result = await self._reserve(keys=[PREFIX + line.key for line in lines], args=args)
        if int(result[0]):
            return Refusal(int(result[0]) - 1, int(result[1]))
        return [int(value) for value in result[1:]]

    async def adjust(self, deltas: Sequence[tuple[str, int]]) -> None:
        await self._adjust(keys=[PREFIX + key for key, _ in deltas], args=[delta for _, delta in deltas])

    async def spent(self, keys: Sequence[str]) -> list[int]:
        values = await self._redis.mget([PREFIX + key for key in keys])
        return [int(value or 0) for value in values]

    async def claim(self, key: str, ttl_seconds: float) -> str | None:
        name = f"{PREFIX}tool:{key}"
        if await self._redis.set(name, PENDING, nx=True, px=math.ceil(ttl_seconds * 1000)):
            return None
        value = await self._redis.get(name)
        return PENDING if value is None else str(value)

    async def complete(self, key: str, result: str, ttl_seconds: float) -> None:
        await self._redis.set(f"{PREFIX}tool:{key}", result, px=math.ceil(ttl_seconds * 1000))

    async def release(self, key: str) -> None:
        await self._redis.delete(f"{PREFIX}tool:{key}")

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)
