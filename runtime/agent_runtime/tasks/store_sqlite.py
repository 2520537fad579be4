"""Task records in the embedded SQLite file: the local default, shared by the API and worker processes.

One row per task; the record is JSON, with the columns that are looked up (caller + idempotency key,
parent) and the version beside it. Compare-and-set is one ``UPDATE ... WHERE version = ?``, and the
idempotency guarantee is a unique index, so both hold across processes sharing the file (WAL mode lets
readers run beside the writer; the busy timeout queues writers).

The reviewers' queues are two partial indexes over the parked rows: by creation time (every tenant's, which
the platform's reviewers read) and by tenant, then creation time (a tenant's reviewers'), so a tenant's
queue never reads another tenant's rows. An older file gets the second when it is opened.

The queued tasks have a partial index too, by queue and last write, for the sweep that re-sends the message
of a task queued long ago (:meth:`SqliteTaskStore.queued_before`); an older file gets it when it is opened.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from agent_runtime.caller import DEFAULT_TENANT
from agent_runtime.errors import Unavailable
from agent_runtime.sqlite_file import connect_wal
from agent_runtime.sqlite_transaction import in_transaction
from agent_runtime.tasks.model import TaskConflict, TaskRecord

T = TypeVar("T")

_PARKED = "json_extract(record, '$.state') = 'awaiting_approval'"
_TENANT = f"coalesce(json_extract(record, '$.tenant'), '{DEFAULT_TENANT}')"
"""A row's tenant as :func:`~agent_runtime.tasks.model.tenant_of` has it. Queries must spell it (and
``_PARKED``) exactly as the index does, or SQLite cannot use the index."""
_QUEUED = "json_extract(record, '$.state') = 'queued'"
_QUEUE = "json_extract(record, '$.queue')"
_UPDATED_AT = "json_extract(record, '$.updated_at')"
"""The queued tasks' index, spelt as its queries must spell it."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    idempotency_key TEXT,
    parent_id TEXT,
    created_at REAL NOT NULL,
    version INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_by_idempotency_key ON tasks (caller, idempotency_key);
CREATE INDEX IF NOT EXISTS tasks_by_parent ON tasks (parent_id, created_at);
CREATE INDEX IF NOT EXISTS tasks_awaiting_approval ON tasks (created_at) WHERE {_PARKED};
CREATE INDEX IF NOT EXISTS tasks_awaiting_approval_by_tenant ON tasks ({_TENANT}, created_at, id)
    WHERE {_PARKED};
CREATE INDEX IF NOT EXISTS tasks_queued ON tasks ({_QUEUE}, {_UPDATED_AT}) WHERE {_QUEUED};
"""


class SqliteTaskStore:
    """:class:`~agent_runtime.tasks.model.TaskStore` on one connection confined to its own thread."""

    def __init__(self, connection: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = connection
        self._executor = executor

    @classmethod
    async def open(cls, path: str) -> SqliteTaskStore:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentstage-tasks")

        def connect() -> sqlite3.Connection:
            conn = connect_wal(path, timeout=10.0, check_same_thread=False)
            conn.executescript(_SCHEMA)
            return conn

        try:
            connection = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(connection, executor)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(in_transaction, self._conn, fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One statement in autocommit mode: a consistent snapshot without taking the write lock."""
        return await self._call(fn, self._conn)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        """``fn`` on the store's thread; a busy or broken file is :class:`Unavailable` (503), not a bug."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as error:
            raise Unavailable(f"the task store is unavailable: {error}") from error

    async def create(self, record: TaskRecord) -> tuple[TaskRecord, bool]:
        def create(conn: sqlite3.Connection) -> tuple[TaskRecord, bool]:
            if record.idempotency_key is not None:
                row = conn.execute(
                    "SELECT record FROM tasks WHERE caller = ? AND idempotency_key = ?",
                    (record.caller, record.idempotency_key),
                ).fetchone()
                if row is not None:
                    return TaskRecord.model_validate_json(row[0]), False
            conn.execute(
                "INSERT INTO tasks (id, caller, idempotency_key, parent_id, created_at, version, record) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.caller,
                    record.idempotency_key,
                    record.parent_id,
                    record.created_at,
                    record.version,
                    record.model_dump_json(),
                ),
            )
            return record, True

        return await self._write(create)

    async def get(self, task_id: str) -> TaskRecord | None:
        def read(conn: sqlite3.Connection) -> TaskRecord | None:
            row = conn.execute("SELECT record FROM tasks WHERE id = ?", (task_id,)).fetchone()
            return TaskRecord.model_validate_json(row[0]) if row else None

        return await self._read(read)

    async def replace(self, record: TaskRecord, *, expected_version: int) -> TaskRecord:
        written = record.model_copy(update={"version": expected_version + 1})

        def write(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE tasks SET record = ?, version = ? WHERE id = ? AND version = ?",
                (written.model_dump_json(), written.version, record.id, expected_version),
            )
            if cursor.rowcount != 1:
                raise TaskConflict(f"task {record.id} changed since version {expected_version}")

        await self._write(write)
        return written

    async def children(self, parent_id: str) -> list[TaskRecord]:
        def read(conn: sqlite3.Connection) -> list[TaskRecord]:
            rows = conn.execute(
                "SELECT record FROM tasks WHERE parent_id = ? ORDER BY created_at, id", (parent_id,)
            ).fetchall()
            return [TaskRecord.model_validate_json(row[0]) for row in rows]

        return await self._read(read)

    async def awaiting_approval(self, limit: int, *, tenant: str | None = None) -> list[TaskRecord]:
        if tenant is None:
            query, parameters = f"WHERE {_PARKED}", [limit]
        else:
            query, parameters = f"WHERE {_PARKED} AND {_TENANT} = ?", [tenant, limit]

        def read(conn: sqlite3.Connection) -> list[TaskRecord]:
            rows = conn.execute(
                f"SELECT record FROM tasks {query} ORDER BY created_at, id LIMIT ?", parameters
            ).fetchall()
            return [TaskRecord.model_validate_json(row[0]) for row in rows]

        return await self._read(read)

    async def queued_before(self, queue: str, before: float, limit: int) -> list[TaskRecord]:
        def read(conn: sqlite3.Connection) -> list[TaskRecord]:
            rows = conn.execute(
                f"SELECT record FROM tasks WHERE {_QUEUED} AND {_QUEUE} = ? AND {_UPDATED_AT} < ? "
                f"ORDER BY {_UPDATED_AT} LIMIT ?",
                (queue, before, limit),
            ).fetchall()
            return [TaskRecord.model_validate_json(row[0]) for row in rows]

        return await self._read(read)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=False)
