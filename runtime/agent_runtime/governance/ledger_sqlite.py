"""The ledger on the embedded SQLite file: each reservation is one ``BEGIN IMMEDIATE`` transaction.

``IMMEDIATE`` takes the database's write lock before the counters are read, so the check and the add cannot
interleave with another writer, in this process or in another process sharing the file (SQLite's lock).

A ledger transaction touches a few rows and, in WAL mode with ``synchronous=NORMAL``, commits without an
fsync: it takes tens of microseconds, less than handing it to a thread and back (which is what it cost
before). So transactions run on the event loop's thread, start to finish without an ``await`` in between,
so two of them never interleave on the connection. When another connection holds the write lock (another
worker process, for microseconds), ``BEGIN`` fails at once (busy timeout 0) and is retried after a short
``asyncio.sleep`` that lets the loop go on, up to :data:`BUSY_TIMEOUT_SECONDS` like SQLite's own busy
timeout: waiting never blocks the loop, and never sleeps the millisecond steps SQLite's busy handler does.
Checkpoints, which fsync, run on a connection and thread of their own (automatic checkpoints are off for
the ledger's connection), never on the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from agent_runtime.governance.ledger import PENDING, Line, Refusal, Usage

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_ledger (key TEXT PRIMARY KEY, spent INTEGER NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS budget_holds (
    key TEXT NOT NULL, hold TEXT NOT NULL, amount INTEGER NOT NULL, lease_until REAL NOT NULL,
    PRIMARY KEY (key, hold)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tool_results (key TEXT PRIMARY KEY, result TEXT, expires_at REAL NOT NULL);
"""

BUSY_TIMEOUT_SECONDS = 5.0
"""How long a transaction waits for another connection's write lock before it fails ("database is locked")."""

BUSY_RETRY_SECONDS = (0.0001, 0.005)
"""First and longest pause between two attempts to take the write lock (doubling in between)."""

CHECKPOINT_EVERY = 500
"""Commits between two checkpoints of the write-ahead log (SQLite's own default is ~1,000 pages)."""


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit. check_same_thread=False: opened on a worker thread, used
    # on the event loop's.
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL cannot corrupt the file; a power cut may only lose the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class _Checkpointer:
    """Checkpoints the write-ahead log on a connection and thread of its own (a checkpoint fsyncs)."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor
        self._running = False

    @classmethod
    async def open(cls, path: str) -> _Checkpointer:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentstage-checkpoint")
        conn = await asyncio.get_running_loop().run_in_executor(executor, _connect, path)
        return cls(conn, executor)

    def start(self) -> None:
        """Checkpoint in the background, unless a checkpoint is running already."""
        if self._running:
            return
        self._running = True
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)
        future.add_done_callback(self._done)

    def _checkpoint(self) -> None:
        # PASSIVE: copy what it can without waiting for anyone; writers keep going meanwhile.
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _done(self, future: asyncio.Future[None]) -> None:
        self._running = False
        if not future.cancelled():
            future.exception()  # a failed checkpoint (busy) is simply tried again next time

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        self._conn.close()


class SqliteLedger:
    def __init__(self, connection: sqlite3.Connection, checkpointer: _Checkpointer | None = None) -> None:
        self._conn = connection
        self._checkpointer = checkpointer
        self._commits = 0

    @classmethod
    async def open(cls, path: str) -> SqliteLedger:
        def connect() -> sqlite3.Connection:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(path)
            conn.executescript(_SCHEMA)
            now = time.time()
            conn.execute("DELETE FROM budget_ledger WHERE expires_at < ?", (now,))
            conn.execute(
                "DELETE FROM budget_holds WHERE key NOT IN (SELECT key FROM budget_ledger) AND lease_until < ?",
                (now,),
            )
            conn.execute("DELETE FROM tool_results WHERE expires_at < ?", (now,))
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute("PRAGMA busy_timeout = 0")
            return conn

        conn = await asyncio.get_running_loop().run_in_executor(None, connect)
        checkpointer = await _Checkpointer.open(path) if path != ":memory:" else None
        return cls(conn, checkpointer)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one write transaction, committed if it returns and rolled back if it raises."""
        await self._begin()
        try:
            result = fn(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY and self._checkpointer is not None:
            self._commits = 0
            self._checkpointer.start()
        return result

    async def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, retried while another connection holds the write lock."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_TIMEOUT_SECONDS
        pause, longest = BUSY_RETRY_SECONDS
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or loop.time() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)

    async def reserve(self, hold: str, lines: Sequence[Line], lease_seconds: float) -> Refusal | list[int]:
        def reserve(conn: sqlite3.Connection) -> Refusal | list[int]:
            now = time.time()
            after: list[int] = []
            for index, line in enumerate(lines):
                usage = _usage(conn, line.key, now)
                if usage.settled + usage.held + line.amount > line.limit:
                    return Refusal(index, usage.settled, usage.held)
                after.append(usage.settled + usage.held + line.amount)
            conn.executemany(
                "INSERT INTO budget_ledger (key, spent, expires_at) VALUES (?, 0, ?) ON CONFLICT (key) DO "
                "UPDATE SET expires_at = excluded.expires_at",
                [(line.key, line.expires_at) for line in lines],
            )
            conn.executemany(
                "INSERT INTO budget_holds (key, hold, amount, lease_until) VALUES (?, ?, ?, ?)",
                [(line.key, hold, line.amount, now + lease_seconds) for line in lines],
            )
            return after

        return await self._run(reserve)

    async def settle(self, hold: str, spent: Sequence[tuple[str, int]]) -> None:
        def settle(conn: sqlite3.Connection) -> None:
            for key, amount in spent:
                if conn.execute("DELETE FROM budget_holds WHERE key = ? AND hold = ?", (key, hold)).rowcount:
                    conn.execute("UPDATE budget_ledger SET spent = spent + ? WHERE key = ?", (amount, key))

        await self._run(settle)

    async def usage(self, keys: Sequence[str]) -> list[Usage]:
        def read(conn: sqlite3.Connection) -> list[Usage]:
            now = time.time()
            return [_usage(conn, key, now) for key in keys]

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
        self._conn.close()
        if self._checkpointer is not None:
            await self._checkpointer.close()


def _usage(conn: sqlite3.Connection, key: str, now: float) -> Usage:
    """A counter's settled and held amounts, after folding holds whose lease passed into settled."""
    expired = conn.execute(
        "SELECT coalesce(sum(amount), 0) FROM budget_holds WHERE key = ? AND lease_until <= ?", (key, now)
    ).fetchone()[0]
    if expired:
        conn.execute("DELETE FROM budget_holds WHERE key = ? AND lease_until <= ?", (key, now))
        conn.execute("UPDATE budget_ledger SET spent = spent + ? WHERE key = ?", (expired, key))
    row = conn.execute(
        "SELECT spent FROM budget_ledger WHERE key = ? AND expires_at > ?", (key, now)
    ).fetchone()
    held = conn.execute("SELECT coalesce(sum(amount), 0) FROM budget_holds WHERE key = ?", (key,)).fetchone()[
        0
    ]
    return Usage(row[0] if row else 0, held)
