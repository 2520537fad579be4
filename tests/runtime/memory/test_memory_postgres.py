"""PostgreSQL specifics the contract suite cannot force: HNSW starvation under filters, concurrent startup."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import psycopg
import pytest

from agent_runtime.memory import VectorItem
from agent_runtime.memory.postgres import PostgresConversationStore, PostgresVectorStore

pytestmark = pytest.mark.anyio

# Makes the planner order through the HNSW index even on a small table, as it does on a large one.
PREFER_HNSW = " options='-c enable_seqscan=off -c enable_bitmapscan=off -c enable_sort=off'"


async def test_filtered_query_falls_back_to_exact_search_when_hnsw_finds_too_few(postgres_dsn):
    rng = np.random.default_rng(5)
    dim, n = 16, 1000
    matrix, query = rng.normal(size=(n, dim)), rng.normal(size=dim)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    dsn = postgres_dsn + PREFER_HNSW
    store = await PostgresVectorStore.connect(dsn, dim, schema=schema)
    try:
        await store.upsert(
            "ns",
            [VectorItem(f"v{i}", row.tolist(), "t", {"rare": i % 50 == 0}) for i, row in enumerate(matrix)],
        )
        vector = "[" + ",".join(map(repr, query.tolist())) + "]"
        with psycopg.connect(dsn) as conn:
            plan = conn.execute(
                f"EXPLAIN SELECT id FROM {schema}.vector_items WHERE namespace = 'ns' AND metadata @> %s::jsonb"
                " ORDER BY embedding <=> %s::vector LIMIT 5",
                ('{"rare": true}', vector),
            ).fetchall()
            approximate = conn.execute(
                f"SELECT count(*) FROM (SELECT id FROM {schema}.vector_items WHERE namespace = 'ns'"
                " AND metadata @> %s::jsonb ORDER BY embedding <=> %s::vector LIMIT 5) s",
                ('{"rare": true}', vector),
            ).fetchone()[0]
        assert "vector_items_embedding_hnsw" in str(plan)
        assert approximate < 5, "HNSW alone returned enough rows; this test no longer exercises the fallback"

        hits = await store.query("ns", query.tolist(), top_k=5, where={"rare": True})

        expected = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
        best = sorted(range(0, n, 50), key=lambda i: -expected[i])[:5]
        assert [h.id for h in hits] == [f"v{i}" for i in best]
    finally:
        await store.close()


async def test_replicas_starting_together_create_the_schema_once(postgres_dsn):
    schema = f"test_{uuid.uuid4().hex[:12]}"
    stores = await asyncio.gather(
        *(PostgresConversationStore.connect(postgres_dsn, schema=schema) for _ in range(4)),
        *(PostgresVectorStore.connect(postgres_dsn, 8, schema=schema) for _ in range(4)),
    )
    for store in stores:
        await store.close()
