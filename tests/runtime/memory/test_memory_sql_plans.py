"""Reads that stay as cheap deep in a store as at its start, on the SQL stores, as each database plans them.

A listing's page after a cursor is a range of the owner's index: a deep page reads what the first does, where
an offset would read every conversation before it (Redis, DynamoDB and Cosmos DB range over their sorted set,
sort key and index by construction). On PostgreSQL a conversation's newest page is read from its end: its own
rows only, however long the conversation.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import psycopg
import pytest

from agent_runtime.memory import HistoryPage, Owner
from agent_runtime.memory.postgres import PostgresConversationStore, _after
from agent_runtime.memory.sqlite import LISTING, SqliteConversationStore

pytestmark = pytest.mark.anyio


async def test_sqlite_reads_a_page_as_a_range_of_the_index_in_its_order(tmp_path: Path) -> None:
    store = await SqliteConversationStore.open(str(tmp_path / "state.db"))
    await store.close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        plan = db.execute("EXPLAIN QUERY PLAN " + LISTING, ("t", "c", 5.0, "c9", 10)).fetchall()
    steps = [step[-1] for step in plan]
    assert steps == [
        (
            "SEARCH conversations USING INDEX conversations_by_update "
            "(tenant=? AND caller=? AND (updated_at,conversation_id)<(?,?))"
        )
    ], "no scan of the owner's conversations, no sort (a 'USE TEMP B-TREE FOR ORDER BY' step)"


async def test_postgres_reads_a_page_as_a_range_of_the_index(postgres_dsn: str) -> None:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    store = await PostgresConversationStore.connect(postgres_dsn, schema=schema)
    try:
        changed, last = _after('[1733490000123456, "c9"]')
        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
            await conn.execute("SET enable_seqscan = off")  # a few rows: let the plan show what an index does
            explained = await conn.execute(
                psycopg.sql.SQL("EXPLAIN ") + store._list_after, ("t", "c", changed, last, 10)
            )
            plan = "\n".join(row[0] for row in await explained.fetchall())
    finally:
        await store.close()
    assert "Index Cond: ((tenant = 't'::text) AND (caller = 'c'::text) AND (updated_at <= " in plan, plan
    assert "Incremental Sort" in plan or "Sort" not in plan, (
        "only ties are sorted, never the owner's whole list"
    )


async def test_postgres_reads_a_long_conversations_newest_page_from_its_end(postgres_dsn: str) -> None:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    store = await PostgresConversationStore.connect(postgres_dsn, schema=schema)
    owner, messages = Owner("t", "c"), [{"role": "user", "content": f"m{i}"} for i in range(2000)]
    try:
        await store.append(owner, "long", messages)
        assert await store.page(owner, "long", limit=10) == HistoryPage(1990, messages[1990:], 2000)
        assert await store.page(owner, "long", limit=10, before=1200) == HistoryPage(
            1190, messages[1190:1200], 2000
        )
        assert await store.page(owner, "long", limit=10, before=700) == HistoryPage(
            690, messages[690:700], 2000
        )
        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
            explained = await conn.execute(
                psycopg.sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + store._span_from_end,
                ("t", "c", "long", 10, 0),
            )
            [[[plan]]] = await explained.fetchall()
    finally:
        await store.close()
    scan = plan["Plan"]["Plans"][0]
    assert scan["Node Type"] == "Index Scan" and scan["Scan Direction"] == "Backward", scan
    assert scan["Actual Rows"] == 10, "the newest page's rows only, not the 1,990 before them"
