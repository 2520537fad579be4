"""The ledger on the embedded SQLite file: each operation is atomic inside a ``BEGIN IMMEDIATE`` transaction.

``IMMEDIATE`` takes the database's write lock before the counters are read, so the check and the add cannot
interleave with another writer, in this process or in another process sharing the file (SQLite's lock).

Operations are *group-committed* on the event loop's thread (:mod:`agent_runtime.sqlite_group_commit`):
the reservations and settlements queued while the loop was busy share one transaction, each in a savepoint
of its own (a reservation is granted or refused as if it ran alone, in submission order), and each caller
is answered once that transaction committed. Two transactions per request on the loop's thread, each
writing its pages to the log, were the ledger's cost under load; one commit now serves every request in
flight. Waiting for another process's write lock never blocks the loop. In the file the SQLite conversation
store writes, the ledger shares that store's connection (:mod:`agent_runtime.sqlite_loop` says why).

The write-ahead log must stay bounded. A passive checkpoint copies what it can but never restarts the log
while other connections keep reading and writing, so under sustained traffic the WAL grew by ~8 KB per
request without end (300 MB in 40 s at 600 requests/s, the database itself 49 KB). A keeper on a
connection and thread of its own (a checkpoint fsyncs; never on the loop) checks the log every second and
runs a *truncating* checkpoint when it passes :data:`WAL_TRUNCATE_BYTES` or when the file has gone quiet:
that briefly holds writers off (their ``BEGIN`` retries, as above) and empties the log. Between those,
passive checkpoints keep the copying incremental. ``journal_size_limit`` caps the file whenever any
connection resets the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from agent_runtime.governance.ledger import PENDING, Line, Refusal, Usage
from agent_runtime.sqlite_file import connect_wal
from agent_runtime.sqlite_group_commit import BUSY_TIMEOUT_SECONDS
from agent_runtime.sqlite_loop import LoopConnection

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_ledger (key TEXT PRIMARY KEY, spent INTEGER NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS budget_holds (
    key TEXT NOT NULL, hold TEXT NOT NULL, amount INTEGER NOT NULL, lease_until REAL NOT NULL,
    PRIMARY KEY (key, hold)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tool_results (key TEXT PRIMARY KEY, result TEXT, expires_at REAL NOT NULL);
"""

CHECKPOINT_EVERY = 500
"""Commits between two passive checkpoints of the write-ahead log (SQLite's own default is ~1,000 pages)."""

WAL_TRUNCATE_BYTES = 16 * 1024 * 1024
"""A log this large is emptied by a truncating checkpoint, however busy the file is."""

WAL_LIMIT_BYTES = 64 * 1024 * 1024
"""``journal_size_limit``: what a reset log is cut back to."""

KEEPER_INTERVAL_SECONDS = 1.0
"""How often the keeper looks at the log."""

SWEEP_EVERY = 60
"""Looks of the keeper between two sweeps of expired rows (:func:`_drop_expired`): a minute."""

SWEEP_BATCH = 1000
"""Rows one statement of a sweep deletes at most: each holds the write lock for a moment only."""

