"""Embedded SQLite backends: the local default, one file, no server.

Each store owns one connection used from one dedicated thread, so calls from many asyncio tasks are
serialised and the event loop never blocks on disk. The writes that queue for the thread while it is busy
(a history append per request, under load) are group-committed: one transaction, each write in a savepoint
of its own, one commit and one trip to the thread for them all; each is answered once committed, so a
caller's next read sees it. The file is in WAL mode, so readers in other processes (another worker,
``agentstage dev`` beside a test) are not blocked by a writer; the busy timeout makes concurrent writers wait
instead of failing. Similarity search is exact cosine in numpy (see :mod:`.scoring`): this Python's
``sqlite3`` cannot load extensions such as sqlite-vec.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent_runtime.sqlite_transaction import commit_group, in_transaction

from .base import Conversation, Message, Owner, VectorHit, VectorItem
from .common import (
    check_count,
    check_embedding,
    check_id,
    check_items,
    check_messages,
    check_owner,
    check_where,
    conversation_key,
    dump_json,
)
from .scoring import Document, Snapshot, SnapshotCache, pack_embedding

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    tenant TEXT NOT NULL,
    caller TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    messages INTEGER NOT NULL,
    PRIMARY KEY (tenant, caller, conversation_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations (tenant, caller, updated_at);
CREATE TABLE IF NOT EXISTS conversation_history (
    seq INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    caller TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversation_history_by_conversation
    ON conversation_history (tenant, caller, conversation_id, seq);
CREATE TABLE IF NOT EXISTS vector_items (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    embedding BLOB NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vector_namespaces (
    namespace TEXT PRIMARY KEY,
    revision TEXT NOT NULL
) WITHOUT ROWID;
"""

_NEW_REVISION = """
INSERT INTO vector_namespaces (namespace, revision) VALUES (?, lower(hex(randomblob(8))))
ON CONFLICT (namespace) DO UPDATE SET revision = excluded.revision
"""


class _Database:
    """One SQLite connection confined to its own thread; the writes waiting for it are committed together."""

    def __init__(self, path: str):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentstage-sqlite")
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._writes: list[_Write] = []
        """Writes not yet taken by the database thread (under ``_lock``: it is shared with that thread)."""
        self._lock = threading.Lock()

    async def open(self) -> None:
        try:
            await self.run(self._connect)
        except BaseException:
            self._closed = True
            self._executor.shutdown(wait=False)
            raise

    def _connect(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (read() and write()), never implicit. ``timeout`` is
        # SQLite's busy timeout: a writer in another process makes us wait up to 5 s instead of failing.
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL cannot corrupt the file; a power cut may only lose the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        self._conn = conn

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("the SQLite store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one read transaction, so everything it reads belongs to the same commit.

        ``fn`` must return plain data (rows, not a cursor), for the reason given in :meth:`write`.
        """
        return await self.run(self._read, fn)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._conn is not None
        return in_transaction(self._conn, fn, "BEGIN")

    async def write(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Run ``fn`` in a write transaction, answered once it committed; ``fn`` raising rolls back its writes.

        Writes queued together share the transaction (see the module docstring). ``IMMEDIATE`` takes the
        write lock up front (no upgrade deadlock). ``fn``'s result is dropped on the database thread: a
        cursor freed on another thread finalises its statement while this thread uses the connection ("bad
        parameter or other API misuse"). A write runs even if its caller stops waiting (a request cancelled
        after its answer was made still has its turn stored).
        """
        if self._closed:
            raise RuntimeError("the SQLite store is closed")
        loop = asyncio.get_running_loop()
        write = _Write(fn, loop, loop.create_future())
        with self._lock:
            self._writes.append(write)
            first = len(self._writes) == 1
        if first:  # the thread takes every write queued by the time it gets to this one
            self._executor.submit(self._commit_writes)
        await write.future

    def _commit_writes(self) -> None:
        """On the database thread: take the write lock, then every write queued by then, commit them together
        and answer each caller."""
        assert self._conn is not None
        try:
            self._conn.execute("BEGIN IMMEDIATE")  # waits (busy timeout) while another process writes
        except sqlite3.Error as error:  # still locked after the busy timeout, or a broken file
            _fail(self._take_writes(), error)
            return
        group = self._take_writes()
        try:
            outcomes = commit_group(self._conn, [write.fn for write in group])
        except BaseException as error:  # noqa: BLE001 - nothing of the group was committed: all hear why
            _fail(group, error)
            return
        for write, outcome in zip(group, outcomes, strict=True):
            write.answer(outcome.error)

    def _take_writes(self) -> list[_Write]:
        with self._lock:
            group, self._writes = self._writes, []
        return group

    async def close(self) -> None:
        """Let queued writes commit (they are ahead of the close on the thread), then disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=False)


@dataclass(frozen=True, slots=True)
class _Write:
    """A write queued for the database thread, and how that thread answers its caller on the caller's loop."""

    fn: Callable[[sqlite3.Connection], object]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]

    def answer(self, error: BaseException | None) -> None:
        self.loop.call_soon_threadsafe(self._resolve, error)

    def _resolve(self, error: BaseException | None) -> None:
        if self.future.done():  # the caller stopped waiting
            return
        if error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(error)


def _fail(group: list[_Write], error: BaseException) -> None:
    for write in group:
        write.answer(error)


class SqliteConversationStore:
    """Conversations keyed by (tenant, caller, id) in ``conversations``, their messages in
    ``conversation_history`` in a global sequence.

    History written before conversations had owners is in ``conversation_messages``, which this store never
    reads: it has no owner, so no caller may see it (drop the table once nobody needs it).
    """

    def __init__(self, db: _Database):
        self._db = db

    @classmethod
    async def open(cls, path: str) -> SqliteConversationStore:
        db = _Database(path)
        await db.open()
        return cls(db)

    async def append(self, owner: Owner, conversation_id: str, messages: Sequence[Message]) -> None:
        key = conversation_key(owner, conversation_id)
        rows = [(*key, dump_json(m)) for m in check_messages(messages)]
        if not rows:
            return
        now = time.time()

        def write(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, caller, conversation_id) "
                "DO UPDATE SET updated_at = max(updated_at, excluded.updated_at), "
                "messages = messages + excluded.messages",
                (*key, now, now, len(rows)),
            )
            c.executemany(
                "INSERT INTO conversation_history (tenant, caller, conversation_id, message) VALUES (?, ?, ?, ?)",
                rows,
            )

        await self._db.write(write)

    async def history(self, owner: Owner, conversation_id: str, limit: int | None = None) -> list[Message]:
        key = conversation_key(owner, conversation_id)
        limit = check_count(limit, "limit", optional=True)
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT message FROM conversation_history WHERE tenant = ? AND caller = ? AND conversation_id = ? "
                "ORDER BY seq DESC LIMIT ?",
                (*key, -1 if limit is None else limit),
            ).fetchall()
        )
        return [json.loads(message) for (message,) in reversed(rows)]

    async def conversations(self, owner: Owner, limit: int = 100) -> list[Conversation]:
        check_owner(owner)
        limit = check_count(limit, "limit")
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT conversation_id, created_at, updated_at, messages FROM conversations "
                "WHERE tenant = ? AND caller = ? ORDER BY updated_at DESC, conversation_id LIMIT ?",
                (owner.tenant, owner.caller, limit),
            ).fetchall()
        )
        return [Conversation(*row) for row in rows]

    async def delete(self, owner: Owner, conversation_id: str) -> bool:
        key = conversation_key(owner, conversation_id)
        found: list[bool] = []

        def write(c: sqlite3.Connection) -> None:
            where = "WHERE tenant = ? AND caller = ? AND conversation_id = ?"
            found.append(c.execute(f"DELETE FROM conversations {where}", key).rowcount > 0)
            c.execute(f"DELETE FROM conversation_history {where}", key)

        await self._db.write(write)
        return found[0]

    async def delete_tenant(self, tenant: str) -> int:
        check_id(tenant, "tenant")
        counted: list[int] = []

        def write(c: sqlite3.Connection) -> None:
            counted.append(c.execute("DELETE FROM conversations WHERE tenant = ?", (tenant,)).rowcount)
            c.execute("DELETE FROM conversation_history WHERE tenant = ?", (tenant,))

        await self._db.write(write)
        return counted[0]

    async def close(self) -> None:
        await self._db.close()


