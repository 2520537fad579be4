"""The ledger interface: atomic all-or-nothing reservations against limits, and idempotency records.

Backends (:mod:`.ledger_sqlite`, :mod:`.ledger_redis`) make :meth:`Ledger.reserve` one atomic step, so
concurrent requests, in one process or many, can never together pass a limit: check-then-add happens
inside one SQLite write transaction or one Redis Lua script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agent_runtime.errors import ConfigurationError
from agent_runtime.settings import Settings, env_name


@dataclass(frozen=True)
class Line:
    """Reserve ``amount`` on counter ``key`` unless that would pass ``limit``; the counter expires at ``expires_at``."""

    key: str
    limit: int
    amount: int
    expires_at: float


@dataclass(frozen=True)
class Refusal:
    """The first line without room, and what its counter held."""

    index: int
    spent: int


PENDING = "\x00pending"
"""What :meth:`Ledger.claim` returns while another request is still running the same tool call."""


class Ledger(Protocol):
    async def reserve(self, lines: Sequence[Line]) -> Refusal | list[int]:
        """Add every amount, or none if any line would pass its limit; the counters after adding."""

    async def adjust(self, deltas: Sequence[tuple[str, int]]) -> None:
        """Add (signed) deltas to existing counters: settling a reservation with the actual usage."""

    async def spent(self, keys: Sequence[str]) -> list[int]:
        """The counters' values (0 for unknown or expired keys)."""

    async def claim(self, key: str, ttl_seconds: float) -> str | None:
        """``None`` if this caller now owns ``key``; else the stored result, or :data:`PENDING`."""

    async def complete(self, key: str, result: str, ttl_seconds: float) -> None:
        """Store the result of a claimed key."""

    async def release(self, key: str) -> None:
        """Drop a claim whose work failed, so a retry may run it again."""

    async def close(self) -> None: ...


async def open_ledger(settings: Settings) -> Ledger:
    """The configured ledger; backend modules (and the redis client) are imported only when chosen."""
    if settings.budget_backend == "redis":
        if not settings.redis_url:
            raise ConfigurationError(f"{env_name('budget_backend')}=redis needs {env_name('redis_url')}")
        from agent_runtime.governance.ledger_redis import RedisLedger

        return await RedisLedger.connect(settings.redis_url)
    from agent_runtime.governance.ledger_sqlite import SqliteLedger

    return await SqliteLedger.open(settings.sqlite_path)
