"""Every embedded store opens the shared SQLite file while another connection writes to it.

Workers starting together on a new file race: one creates its tables while another switches the file to
WAL, which SQLite refuses at once ("database is locked", its busy timeout not consulted). A worker that
lost that race exited at startup (found by the three-process ledger test, which failed one CI run in a
few hundred). Here the race is made certain: the file is new (rollback journal) and held in a write
transaction for a moment while each store opens it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.bus.base import OutgoingMessage
from agent_runtime.bus.sqlite import SqliteBus
from agent_runtime.governance.ledger_sqlite import SqliteLedger
from agent_runtime.knowledge.sqlite import SqliteKnowledgeIndex
from agent_runtime.memory.sqlite import SqliteConversationStore, SqliteVectorStore
from agent_runtime.sqlite_file import connect_wal
from agent_runtime.tasks.store_sqlite import SqliteTaskStore

HELD_SECONDS = 0.3


async def _bus(path: str) -> SqliteBus:
    bus = SqliteBus(path)
    await bus.send("q", OutgoingMessage(body={"n": 1}))  # the bus opens its file on first use
    return bus


OPENERS: dict[str, Callable[[str], Awaitable[Any]]] = {
    "conversations": SqliteConversationStore.open,
    "vectors": lambda path: SqliteVectorStore.open(path, 8),
    "ledger": SqliteLedger.open,
    "tasks": SqliteTaskStore.open,
    "knowledge": lambda path: SqliteKnowledgeIndex.open(path, 8),
    "bus": _bus,
}


def _new_file_held_by_a_writer(path: str, seconds: float) -> threading.Thread:
    """Create ``path`` as plain ``sqlite3`` does (rollback journal) and hold a write transaction on it."""
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE elsewhere (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO elsewhere VALUES (1)")

    def release() -> None:
        time.sleep(seconds)
        writer.execute("COMMIT")
        writer.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def _journal_mode(path: str) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])


@pytest.mark.parametrize("store", OPENERS)
def test_a_store_opens_the_file_while_another_connection_writes_to_it(tmp_path: Path, store: str) -> None:
    path = str(tmp_path / "state.db")
    writer = _new_file_held_by_a_writer(path, HELD_SECONDS)

    async def open_and_close() -> float:
        started = time.monotonic()
        opened = await OPENERS[store](path)
        waited = time.monotonic() - started
        await opened.close()
        return waited

    try:
        waited = asyncio.run(open_and_close())
    finally:
        writer.join()
    assert waited >= HELD_SECONDS * 0.8, "it waited for the writer (the race really happened)"
    assert _journal_mode(path) == "wal"


def test_a_file_locked_past_the_timeout_fails_naming_it(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    writer = _new_file_held_by_a_writer(path, 1.0)
    try:
        with pytest.raises(
            sqlite3.OperationalError, match="could not be put in WAL mode within 0.2 s"
        ) as error:
            connect_wal(path, timeout=0.2)
    finally:
        writer.join()
    assert path in str(error.value)
    assert _journal_mode(path) == "delete", "nothing switched it"
    connect_wal(path, timeout=0.2).close()  # once the writer is gone, at once
    assert _journal_mode(path) == "wal"
