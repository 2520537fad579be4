"""The embedded message bus: queues in one SQLite file, the local default (no server, durable, multi-process).

Every message, live or dead-lettered, is a row of ``bus_messages``. A receive leases rows in one
``BEGIN IMMEDIATE`` transaction: it takes the file's write lock before reading, so two receivers — in this
process or in another worker process sharing the file — can never lease the same row. A lease is
``visible_at`` pushed into the future plus a fresh random token; every later operation on the message
names the token, so once the lease has passed to another receiver the old holder's ``complete`` matches
no row and raises :class:`LeaseLost` instead of deleting work someone else is doing. A holder whose lease
expired but was not taken by anyone may still complete it, as on SQS and Storage Queues.

Receivers long-poll with short pauses; a send wakes the receivers of its own process at once. Like the
embedded memory store, each bus owns one connection used from one thread, so the event loop never waits
on disk or on another process's lock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from agent_runtime.sqlite_file import connect_wal
from agent_runtime.sqlite_transaction import in_transaction

from .base import (
    DEFAULT_MAX_DELIVERY_COUNT,
    DEFAULT_VISIBILITY_SECONDS,
    MAX_DELIVERY_COUNT_EXCEEDED,
    BusError,
    DeadLetter,
    LeaseLost,
    OutgoingMessage,
    ReceivedMessage,
)
from .common import check_headers, encode_json, long_poll, new_message_id

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_messages (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lease TEXT,
    dead_reason TEXT
);
CREATE INDEX IF NOT EXISTS bus_messages_ready ON bus_messages (queue, visible_at) WHERE dead_reason IS NULL;
CREATE INDEX IF NOT EXISTS bus_messages_dead ON bus_messages (queue, seq) WHERE dead_reason IS NOT NULL;
"""

_READY = "queue = ? AND dead_reason IS NULL AND visible_at <= ?"


@dataclasses.dataclass(frozen=True)
class _Lease:
    seq: int
    token: str


