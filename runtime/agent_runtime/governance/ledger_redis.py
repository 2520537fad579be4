"""The ledger on Redis: each reservation is one Lua script, which Redis runs without interleaving.

A counter is three keys: ``<key>`` (settled, an integer), ``<key>:holds`` (hold -> amount, a hash) and
``<key>:leases`` (hold -> lease end in ms, a sorted set, so holds whose lease passed are found and folded
into settled by range). All keys share the hash tag ``{agentstage-ledger}`` so a reservation spanning
several budgets stays in one slot on Redis Cluster (a script may only touch one slot). Counters carry the
TTL of their window, so old windows disappear by themselves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_runtime.governance.ledger import PENDING, Line, Refusal, Usage

if TYPE_CHECKING:
    from redis.asyncio import Redis

PREFIX = "agentstage:{agentstage-ledger}:"
MAX_CONNECTIONS = 64
"""Connections per process; requests beyond wait for one, rather than storming the server with connects."""

_USAGE = """
local function usage(key, holds, leases, now)
  for _, hold in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
    local amount = redis.call('HGET', holds, hold)
    if amount and redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, amount) end
    redis.call('HDEL', holds, hold)
    redis.call('ZREM', leases, hold)
  end
  local held = 0
  for _, amount in ipairs(redis.call('HVALS', holds)) do held = held + tonumber(amount) end
  return tonumber(redis.call('GET', key) or '0'), held
end
"""
"""Settled and held of one counter (KEYS come in threes: the counter, its holds, its leases), after folding
holds whose lease passed into settled."""

_RESERVE = (
    _USAGE
    + """
local now, hold, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local lines, totals = #KEYS / 3, {0}
for i = 1, lines do
  local settled, held = usage(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], now)
  local limit, amount = tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  if settled + held + amount > limit then return {i, settled, held} end
  totals[i + 1] = settled + held + amount
end
for i = 1, lines do
  local key, holds, leases = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local amount, ttl = ARGV[3 * i + 2], ARGV[3 * i + 3]
  redis.call('SET', key, redis.call('GET', key) or '0', 'PX', ttl)
  redis.call('HSET', holds, hold, amount)
  redis.call('PEXPIRE', holds, ttl)
  redis.call('ZADD', leases, now + lease, hold)
  redis.call('PEXPIRE', leases, ttl)
end
return totals
"""
)

_SETTLE = """
for i = 1, #KEYS / 3 do
  if redis.call('HDEL', KEYS[3 * i - 1], ARGV[1]) == 1 then
    redis.call('ZREM', KEYS[3 * i], ARGV[1])
    if redis.call('EXISTS', KEYS[3 * i - 2]) == 1 then redis.call('INCRBY', KEYS[3 * i - 2], ARGV[i + 1]) end
  end
end
"""

_READ = (
    _USAGE
    + """
local now, result = tonumber(ARGV[1]), {}
for i = 1, #KEYS / 3 do
  local settled, held = usage(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], now)
  result[2 * i - 1], result[2 * i] = settled, held
end
return result
"""
)


def _keys(keys: Sequence[str]) -> list[str]:
    """Each counter's three keys, in the order the scripts take them."""
    return [name for key in keys for name in (PREFIX + key, f"{PREFIX}{key}:holds", f"{PREFIX}{key}:leases")]


class RedisLedger:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._read = redis.register_script(_READ)

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

    async def reserve(self, hold: str, lines: Sequence[Line], lease_seconds: float) -> Refusal | list[int]:
        now = time.time()
        args: list[Any] = [math.floor(now * 1000), hold, math.ceil(lease_seconds * 1000)]
        for line in lines:
            args += [line.limit, line.amount, max(1, math.ceil((line.expires_at - now) * 1000))]
        result = await self._reserve(keys=_keys([line.key for line in lines]), args=args)
        if int(result[0]):
            return Refusal(int(result[0]) - 1, int(result[1]), int(result[2]))
        return [int(value) for value in result[1:]]

    async def settle(self, hold: str, spent: Sequence[tuple[str, int]]) -> None:
        await self._settle(
            keys=_keys([key for key, _ in spent]), args=[hold, *(amount for _, amount in spent)]
        )

    async def usage(self, keys: Sequence[str]) -> list[Usage]:
        values = await self._read(keys=_keys(keys), args=[math.floor(time.time() * 1000)])
        return [
            Usage(int(settled), int(held)) for settled, held in zip(values[::2], values[1::2], strict=True)
        ]

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
