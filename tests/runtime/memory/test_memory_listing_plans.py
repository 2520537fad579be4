"""A listing's page after a cursor is a range of the owner's index, on the SQL stores: a deep page reads what
the first does, where an offset would read every conversation before it (the query plans, as each database
makes them; Redis, DynamoDB and Cosmos DB range over their sorted set, sort key and index by construction)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import psycopg
import pytest

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
        "SEARCH conversations USING INDEX conversations_by_update "
        "(tenant=? AND caller=? AND (updated_at,conversation_id)<(?,?))"
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