class SqliteVectorStore:
    """Vectors as float32 blobs in ``vector_items``; exact cosine search over a cached namespace snapshot."""

    def __init__(self, db: _Database, dimensions: int):
        self._db = db
        self._dimensions = dimensions
        self._cache = SnapshotCache()

    @classmethod
    async def open(cls, path: str, dimensions: int) -> SqliteVectorStore:
        db = _Database(path)
        await db.open()
        return cls(db, dimensions)

    async def upsert(self, namespace: str, items: Sequence[VectorItem]) -> None:
        check_id(namespace, "namespace")
        rows = [
            (namespace, item.id, pack_embedding(values), item.text, dump_json(item.metadata))
            for item, values in check_items(items, self._dimensions)
        ]
        if not rows:
            return

        def write(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT INTO vector_items (namespace, id, embedding, text, metadata) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (namespace, id) DO UPDATE SET "
                "embedding = excluded.embedding, text = excluded.text, metadata = excluded.metadata",
                rows,
            )
            c.execute(_NEW_REVISION, (namespace,))

        await self._db.write(write)

    async def query(
        self,
        namespace: str,
        embedding: Sequence[float],
        top_k: int = 5,
        where: dict[str, Any] | None = None,
    ) -> list[VectorHit]:
        check_id(namespace, "namespace")
        values = check_embedding(embedding, self._dimensions)
        top_k = check_count(top_k, "top_k")
        where = check_where(where)
        snapshot = await self._snapshot(namespace)
        return snapshot.search(values, top_k, where) if snapshot else []

    async def _snapshot(self, namespace: str) -> Snapshot | None:
        """The namespace's snapshot, reloaded only when its revision changed (None if never written)."""

        def revision(c: sqlite3.Connection) -> str | None:
            row = c.execute(
                "SELECT revision FROM vector_namespaces WHERE namespace = ?", (namespace,)
            ).fetchone()
            return row[0] if row else None

        def load(c: sqlite3.Connection) -> Snapshot:
            # Runs on the database thread: parsing 10k rows must not stall the event loop.
            current = revision(c) or ""
            rows = c.execute(
                "SELECT id, embedding, text, metadata FROM vector_items WHERE namespace = ?", (namespace,)
            ).fetchall()
            documents = [Document(id_, text, json.loads(metadata)) for id_, _, text, metadata in rows]
            return Snapshot(current, documents, [blob for _, blob, _, _ in rows], self._dimensions)

        current = await self._db.read(revision)
        if current is None:
            return None
        return self._cache.get(namespace, current) or self._cache.put(namespace, await self._db.read(load))

    async def delete(self, namespace: str, ids: Sequence[str]) -> None:
        check_id(namespace, "namespace")
        rows = [(namespace, check_id(id_, "item id")) for id_ in ids]
        if not rows:
            return

        def write(c: sqlite3.Connection) -> None:
            c.executemany("DELETE FROM vector_items WHERE namespace = ? AND id = ?", rows)
            c.execute(_NEW_REVISION, (namespace,))

        await self._db.write(write)

    async def close(self) -> None:
        self._cache.clear()
        await self._db.close()
