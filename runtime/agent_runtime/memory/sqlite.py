"""Embedded SQLite backends: the local default, one file, no server.

Conversations are on the event loop's thread. A history read, an append, a listing or one conversation's
delete touches a few indexed rows, which costs tens of microseconds: less than a hop to a thread and back,
which was half the cost a conversation added to a request. So the conversation store has a connection used
only on the loop (:class:`~agent_runtime.sqlite_loop.LoopConnection`, which a SQLite budget ledger in the
same file shares: see there why): its reads are single SELECTs (each one snapshot of the file, in autocommit
mode); its writes are group-committed by :class:`~agent_runtime.sqlite_group_commit.GroupCommit` (the
writes queued while the loop was busy share one transaction, each in a savepoint of its own, each caller
answered once it committed, so its next read sees it). That connection never waits inside SQLite: its busy
timeout is 0, the group commit retries a locked file with ``asyncio.sleep``, and a read locked out is
redone on the store's thread. Nor does it checkpoint the write-ahead log (a checkpoint copies pages and
fsyncs): its commits are counted and a restarting checkpoint runs on the store's thread instead.

Work without a bound stays on that thread, on the store's second connection (:class:`_Database`), so
the loop never stalls on it: erasing a whole tenant's conversations, and everything of the vector store
(bulk upserts, and loading a namespace for the exact cosine search in numpy, see :mod:`.scoring`: this
Python's ``sqlite3`` cannot load extensions such as sqlite-vec). The writes that queue for the thread while
it is busy are group-committed there the same way. Connections are opened and closed on the thread too.

The file is in WAL mode, so readers (this store's other connection, another worker, ``agentstage dev``
beside a test) are not blocked by a writer; concurrent writers wait for each other instead of failing.
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
from typing import Any, TypeVar

from agent_runtime.sqlite_file import connect_wal
from agent_runtime.sqlite_loop import LoopConnection
from agent_runtime.sqlite_transaction import commit_group, in_transaction

from .base import Conversation, HistoryPage, Message, Owner, VectorHit, VectorItem
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
    page_span,
    position_cursor,
    read_position,
)
from .scoring import Document, Snapshot, SnapshotCache, pack_embedding

T = TypeVar("T")

LISTING = (
    "SELECT conversation_id, created_at, updated_at, messages FROM conversations "
    "WHERE tenant = ? AND caller = ? AND (updated_at, conversation_id) < (?, ?) "
    "ORDER BY updated_at DESC, conversation_id DESC LIMIT ?"
)
"""An owner's conversations after a position (the first page: after (+inf, '')). The index on (tenant,
caller, updated_at) holds the key's conversation_id too (WITHOUT ROWID): a page is a range of it, in order,
however deep the walk."""

CHECKPOINT_EVERY = 250
"""Commits carrying the store's writes between two checkpoints of the log on the store's thread (an append
writes about four pages: SQLite's own automatic checkpoint comes after ~1,000)."""

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
        # Autocommit mode: transactions are explicit (read() and write()), never implicit. ``timeout`` is
        # SQLite's busy timeout: a writer in another process makes us wait up to 5 s instead of failing.
        conn = connect_wal(self._path, timeout=5.0)
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

    async def checkpoint(self) -> None:
        """Copy the write-ahead log into the file, so that the next write starts the log over.

        ``RESTART``: writers wait (on the loop they retry with ``asyncio.sleep``) while it copies. A passive
        checkpoint would not hold them off, but under steady writes it never catches up with the last
        frame, so the log is never started over and grows until the ledger's keeper truncates it, which
        held writers off for 15-20 ms every second at 850 requests/s.
        """
        await self.run(self._checkpoint)

    def _checkpoint(self) -> None:
        assert self._conn is not None
        self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

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


def _connect_for_loop(path: str) -> sqlite3.Connection:
    """The conversation store's connection for the event loop's thread (opened on the store's thread, after
    that one created the file in WAL mode and its tables).

    Autocommit mode: transactions are explicit. Busy timeout 0: SQLite's busy handler would sleep on the
    loop; a locked file is retried with ``asyncio.sleep`` instead. No automatic checkpoint, for the same
    reason (see :meth:`SqliteConversationStore._committed`).
    """
    conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    # In WAL mode NORMAL cannot corrupt the file; a power cut may only lose the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


class SqliteConversationStore:
    """Conversations keyed by (tenant, caller, id) in ``conversations``, their messages in
    ``conversation_history`` in a global sequence.

    Everything but :meth:`delete_tenant` runs on the event loop's thread (see the module docstring).

    History written before conversations had owners is in ``conversation_messages``, which this store never
    reads: it has no owner, so no caller may see it (drop the table once nobody needs it).
    """

    def __init__(self, path: str, db: _Database, conn: sqlite3.Connection):
        """``db`` is open on the file at ``path``; ``conn`` comes from :func:`_connect_for_loop` on it."""
        self.path = path
        self._db = db
        self.loop_connection = LoopConnection(conn)
        """The loop's connection and its writer: a SQLite ledger in the same file shares it."""
        self._conn = conn
        self._writer = self.loop_connection.writer
        self._unobserve = self.loop_connection.observe(self._committed)
        self._wrote = False
        """Whether this store submitted a write since the last commit it counted (see :meth:`_committed`)."""
        self._commits = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(cls, path: str) -> SqliteConversationStore:
        if path == ":memory:":  # each connection would have a database of its own
            raise ValueError(
                "the SQLite conversation store opens its file twice: it needs a file, not ':memory:'"
            )
        db = _Database(path)
        await db.open()
        try:
            conn = await db.run(_connect_for_loop, path)
        except BaseException:
            await db.close()
            raise
        return cls(path, db, conn)

    async def append(self, owner: Owner, conversation_id: str, messages: Sequence[Message]) -> None:
        """Answered once committed; stored even if the caller stops waiting (a request cancelled after its
        answer was made still has its turn stored)."""
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

        await self._write(write)

    async def history(self, owner: Owner, conversation_id: str, limit: int | None = None) -> list[Message]:
        key = conversation_key(owner, conversation_id)
        limit = check_count(limit, "limit", optional=True)
        rows = await self._read(
            lambda c: c.execute(
                "SELECT message FROM conversation_history WHERE tenant = ? AND caller = ? AND conversation_id = ? "
                "ORDER BY seq DESC LIMIT ?",
                (*key, -1 if limit is None else limit),
            ).fetchall()
        )
        return [json.loads(message) for (message,) in reversed(rows)]

    async def page(
        self, owner: Owner, conversation_id: str, limit: int, before: int | None = None
    ) -> HistoryPage:
        key = conversation_key(owner, conversation_id)
        where = "WHERE tenant = ? AND caller = ? AND conversation_id = ?"

        def read(c: sqlite3.Connection) -> HistoryPage:
            # One snapshot for both statements, so the page may be counted from whichever end is nearer: the
            # index is stepped through up to the offset, and a long conversation is mostly read near its end.
            (length,) = c.execute(f"SELECT messages FROM conversations {where}", key).fetchone() or (0,)
            span = page_span(length, limit, before)
            from_end = length - span.stop < span.start
            rows = c.execute(
                f"SELECT message FROM conversation_history {where} "
                f"ORDER BY seq {'DESC' if from_end else 'ASC'} LIMIT ? OFFSET ?",
                (*key, len(span), length - span.stop if from_end else span.start),
            ).fetchall()
            messages = [json.loads(message) for (message,) in (reversed(rows) if from_end else rows)]
            return HistoryPage(span.start, messages, length)

        return await self._read(lambda c: in_transaction(c, read, "BEGIN"))

    async def conversations(
        self, owner: Owner, limit: int = 100, after: str | None = None
    ) -> list[Conversation]:
        check_owner(owner)
        limit = check_count(limit, "limit")
        changed, last = read_position(after) if after is not None else (float("inf"), "")
        rows = await self._read(
            lambda c: c.execute(LISTING, (owner.tenant, owner.caller, changed, last, limit)).fetchall()
        )
        return [Conversation(*row, position_cursor(row[2], row[0])) for row in rows]

    async def delete(self, owner: Owner, conversation_id: str) -> bool:
        key = conversation_key(owner, conversation_id)

        def write(c: sqlite3.Connection) -> bool:
            where = "WHERE tenant = ? AND caller = ? AND conversation_id = ?"
            found = c.execute(f"DELETE FROM conversations {where}", key).rowcount > 0
            c.execute(f"DELETE FROM conversation_history {where}", key)
            return found

        return await self._write(write)

    async def delete_tenant(self, tenant: str) -> int:
        """On the store's thread: a tenant's conversations have no bound."""
        check_id(tenant, "tenant")
        counted: list[int] = []

        def write(c: sqlite3.Connection) -> None:
            counted.append(c.execute("DELETE FROM conversations WHERE tenant = ?", (tenant,)).rowcount)
            c.execute("DELETE FROM conversation_history WHERE tenant = ?", (tenant,))

        await self._db.write(write)
        return counted[0]

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` (one SELECT: a snapshot of one commit) on the loop's connection.

        A reader in WAL mode is locked out only for a moment, while a connection recovers the log after a
        process crashed mid-commit: then the read waits on the store's thread, whose connection waits for
        locks the way SQLite does, off the loop.
        """
        if self._closed:
            raise RuntimeError("the SQLite store is closed")
        try:
            return fn(self._conn)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
        return await self._db.read(fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` group-committed on the loop's connection (which a ledger may keep open past this store)."""
        if self._closed:
            raise RuntimeError("the SQLite store is closed")
        self._wrote = True
        return await self._writer.run(fn)

    def _committed(self) -> None:
        """After each group commit that carried this store's writes: every :data:`CHECKPOINT_EVERY` of them,
        checkpoint on the store's thread.

        Left to itself, SQLite would checkpoint in the commit that grew the log past ~1,000 pages, on the
        loop's thread, for milliseconds. One checkpoint at a time: the next waits for the next count. The
        ledger's commits on the shared connection are not counted: its own keeper looks after the log, and a
        restarting checkpoint holds every writer off while it copies and fsyncs (counting them, a chat request
        met one in every 125, which put its p99 at +5 ms).
        """
        if not self._wrote:
            return
        self._wrote = False
        self._commits += 1
        if self._commits < CHECKPOINT_EVERY or (self._checkpoint is not None and not self._checkpoint.done()):
            return
        self._commits = 0
        self._checkpoint = asyncio.get_running_loop().create_task(
            self._db.checkpoint(), name="agentstage-sqlite-checkpoint"
        )
        self._checkpoint.add_done_callback(_observed)

    async def close(self) -> None:
        """Let queued writes commit (waiting for another process's lock is bounded), then disconnect."""
        if self._closed:
            return
        self._closed = True
        self._unobserve()
        await self.loop_connection.close()
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
        await self._db.close()


def _observed(task: asyncio.Task[None]) -> None:
    """Retrieve a background checkpoint's failure: it was best effort (the next one copies what it left)."""
    if not task.cancelled():
        task.exception()


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
