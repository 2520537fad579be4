"""The ledger on the embedded SQLite file: each reservation is one ``BEGIN IMMEDIATE`` transaction.

``IMMEDIATE`` takes the database's write lock before the counters are read, so the check and the add cannot
interleave with another writer, in this process (one connection, one thread) or in another process sharing
the file (SQLite's lock, waited for up to the busy timeout).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from agent_runtime.governance.ledger import PENDING, Line, Refusal
from agent_runtime.sqlite_transaction import in_transaction

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_ledger (key TEXT PRIMARY KEY, spent INTEGER NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tool_results (key TEXT PRIMARY KEY, result TEXT, expires_at REAL NOT NULL);
"""


class SqliteLedger:
    def __init__(self, connection: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = connection
        self._executor = executor

    @classmethod
    async def open(cls, path: str) -> SqliteLedger:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentstage-ledger")

        def connect() -> sqlite3.Connection:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=5.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            now = time.time()
            conn.execute("DELETE FROM budget_ledger WHERE expires_at < ?", (now,))
            conn.execute("DELETE FROM tool_results WHERE expires_at < ?", (now,))
            return conn

        return cls(await asyncio.get_running_loop().run_in_executor(executor, connect), executor)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, fn)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return in_transaction(self._conn, fn)

    async def reserve(self, lines: Sequence[Line]) -> Refusal | list[int]:
        def reserve(conn: sqlite3.Connection) -> Refusal | list[int]:
            now = time.time()
            after: list[int] = []
            for index, line in enumerate(lines):
                row = conn.execute(
                    "SELECT spent FROM budget_ledger WHERE key = ? AND expires_at > ?", (line.key, now)
                ).fetchone()
                spent = row[0] if row else 0
                if spent + line.amount > line.limit:
                    return Refusal(index, spent)
                after.append(spent + line.amount)
            conn.executemany(
                "INSERT INTO budget_ledger (key, spent, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO "
                "UPDATE SET spent = excluded.spent, expires_at = excluded.expires_at",
                [(line.key, total, line.expires_at) for line, total in zip(lines, after, strict=True)],
            )
            return after

        return await self._run(reserve)

    async def adjust(self, deltas: Sequence[tuple[str, int]]) -> None:
        def adjust(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE budget_ledger SET spent = spent + ? WHERE key = ?", [(d, k) for k, d in deltas]
            )

        await self._run(adjust)

    async def spent(self, keys: Sequence[str]) -> list[int]:
        def read(conn: sqlite3.Connection) -> list[int]:
            now = time.time()
            rows = [
                conn.execute(
                    "SELECT spent FROM budget_ledger WHERE key = ? AND expires_at > ?", (key, now)
                ).fetchone()
                for key in keys
            ]
            return [row[0] if row else 0 for row in rows]

        return await self._run(read)

    async def claim(self, key: str, ttl_seconds: float) -> str | None:
        def claim(conn: sqlite3.Connection) -> str | None:
            now = time.time()
            row = conn.execute(
                "SELECT result FROM tool_results WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            if row is not None:
                return row[0] if row[0] is not None else PENDING
            conn.execute(
                "INSERT OR REPLACE INTO tool_results (key, result, expires_at) VALUES (?, NULL, ?)",
                (key, now + ttl_seconds),
            )
            return None

        return await self._run(claim)

    async def complete(self, key: str, result: str, ttl_seconds: float) -> None:
        def store(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE tool_results SET result = ?, expires_at = ? WHERE key = ?",
                (result, time.time() + ttl_seconds, key),
            )

        await self._run(store)

    async def release(self, key: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM tool_results WHERE key = ?", (key,))

        await self._run(delete)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=False)