KEEPER_BUSY_MILLISECONDS = 250
"""How long a truncating checkpoint waits for readers and writers to step aside before it gives up (and
is tried again a second later)."""


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit. check_same_thread=False: opened on a worker thread, used
    # on the event loop's.
    conn = connect_wal(path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
    return conn


def _drop_expired(conn: sqlite3.Connection, now: float) -> int:
    """Delete up to :data:`SWEEP_BATCH` rows of each kind that no longer count, and return the most rows one
    statement deleted: holds whose lease ended in a window that ended (a lapsed hold counts as spent until
    then), counters of windows that ended and that no hold names, tool-call records past their time. Each
    statement commits on its own (autocommit mode)."""
    lapsed_holds = (
        "DELETE FROM budget_holds WHERE (key, hold) IN (SELECT h.key, h.hold FROM budget_holds AS h "
        "LEFT JOIN budget_ledger AS l ON l.key = h.key "
        "WHERE h.lease_until < :now AND (l.key IS NULL OR l.expires_at < :now) LIMIT :batch)"
    )
    ended_windows = (
        "DELETE FROM budget_ledger WHERE rowid IN (SELECT rowid FROM budget_ledger WHERE expires_at < :now "
        "AND key NOT IN (SELECT key FROM budget_holds) LIMIT :batch)"
    )
    old_results = (
        "DELETE FROM tool_results WHERE rowid IN "
        "(SELECT rowid FROM tool_results WHERE expires_at < :now LIMIT :batch)"
    )
    values = {"now": now, "batch": SWEEP_BATCH}
    return max(conn.execute(sql, values).rowcount for sql in (lapsed_holds, ended_windows, old_results))


class _WalKeeper:
    """Keeps the write-ahead log of the state file bounded (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor, wal: Path) -> None:
        self._conn = conn
        self._executor = executor
        self._wal = wal
        self.commits = 0
        """Commits since the keeper last looked (:meth:`committed` counts them)."""
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str) -> _WalKeeper:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentstage-wal")
        conn = await asyncio.get_running_loop().run_in_executor(executor, _connect, path)
        conn.execute(f"PRAGMA busy_timeout = {KEEPER_BUSY_MILLISECONDS}")
        keeper = cls(conn, executor, Path(path + "-wal"))
        keeper._task = asyncio.get_running_loop().create_task(keeper._keep(), name="agentstage-wal-keeper")
        return keeper

    def committed(self) -> None:
        """Count one commit (the ledger's writer calls it after each group)."""
        self.commits += 1

    async def _keep(self) -> None:
        """Look at the log every :data:`KEEPER_INTERVAL_SECONDS`, and sweep expired rows every
        :data:`SWEEP_EVERY` looks: a counter of every budget window and a record of every tool call's key
        would otherwise stay until the next start (thousands of rows a day per active caller)."""
        loop = asyncio.get_running_loop()
        looks = 0
        while True:
            await asyncio.sleep(KEEPER_INTERVAL_SECONDS)
            commits, self.commits = self.commits, 0
            mode = self._mode(commits)
            if mode is not None:
                await loop.run_in_executor(self._executor, self._checkpoint, mode)
            looks += 1
            if looks % SWEEP_EVERY == 0:
                await loop.run_in_executor(self._executor, self._sweep)

    def _sweep(self) -> None:
        try:
            while _drop_expired(self._conn, time.time()) == SWEEP_BATCH:
                pass
        except sqlite3.OperationalError:
            pass  # busy: the ledger's writers did not step aside in time; swept again at the next sweep

    def _mode(self, commits: int) -> str | None:
        """TRUNCATE when the log is large or the file went quiet, PASSIVE after many commits, else nothing."""
        try:
            size = self._wal.stat().st_size
        except FileNotFoundError:
            return None
        if size > WAL_TRUNCATE_BYTES or (size and not commits):
            return "TRUNCATE"
        return "PASSIVE" if commits >= CHECKPOINT_EVERY else None

    def _checkpoint(self, mode: str) -> None:
        try:
            self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        except sqlite3.OperationalError:
            pass  # busy: readers or writers did not step aside in time; tried again at the next look

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        self._conn.close()


class SqliteLedger:
    def __init__(self, connection: LoopConnection, keeper: _WalKeeper | None = None) -> None:
        """``connection``: the loop's connection to the file (a share of it, given back on :meth:`close`)."""
        self._connection = connection
        self._keeper = keeper
        self._writer = connection.writer
        self._unobserve = connection.observe(keeper.committed) if keeper is not None else None
        self._closed = False

    @classmethod
    async def open(cls, path: str, shared: LoopConnection | None = None) -> SqliteLedger:
        """The ledger in ``path``; on ``shared`` (a share of the loop's connection to that file, which the
        conversation store opened) rather than a connection of its own."""

        def connect() -> sqlite3.Connection:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(path)
            conn.executescript(_SCHEMA)
            while _drop_expired(conn, time.time()) == SWEEP_BATCH:
                pass
            if shared is not None:
                conn.close()  # the schema is in place: the shared connection does the rest
                return shared.conn
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute("PRAGMA busy_timeout = 0")
            return conn

        try:
            conn = await asyncio.get_running_loop().run_in_executor(None, connect)
            keeper = await _WalKeeper.open(path) if path != ":memory:" else None
        except BaseException:
            if shared is not None:
                await shared.close()
            raise
        if shared is not None:
            conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")  # as on a connection of its own
        return cls(shared or LoopConnection(conn), keeper)

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

        granted = self._writer.submit(reserve)
        try:
            return await asyncio.shield(granted)
        except asyncio.CancelledError:
            # If it is granted for a caller that is gone, give the room back rather than hold it until the
            # lease ends.
            granted.add_done_callback(lambda _: self._release_if_granted(hold, lines, granted))
            raise

    def _release_if_granted(
        self, hold: str, lines: Sequence[Line], granted: asyncio.Future[Refusal | list[int]]
    ) -> None:
        if granted.cancelled() or granted.exception() is not None or isinstance(granted.result(), Refusal):
            return
        if self._writer.closed:
            return  # closing: the hold lapses with its lease, as a crashed process's would
        release = self._writer.submit(partial(_settle, hold=hold, spent=[(line.key, 0) for line in lines]))
        release.add_done_callback(_observed)  # nobody awaits it: if it fails, the hold lapses with its lease

    async def settle(self, hold: str, spent: Sequence[tuple[str, int]]) -> None:
        await self._writer.run(partial(_settle, hold=hold, spent=spent))

    async def usage(self, keys: Sequence[str]) -> list[Usage]:
        def read(conn: sqlite3.Connection) -> list[Usage]:
            now = time.time()
            return [_usage(conn, key, now) for key in keys]

        return await self._writer.run(read)

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

        return await self._writer.run(claim)

    async def complete(self, key: str, result: str, ttl_seconds: float) -> None:
        def store(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE tool_results SET result = ?, expires_at = ? WHERE key = ?",
                (result, time.time() + ttl_seconds, key),
            )

        await self._writer.run(store)

    async def release(self, key: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM tool_results WHERE key = ?", (key,))

        await self._writer.run(delete)

    async def close(self) -> None:
        """Let queued operations commit (waiting for another process's lock is bounded), then disconnect (the
        shared connection stays open for the other store until it closes too). Once: a second close must
        not give back a share that is the other store's."""
        if self._closed:
            return
        self._closed = True
        if self._unobserve is not None:
            self._unobserve()
        await self._connection.close()
        if self._keeper is not None:
            await self._keeper.close()


def _settle(conn: sqlite3.Connection, hold: str, spent: Sequence[tuple[str, int]]) -> None:
    """End ``hold`` on each key with what was spent there; a hold that lapsed was counted in full already."""
    for key, amount in spent:
        if conn.execute("DELETE FROM budget_holds WHERE key = ? AND hold = ?", (key, hold)).rowcount:
            conn.execute("UPDATE budget_ledger SET spent = spent + ? WHERE key = ?", (amount, key))


def _observed(future: asyncio.Future[None]) -> None:
    """Mark a background operation's failure as retrieved (it was best effort)."""
    if not future.cancelled():
        future.exception()


_COUNTER = (
    "SELECT (SELECT spent FROM budget_ledger WHERE key = ?1 AND expires_at > ?2), coalesce(sum(amount), 0),"
    " coalesce(sum(CASE WHEN lease_until <= ?2 THEN amount END), 0) FROM budget_holds WHERE key = ?1"
)
"""A counter's settled amount (none once its window expired), its holds, and those whose lease passed: one
statement, where three were one each (every reservation reads each of its counters)."""


def _usage(conn: sqlite3.Connection, key: str, now: float) -> Usage:
    """A counter's settled and held amounts, after folding holds whose lease passed into settled."""
    spent, held, expired = conn.execute(_COUNTER, (key, now)).fetchone()
    if expired:
        conn.execute("DELETE FROM budget_holds WHERE key = ? AND lease_until <= ?", (key, now))
        conn.execute("UPDATE budget_ledger SET spent = spent + ? WHERE key = ?", (expired, key))
    return Usage(spent + expired if spent is not None else 0, held - expired)
