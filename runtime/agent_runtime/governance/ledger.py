"""The ledger interface: atomic all-or-nothing holds against limits, and idempotency records.

A counter keeps what calls really spent (*settled*) apart from what calls in flight *hold*: each model call
holds its worst case before it is sent and settles to its actual usage after. A hold has a lease; a call
that dies without settling leaves its hold behind, and once the lease has passed the hold counts as spent
(its usage is unknown, so its worst case is assumed: nothing is ever overspent). Keeping the two apart lets
the budgets tell a budget that is really spent from one that calls in flight hold for a moment.

Backends (:mod:`.ledger_sqlite`, :mod:`.ledger_redis`, :mod:`.ledger_cosmos`, :mod:`.ledger_dynamodb`) make
:meth:`Ledger.reserve` one atomic step, so concurrent requests, in one process or many, can never together
pass a limit: check-then-hold happens inside one SQLite write transaction, one Redis Lua script, one Cosmos
DB transactional batch conditioned on the counters' ETags, or DynamoDB conditional updates (one transaction
when a hold spans several counters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from agent_runtime.errors import ConfigurationError
from agent_runtime.settings_contract import env_name

if TYPE_CHECKING:
    from agent_runtime.memory.base import ConversationStore
    from agent_runtime.settings import Settings


@dataclass(frozen=True)
class Line:
    """Hold ``amount`` on counter ``key`` unless that would pass ``limit``; the counter expires at ``expires_at``."""

    key: str
    limit: int
    amount: int
    expires_at: float


@dataclass(frozen=True)
class Refusal:
    """The first line without room, and what its counter held: settled by finished calls, held by calls in
    flight (a hold whose lease passed counts as settled)."""

    index: int
    settled: int
    held: int


@dataclass(frozen=True)
class Usage:
    """One counter: what finished calls spent, and what calls in flight hold."""

    settled: int
    held: int


PENDING = "\x00pending"
"""What :meth:`Ledger.claim` returns while another request is still running the same tool call."""


class Ledger(Protocol):
    async def reserve(self, hold: str, lines: Sequence[Line], lease_seconds: float) -> Refusal | list[int]:
        """Hold every line's amount under ``hold`` for ``lease_seconds``, or nothing if any line's
        settled + held + amount would pass its limit; the counters' settled + held after holding."""

    async def settle(self, hold: str, spent: Sequence[tuple[str, int]]) -> None:
        """End ``hold`` on each key and add what the call really spent there. A hold whose lease passed was
        already counted as spent in full, and is left so."""

    async def usage(self, keys: Sequence[str]) -> list[Usage]:
        """Each counter's settled and held amounts (0 for unknown or expired keys)."""

    async def claim(self, key: str, ttl_seconds: float) -> str | None:
        """``None`` if this caller now owns ``key``; else the stored result, or :data:`PENDING`."""

    async def complete(self, key: str, result: str, ttl_seconds: float) -> None:
        """Store the result of a claimed key."""

    async def release(self, key: str) -> None:
        """Drop a claim whose work failed, so a retry may run it again."""

    async def close(self) -> None: ...


async def open_ledger(settings: Settings, conversations: ConversationStore | None = None) -> Ledger:
    """The configured ledger; backend modules (and their clients) are imported only when chosen. A SQLite
    ledger in the file of a SQLite ``conversations`` store shares that store's connection on the loop
    (:mod:`agent_runtime.sqlite_loop`)."""
    if settings.budget_backend == "redis":
        if not settings.redis_url:
            raise ConfigurationError(f"{env_name('budget_backend')}=redis needs {env_name('redis_url')}")
        from agent_runtime.governance.ledger_redis import RedisLedger

        return await RedisLedger.connect(settings.redis_url)
    if settings.budget_backend == "cosmos":
        if not settings.cosmos_endpoint:
            raise ConfigurationError(
                f"{env_name('budget_backend')}=cosmos needs {env_name('cosmos_endpoint')}"
            )
        from agent_runtime.governance.ledger_cosmos import CosmosLedger

        return await CosmosLedger.connect(
            settings.cosmos_endpoint,
            settings.cosmos_database,
            container=settings.cosmos_ledger_container,
            client_id=settings.identity_client_id,
        )
    if settings.budget_backend == "dynamodb":
        from agent_runtime.governance.ledger_dynamodb import DynamoDBLedger

        return await DynamoDBLedger.connect(settings.dynamodb_ledger_table, region=settings.aws_region)
    from agent_runtime.governance.ledger_sqlite import SqliteLedger

    shared = None
    if settings.state_backend == "sqlite":  # else the SQLite conversation store is not even imported
        from agent_runtime.memory.sqlite import SqliteConversationStore

        if isinstance(conversations, SqliteConversationStore) and conversations.path == settings.sqlite_path:
            shared = conversations.loop_connection.share()
    return await SqliteLedger.open(settings.sqlite_path, shared)