class SqliteBus:
    """Queues in the SQLite file at ``path`` (created on first use, with its directory).

    A message is delivered at most ``max_delivery_count`` times; the receive that would deliver it once
    more moves it to the dead letters instead.
    """

    name = "sqlite"

    def __init__(self, path: str | Path, *, max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT) -> None:
        if max_delivery_count < 1:
            raise ValueError("max_delivery_count must be at least 1")
        self._path = str(path)
        self._max_delivery_count = max_delivery_count
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentstage-bus")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # Per event loop (an Event belongs to the loop that first waits on it), then per queue.
        self._wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Event]] = (
            weakref.WeakKeyDictionary()
        )

    async def send(self, queue: str, message: OutgoingMessage) -> str:
        message_id = message.message_id or new_message_id()
        body = encode_json(message.body)
        headers = encode_json(check_headers(message.headers), "message headers")

        def insert(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute(
                "INSERT INTO bus_messages (queue, message_id, body, headers, enqueued_at, visible_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (queue, message_id, body, headers, now, now + max(message.delay_seconds, 0.0)),
            )

        await self._run(insert)
        if message.delay_seconds <= 0:
            self._wake(queue)
        return message_id

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        wait_seconds: float = 5.0,
        visibility_seconds: float = DEFAULT_VISIBILITY_SECONDS,
    ) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if visibility_seconds <= 0:
            raise ValueError("visibility_seconds must be positive")

        def lease(conn: sqlite3.Connection) -> list[ReceivedMessage]:
            # Cheap check first, outside the write lock: idle receivers must not queue on each other.
            if conn.execute(
                f"SELECT 1 FROM bus_messages WHERE {_READY} LIMIT 1", (queue, time.time())
            ).fetchone():
                return in_transaction(conn, lambda c: self._lease(c, queue, max_messages, visibility_seconds))
            return []

        async def pause(seconds: float) -> None:
            wakers = self._wakers.setdefault(asyncio.get_running_loop(), {})
            waker = wakers.setdefault(queue, asyncio.Event())
            try:
                await asyncio.wait_for(waker.wait(), seconds)
            except TimeoutError:
                pass

        return await long_poll(lambda: self._run(lease), wait_seconds, pause=pause)

    def _lease(
        self, conn: sqlite3.Connection, queue: str, max_messages: int, visibility_seconds: float
    ) -> list[ReceivedMessage]:
        now = time.time()
        leased: list[ReceivedMessage] = []
        while len(leased) < max_messages:
            rows = conn.execute(
                "SELECT seq, message_id, body, headers, enqueued_at, delivery_count FROM bus_messages "
                f"WHERE {_READY} ORDER BY visible_at, seq LIMIT ?",
                (queue, now, max_messages - len(leased)),
            ).fetchall()
            if not rows:
                break
            for seq, message_id, body, headers, enqueued_at, delivered in rows:
                if delivered >= self._max_delivery_count:
                    conn.execute(
                        "UPDATE bus_messages SET dead_reason = ?, lease = NULL WHERE seq = ?",
                        (MAX_DELIVERY_COUNT_EXCEEDED, seq),
                    )
                    continue
                token = uuid.uuid4().hex
                conn.execute(
                    "UPDATE bus_messages SET delivery_count = ?, lease = ?, visible_at = ? WHERE seq = ?",
                    (delivered + 1, token, now + visibility_seconds, seq),
                )
                leased.append(
                    ReceivedMessage(
                        queue=queue,
                        message_id=message_id,
                        body=json.loads(body),
                        headers=json.loads(headers),
                        delivery_count=delivered + 1,
                        enqueued_at=enqueued_at,
                        lease=_Lease(seq, token),
                        max_delivery_count=self._max_delivery_count,
                    )
                )
        return leased

    async def complete(self, message: ReceivedMessage) -> None:
        await self._with_lease(message, "DELETE FROM bus_messages", ())

    async def release(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        visible_at = time.time() + max(delay_seconds, 0.0)
        await self._with_lease(message, "UPDATE bus_messages SET lease = NULL, visible_at = ?", (visible_at,))
        if delay_seconds <= 0:
            self._wake(message.queue)

    async def renew(self, message: ReceivedMessage, *, visibility_seconds: float) -> ReceivedMessage:
        if visibility_seconds <= 0:
            raise ValueError("visibility_seconds must be positive")
        visible_at = time.time() + visibility_seconds
        await self._with_lease(message, "UPDATE bus_messages SET visible_at = ?", (visible_at,))
        return message

    async def dead_letter(self, message: ReceivedMessage, *, reason: str) -> None:
        await self._with_lease(message, "UPDATE bus_messages SET dead_reason = ?, lease = NULL", (reason,))

    async def dead_letters(self, queue: str, *, max_messages: int = 100) -> list[DeadLetter]:
        def read(conn: sqlite3.Connection) -> list[DeadLetter]:
            rows = conn.execute(
                "SELECT message_id, body, headers, dead_reason, delivery_count FROM bus_messages "
                "WHERE queue = ? AND dead_reason IS NOT NULL ORDER BY seq LIMIT ?",
                (queue, max_messages),
            ).fetchall()
            return [
                DeadLetter(queue, message_id, json.loads(body), json.loads(headers), reason, delivered)
                for message_id, body, headers, reason, delivered in rows
            ]

        return await self._run(read)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)

    async def _with_lease(self, message: ReceivedMessage, change: str, params: tuple[object, ...]) -> None:
        """Apply ``change`` (a DELETE or UPDATE without WHERE) to the message if its lease is still ours."""
        lease = message.lease
        if not isinstance(lease, _Lease):
            raise TypeError("this message was not received from a SqliteBus")

        def apply(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                f"{change} WHERE seq = ? AND lease = ? AND dead_reason IS NULL",
                (*params, lease.seq, lease.token),
            )
            if cursor.rowcount == 0:
                raise LeaseLost(
                    f"message {message.message_id} of queue '{message.queue}' is no longer leased by this "
                    "receiver (its lease expired and it was received again, or it was settled)"
                )

        await self._run(apply)

    def _wake(self, queue: str) -> None:
        waker = self._wakers.get(asyncio.get_running_loop(), {}).pop(queue, None)
        if waker is not None:
            waker.set()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise BusError("the SQLite bus is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs on the bus thread: opens the connection on first use and reports SQLite failures as BusError."""
        try:
            if self._conn is None:
                self._conn = self._connect()
            return fn(self._conn)
        except (sqlite3.Error, OSError) as exc:
            raise BusError(f"the SQLite bus at {self._path} failed: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        # Autocommit: transactions are explicit. ``timeout`` is the busy timeout: a receiver in another
        # process holding the write lock makes us wait up to 5 s instead of failing.
        conn = connect_wal(self._path, timeout=5.0)
        try:
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn
