"""The KnowledgeIndex contract on PostgreSQL + pgvector, twice: as the planner likes it, and forced through
HNSW (where a filter can starve the approximate scan); then what only PostgreSQL has."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from contract import (
    DIMENSIONS,
    KnowledgeIndexContract,
    ask,
    document,
    everything,
    version_hash,
)

from agent_runtime.knowledge.base import KnowledgeIndex
from agent_runtime.knowledge.postgres import PostgresKnowledgeIndex, tsquery_text
from agent_runtime.memory import DimensionMismatchError
from agent_runtime.memory.postgres import PostgresVectorStore

pytestmark = pytest.mark.anyio

# Makes the planner order through the HNSW index even on a small table, as it does on a large one.
PREFER_HNSW = " options='-c enable_seqscan=off -c enable_bitmapscan=off -c enable_sort=off'"


def fresh_schema() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


class TestPostgres(KnowledgeIndexContract):
    @pytest.fixture
    async def index(self, postgres_dsn: str) -> AsyncIterator[KnowledgeIndex]:
        index = await PostgresKnowledgeIndex.connect(postgres_dsn, DIMENSIONS, schema=fresh_schema())
        yield index
        await index.close()


class TestPostgresThroughHnsw(KnowledgeIndexContract):
    @pytest.fixture
    async def index(self, postgres_dsn: str) -> AsyncIterator[KnowledgeIndex]:
        dsn = postgres_dsn + PREFER_HNSW
        index = await PostgresKnowledgeIndex.connect(dsn, DIMENSIONS, schema=fresh_schema())
        yield index
        await index.close()


def test_tsquery_text_ors_plain_words_only() -> None:
    assert tsquery_text("NEAR(x) & !b | 'c' -d:* OR e") == "NEAR or x or b or c or d or e"
    assert tsquery_text("'&|!:*()") is None


async def test_readable_passages_are_found_when_hnsw_sees_only_restricted_ones(postgres_dsn: str) -> None:
    schema, dsn = fresh_schema(), postgres_dsn + PREFER_HNSW
    index = await PostgresKnowledgeIndex.connect(dsn, DIMENSIONS, schema=schema)
    try:
        for d in range(5):
            restricted = [f"board minutes {d} {i}" for i in range(20)]
            await index.replace_document(f"board-{d}", document(f"board-{d}", restricted, readers=["board"]))
        await index.replace_document("public", document("public", ["picnic minutes", "canteen menu"]))
        query = ask("board minutes", mode="vector", top_k=2)
        with psycopg.connect(dsn) as conn:
            sql = (
                f"SELECT document_id FROM {schema}.knowledge_chunks WHERE readers && %s"
                " ORDER BY embedding <=> %b::float8[]::vector LIMIT 2"
            )
            params = (["*"], list(query.embedding))
            plan = conn.execute("EXPLAIN " + sql, params).fetchall()
            through_hnsw = conn.execute(sql, params).fetchall()
        assert "knowledge_chunks_embedding" in str(plan)
        assert through_hnsw == [], "HNSW alone found readable rows: this test no longer forces the fallback"

        assert {p.document_id for p in await index.search(query)} == {"public"}
    finally:
        await index.close()


async def test_replicas_starting_together_create_the_schema_once(postgres_dsn: str) -> None:
    schema = fresh_schema()
    stores = await asyncio.gather(
        *(PostgresKnowledgeIndex.connect(postgres_dsn, DIMENSIONS, schema=schema) for _ in range(4)),
        *(PostgresVectorStore.connect(postgres_dsn, 8, schema=schema) for _ in range(2)),
    )
    try:
        await stores[0].replace_document("a", document("a", ["alpha one"]))
        assert await everything(stores[3]) == {("a", 0): "alpha one"}
    finally:
        for store in stores:
            await store.close()


async def test_concurrent_replaces_of_one_document_leave_one_whole_version(postgres_dsn: str) -> None:
    index = await PostgresKnowledgeIndex.connect(postgres_dsn, DIMENSIONS, schema=fresh_schema())
    try:
        versions = {f"v{n}": [f"version {n} chunk {i}" for i in range(n + 1)] for n in range(6)}
        await asyncio.gather(
            *(
                index.replace_document("doc", document("doc", texts, version=v))
                for v, texts in versions.items()
            )
        )

        (winner,) = [v for v in versions if version_hash("doc", v) == await index.document_hash("doc")]
        found = await everything(index)
        assert found == {("doc", i): text for i, text in enumerate(versions[winner])}
    finally:
        await index.close()


async def test_reconnecting_with_other_dimensions_is_refused(postgres_dsn: str) -> None:
    schema = fresh_schema()
    index = await PostgresKnowledgeIndex.connect(postgres_dsn, DIMENSIONS, schema=schema)
    await index.close()
    with pytest.raises(DimensionMismatchError, match=f"{DIMENSIONS}-dimensional"):
        await PostgresKnowledgeIndex.connect(postgres_dsn, DIMENSIONS * 2, schema=schema)
