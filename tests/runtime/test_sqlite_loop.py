"""The SQLite conversation store and budget ledger of one process share the loop's connection to their file.

On a connection each, every commit of one store emptied the other's page cache (SQLite drops a connection's
cached pages once another has written the file), so each request's history read and write re-read what the
ledger had just written past. These tests hold the sharing to its contract: the runtime's two stores use one
connection (only in one file), their writes queued together share one commit, and each store gives its share
back on close, the last one closing the connection, whichever closes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from agent_runtime.caller import Caller
from agent_runtime.governance.ledger import Line, Refusal, open_ledger
from agent_runtime.governance.ledger_sqlite import SqliteLedger
from agent_runtime.memory import sqlite as memory_sqlite
from agent_runtime.memory.sqlite import SqliteConversationStore
from agent_runtime.settings import Settings

pytestmark = pytest.mark.anyio

OWNER = Caller("alice").owner
LINE = Line("tenant-tokens", limit=1_000, amount=10, expires_at=2**40)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _stores(path: Path) -> tuple[SqliteConversationStore, SqliteLedger]:
    conversations = await SqliteConversationStore.open(str(path))
    ledger = await open_ledger(Settings(sqlite_path=str(path)), conversations)
    assert isinstance(ledger, SqliteLedger)
    return conversations, ledger


def _committing(conversations: SqliteConversationStore, ledger: SqliteLedger) -> list[str]:
    """The COMMITs the two stores' connections run from now on (one connection, if shared)."""
    commits: list[str] = []
    for conn in (conversations.loop_connection.conn, ledger._connection.conn):
        conn.set_trace_callback(
            lambda statement: commits.append(statement) if statement == "COMMIT" else None
        )
    return commits


async def test_the_ledger_in_the_conversation_store_s_file_uses_its_connection(tmp_path: Path) -> None:
    conversations, ledger = await _stores(tmp_path / "state.db")
    elsewhere = await open_ledger(Settings(sqlite_path=str(tmp_path / "other.db")), conversations)
    try:
        assert ledger._connection is conversations.loop_connection
        assert isinstance(elsewhere, SqliteLedger)
        assert elsewhere._connection is not conversations.loop_connection, "another file: its own connection"
        granted = await ledger.reserve("h1", [LINE], 60)
        await conversations.append(OWNER, "c1", [{"role": "user", "content": "hi"}])
        assert granted == [10]
        assert await conversations.history(OWNER, "c1") == [{"role": "user", "content": "hi"}]
    finally:
        await asyncio.gather(elsewhere.close(), ledger.close(), conversations.close())


async def test_writes_of_both_stores_queued_in_one_turn_share_one_commit(tmp_path: Path) -> None:
    conversations, ledger = await _stores(tmp_path / "state.db")
    try:
        commits = _committing(conversations, ledger)
        writes = [
            *(ledger.reserve(f"h{n}", [LINE], 60) for n in range(5)),
            *(conversations.append(OWNER, f"c{n}", [{"role": "user", "content": str(n)}]) for n in range(5)),
        ]
        results = await asyncio.gather(*writes)
        # The first finds the writer idle and commits at once; the nine queued behind it commit together.
        assert len(commits) == 2
        assert not any(isinstance(result, Refusal) for result in results[:5])
        assert [await conversations.history(OWNER, f"c{n}") for n in range(5)] == [
            [{"role": "user", "content": str(n)}] for n in range(5)
        ]
        [usage] = await ledger.usage([LINE.key])
        assert usage.held == 50
    finally:
        await asyncio.gather(ledger.close(), conversations.close())


@pytest.mark.parametrize("first", ["ledger", "conversations"])
async def test_each_store_closes_its_share_and_the_last_one_closes_the_connection(
    tmp_path: Path, first: str
) -> None:
    conversations, ledger = await _stores(tmp_path / "state.db")
    connection = conversations.loop_connection.conn
    if first == "ledger":
        await ledger.close()
        await conversations.append(OWNER, "c1", [{"role": "user", "content": "still open"}])
        assert await conversations.history(OWNER, "c1") == [{"role": "user", "content": "still open"}]
        await conversations.close()
    else:
        await conversations.close()
        assert await ledger.reserve("h1", [LINE], 60) == [10]
        await ledger.settle("h1", [(LINE.key, 4)])
        assert (await ledger.usage([LINE.key]))[0].settled == 4
        await ledger.close()
    with pytest.raises(sqlite3.ProgrammingError):
        connection.execute("SELECT 1")
    with contextlib.closing(
        sqlite3.connect(tmp_path / "state.db")
    ) as reader:  # what was written is in the file
        assert reader.execute("SELECT count(*) FROM conversation_history").fetchone()[0] == (
            first == "ledger"
        )
        assert reader.execute("SELECT sum(spent) FROM budget_ledger").fetchone()[0] == (
            None if first == "ledger" else 4
        )


async def test_only_commits_carrying_conversations_count_toward_the_store_s_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarting checkpoint holds every writer off while it copies and fsyncs; counting the ledger's
    commits too, the store ran one every 125 chat requests (two ledger commits each), none of which writes a
    conversation: their p99 went to +5 ms. The ledger's keeper looks after the log for its commits."""
    monkeypatch.setattr(memory_sqlite, "CHECKPOINT_EVERY", 3)
    conversations, ledger = await _stores(tmp_path / "state.db")
    checkpoints: list[None] = []

    async def checkpoint() -> None:
        checkpoints.append(None)

    monkeypatch.setattr(conversations._db, "checkpoint", checkpoint)
    try:
        for n in range(10):  # one by one: each its own commit
            await ledger.reserve(f"h{n}", [LINE], 60)
            await ledger.settle(f"h{n}", [(LINE.key, 1)])
        await asyncio.sleep(0)
        assert checkpoints == []
        for n in range(3):
            await conversations.append(OWNER, f"c{n}", [{"role": "user", "content": str(n)}])
            await ledger.reserve(f"g{n}", [LINE], 60)
        await asyncio.sleep(0)
        assert checkpoints == [None], "the third commit carrying a conversation write checkpoints"
    finally:
        await asyncio.gather(ledger.close(), conversations.close())


async def test_a_store_closed_twice_or_written_after_its_close_leaves_the_other_s_connection_alone(
    tmp_path: Path,
) -> None:
    conversations, ledger = await _stores(tmp_path / "state.db")
    await ledger.close()
    await ledger.close()  # a second close gives back no share of the conversation store's
    await conversations.append(OWNER, "c1", [{"role": "user", "content": "still open"}])
    assert await conversations.history(OWNER, "c1") == [{"role": "user", "content": "still open"}]
    await conversations.close()

    conversations, ledger = await _stores(tmp_path / "state.db")
    await conversations.close()
    with pytest.raises(RuntimeError, match="closed"):
        await conversations.append(OWNER, "c2", [{"role": "user", "content": "after its close"}])
    assert await ledger.reserve("h1", [LINE], 60) == [10], "the ledger's connection is still open"
    await ledger.close()
