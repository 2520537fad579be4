"""The embedded SQLite conversation store on the event loop's thread: the writes queued while the loop was busy
share one transaction, yet each append is committed, or rolled back, as if alone, and answered only once its
transaction committed; reads and writes never hop to a thread, and checkpoints stay off the loop.

Writes are made to queue up the way they do under load, by another connection holding the write lock (as
another worker process would, mid-transaction) while they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.memory import Owner
from agent_runtime.memory import sqlite as memory_sqlite
from agent_runtime.memory.sqlite import SqliteConversationStore

pytestmark = pytest.mark.anyio

ALICE = Owner("t-a", "alice")
CONNECT = sqlite3.connect
"""Opens this test's own connections, untouched by :func:`_on_connect`."""


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _on_connect(monkeypatch: pytest.MonkeyPatch, prepare: Callable[[sqlite3.Connection], object]) -> None:
    """Run ``prepare`` on every connection opened from here on (the store opens its own, on its thread)."""
    connect = sqlite3.connect

    def prepared(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        prepare(conn)
        return conn

    monkeypatch.setattr(sqlite3, "connect", prepared)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement run on the connections opened from here on."""
    seen: list[str] = []
    _on_connect(monkeypatch, lambda conn: conn.set_trace_callback(seen.append))
    return seen


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every statement run on the connections opened from here on, with the name of the thread running it."""
    seen: list[tuple[str, str]] = []
    _on_connect(
        monkeypatch,
        lambda conn: conn.set_trace_callback(lambda sql: seen.append((threading.current_thread().name, sql))),
    )
    return seen


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the file's write lock until the block ends; yields it for setup."""
    with contextlib.closing(CONNECT(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        yield other
        other.execute("COMMIT")


async def _queued(*appends: asyncio.Future[None]) -> None:
    """Let the appends reach the store's queue (behind the lock) before it is released."""
    await asyncio.sleep(0.05)
    assert not any(append.done() for append in appends)


async def test_appends_waiting_together_are_committed_together(tmp_path: Path, statements: list[str]) -> None:
    path = tmp_path / "state.db"
    store = await SqliteConversationStore.open(str(path))
    try:
        before = statements.count("COMMIT")
        with _locked(path):
            appends = [
                asyncio.ensure_future(store.append(ALICE, f"c{n % 5}", [user(f"message {n}")]))
                for n in range(50)
            ]
            await _queued(*appends)
        await asyncio.gather(*appends)
        assert statements.count("COMMIT") - before == 1, "one transaction for the 50 appends"
        assert statements.count("SAVEPOINT operation") == 50
        assert await store.history(ALICE, "c0") == [user(f"message {n}") for n in range(0, 50, 5)]
        assert [c.messages for c in await store.conversations(ALICE)] == [10] * 5
    finally:
        await store.close()


async def test_an_append_that_fails_is_rolled_back_alone(tmp_path: Path) -> None:
    """The poisoned append fails after its conversation row was written: that write goes too, while the
    appends queued with it commit."""
    path = tmp_path / "state.db"
    store = await SqliteConversationStore.open(str(path))
    try:
        with _locked(path) as other:
            other.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON conversation_history WHEN NEW.message LIKE '%poison%' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned message'); END"
            )
            good = asyncio.ensure_future(store.append(ALICE, "good", [user("fine")]))
            bad = asyncio.ensure_future(store.append(ALICE, "bad", [user("poison")]))
            after = asyncio.ensure_future(store.append(ALICE, "good", [user("also fine")]))
            await _queued(good, bad, after)
        await good
        await after
        with pytest.raises(sqlite3.IntegrityError, match="poisoned message"):
            await bad
        assert await store.history(ALICE, "good") == [user("fine"), user("also fine")]
        assert [c.id for c in await store.conversations(ALICE)] == ["good"], "no partial write"
    finally:
        await store.close()


async def test_a_failed_commit_fails_every_append_of_its_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deferred constraint breaks at ``COMMIT``: no append of that transaction may be answered as stored."""
    _on_connect(monkeypatch, lambda conn: conn.execute("PRAGMA foreign_keys = ON"))
    path = tmp_path / "state.db"
    store = await SqliteConversationStore.open(str(path))
    try:
        with _locked(path) as other:
            other.execute("CREATE TABLE guard (id INTEGER PRIMARY KEY)")
            other.execute(
                "CREATE TABLE guarded (id INTEGER PRIMARY KEY, "
                "guard INTEGER REFERENCES guard (id) DEFERRABLE INITIALLY DEFERRED)"
            )
            other.execute(  # a "doom" message breaks the constraint, checked only when its group commits
                "CREATE TRIGGER doom AFTER INSERT ON conversation_history WHEN NEW.message LIKE '%doom%' "
                "BEGIN INSERT INTO guarded (guard) VALUES (404); END"
            )
            appends = [
                asyncio.ensure_future(store.append(ALICE, "c", [user(text)]))
                for text in ("one", "doom", "two")
            ]
            await _queued(*appends)
        for append in appends:
            with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
                await append
        assert await store.history(ALICE, "c") == []
        await store.append(ALICE, "c", [user("three")])
        assert await store.history(ALICE, "c") == [user("three")], "the next group commits"
    finally:
        await store.close()


async def test_queued_appends_are_committed_when_the_store_closes(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await SqliteConversationStore.open(str(path))
    with _locked(path):
        appends = [asyncio.ensure_future(store.append(ALICE, "c", [user(f"m{n}")])) for n in range(3)]
        await _queued(*appends)
        closing = asyncio.ensure_future(store.close())
        await asyncio.sleep(0.05)
        assert not closing.done(), "the close waits behind the queued appends"
    await closing
    await asyncio.wait_for(asyncio.gather(*appends), timeout=10)  # answered, never left hanging
    with pytest.raises(RuntimeError, match="closed"):
        await store.append(ALICE, "c", [user("late")])
    reopened = await SqliteConversationStore.open(str(path))
    try:
        assert await reopened.history(ALICE, "c") == [user("m0"), user("m1"), user("m2")]
    finally:
        await reopened.close()


async def test_an_append_whose_caller_gave_up_is_still_stored(tmp_path: Path) -> None:
    """Nobody awaits the append any more, yet it commits (closing lets queued writes commit first)."""
    path = tmp_path / "state.db"
    store = await SqliteConversationStore.open(str(path))
    with _locked(path):
        append = asyncio.ensure_future(store.append(ALICE, "c", [user("said before the disconnect")]))
        await _queued(append)
        append.cancel()
    await store.close()
    reopened = await SqliteConversationStore.open(str(path))
    try:
        assert await reopened.history(ALICE, "c") == [user("said before the disconnect")]
    finally:
        await reopened.close()


async def test_bounded_operations_run_on_the_loop_thread_and_erasing_a_tenant_on_the_store_thread(
    tmp_path: Path, threads: list[tuple[str, str]]
) -> None:
    store = await SqliteConversationStore.open(str(tmp_path / "state.db"))
    try:
        opened = len(threads)
        await store.append(ALICE, "c", [user("hi")])
        assert await store.history(ALICE, "c", limit=5) == [user("hi")]
        assert [c.id for c in await store.conversations(ALICE, limit=5)] == ["c"]
        assert await store.delete(ALICE, "c") is True
        on_loop = threads[opened:]
        assert {name for name, _ in on_loop} == {threading.current_thread().name}
        assert any(sql.startswith("INSERT INTO conversation_history") for _, sql in on_loop)
        assert any(sql.startswith("SELECT message") for _, sql in on_loop)
        erased = len(threads)
        await store.delete_tenant(ALICE.tenant)
        assert {name for name, _ in threads[erased:]} == {"agentstage-sqlite_0"}
    finally:
        await store.close()


async def test_the_log_is_checkpointed_on_the_store_thread_never_in_a_commit_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: list[tuple[str, str]]
) -> None:
    monkeypatch.setattr(memory_sqlite, "CHECKPOINT_EVERY", 10**9)
    path = tmp_path / "state.db"
    store = await SqliteConversationStore.open(str(path))
    try:
        for n in range(100):  # ~15 pages each: past the ~1,000 pages at which SQLite checkpoints by itself
            await store.append(ALICE, "c", [user(f"{n}" + "x" * 40_000)])
        with contextlib.closing(CONNECT(path, isolation_level=None)) as other:
            _, logged, _ = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert logged > 1000, "the log was never reset: nothing was checkpointed while committing"
        monkeypatch.setattr(memory_sqlite, "CHECKPOINT_EVERY", 3)
        before = len(threads)
        for n in range(3):
            await store.append(ALICE, "c", [user(f"then {n}")])
        await asyncio.sleep(0.1)
        checkpoints = [name for name, sql in threads[before:] if sql.startswith("PRAGMA wal_checkpoint")]
        assert checkpoints == ["agentstage-sqlite_0"]
    finally:
        await store.close()
