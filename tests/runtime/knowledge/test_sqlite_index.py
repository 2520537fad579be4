"""The KnowledgeIndex contract on SQLite, and what only SQLite has: several processes on one file."""

from __future__ import annotations

import asyncio
import sys
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from contract import (
    DIMENSIONS,
    P50_TARGET_MS,
    SCALE_CHUNKS,
    SCALE_DIMENSIONS,
    KnowledgeIndexContract,
    ask,
    document,
    everything,
    p50_ms,
    scale_documents,
    scale_queries,
    version_hash,
)

from agent_runtime.knowledge import sqlite as sqlite_index
from agent_runtime.knowledge.base import KnowledgeIndex
from agent_runtime.knowledge.sqlite import SqliteKnowledgeIndex, fts_query
from agent_runtime.memory import DimensionMismatchError, Owner
from agent_runtime.memory.sqlite import SqliteConversationStore

pytestmark = pytest.mark.anyio


class TestSqlite(KnowledgeIndexContract):
    @pytest.fixture
    async def index(self, tmp_path: Path) -> AsyncIterator[KnowledgeIndex]:
        index = await SqliteKnowledgeIndex.open(str(tmp_path / "state.db"), DIMENSIONS)
        yield index
        await index.close()


def test_fts_query_quotes_every_term_and_ors_them() -> None:
    assert (
        fts_query('NEAR(x b) AND "c" -d:e* f|g \\ h')
        == '"NEAR" OR "x" OR "b" OR "c" OR "d" OR "e" OR "f" OR "g" OR "h"'
    )
    # Function words are left out, unless the query has nothing else: then operator words stay quoted.
    assert fts_query("to be OR NOT to be") == '"to" OR "be" OR "OR" OR "NOT"'
    assert fts_query('"*:(-') is None
    assert fts_query("Zyzzyva zyzzyva ZYZZYVA") == '"Zyzzyva"'


async def test_a_second_index_on_the_same_file_sees_the_first_ones_writes(tmp_path: Path) -> None:
    """Two instances stand for the ingestion worker and the API: separate connections, separate caches."""
    path = str(tmp_path / "state.db")
    writer = await SqliteKnowledgeIndex.open(path, DIMENSIONS)
    reader = await SqliteKnowledgeIndex.open(path, DIMENSIONS)
    try:
        await writer.replace_document("a", document("a", ["alpha one"]))
        assert await everything(reader) == {("a", 0): "alpha one"}  # the reader now caches the matrix

        await writer.replace_document("b", document("b", ["beta one", "beta two"]))
        assert await everything(reader) == {("a", 0): "alpha one", ("b", 0): "beta one", ("b", 1): "beta two"}

        await writer.replace_document("a", document("a", ["gamma"], readers=["hr"], version="v2"))
        hr = await reader.search(ask("gamma", principals=["hr"], top_k=1, mode="vector"))
        assert [(p.document_id, p.text) for p in hr] == [("a", "gamma")]
        assert await everything(reader) == {("b", 0): "beta one", ("b", 1): "beta two"}

        await writer.delete_document("b")
        assert await everything(reader) == {}
        assert await reader.document_hashes() == await writer.document_hashes()
    finally:
        await writer.close()
        await reader.close()


async def test_writes_of_another_process_are_seen_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    index = await SqliteKnowledgeIndex.open(path, DIMENSIONS)
    try:
        await index.replace_document("a", document("a", ["alpha one"]))
        assert await everything(index) == {("a", 0): "alpha one"}
        script = (
            "import asyncio, sys\n"
            "from contract import DIMENSIONS, document\n"
            "from agent_runtime.knowledge.sqlite import SqliteKnowledgeIndex\n"
            "async def main():\n"
            "    index = await SqliteKnowledgeIndex.open(sys.argv[1], DIMENSIONS)\n"
            "    await index.replace_document('a', document('a', ['written elsewhere'], version='v2'))\n"
            "    await index.close()\n"
            "asyncio.run(main())\n"
        )
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, path, cwd=Path(__file__).parent
        )
        assert await asyncio.wait_for(writer.wait(), timeout=60) == 0

        assert await everything(index) == {("a", 0): "written elsewhere"}
    finally:
        await index.close()


async def test_concurrent_replaces_of_one_document_leave_one_whole_version(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    indexes = [await SqliteKnowledgeIndex.open(path, DIMENSIONS) for _ in range(3)]
    try:
        versions = {f"v{n}": [f"version {n} chunk {i}" for i in range(n + 1)] for n in range(6)}
        await asyncio.gather(
            *(
                indexes[n % 3].replace_document("doc", document("doc", texts, version=v))
                for n, (v, texts) in enumerate(versions.items())
            )
        )

        (winner,) = [v for v in versions if version_hash("doc", v) == await indexes[0].document_hash("doc")]
        for index in indexes:
            assert await everything(index) == {("doc", i): text for i, text in enumerate(versions[winner])}
    finally:
        for index in indexes:
            await index.close()


async def test_it_shares_the_runtimes_state_file(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    conversations = await SqliteConversationStore.open(path)
    index = await SqliteKnowledgeIndex.open(path, DIMENSIONS)
    try:
        await conversations.append(Owner("tenant", "caller"), "c1", [{"role": "user", "content": "hi"}])
        await index.replace_document("a", document("a", ["alpha one"]))

        assert await everything(index) == {("a", 0): "alpha one"}
        assert await conversations.history(Owner("tenant", "caller"), "c1") == [
            {"role": "user", "content": "hi"}
        ]
    finally:
        await index.close()
        await conversations.close()


async def test_reopening_with_other_dimensions_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    index = await SqliteKnowledgeIndex.open(path, DIMENSIONS)
    await index.close()
    with pytest.raises(DimensionMismatchError, match=f"{DIMENSIONS}-dimensional"):
        await SqliteKnowledgeIndex.open(path, DIMENSIONS * 2)


async def test_loading_the_matrix_holds_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first search after a write loads every embedding: the peak is the matrix and one batch, not the
    rows, their joined bytes and a normalised copy besides (four times the matrix before)."""
    monkeypatch.setattr(sqlite_index, "LOAD_BATCH", 256)
    index = await SqliteKnowledgeIndex.open(str(tmp_path / "state.db"), SCALE_DIMENSIONS)
    try:
        for document_id, chunks in scale_documents(chunks=4000):
            await index.replace_document(document_id, chunks)
        [query] = scale_queries(count=1)
        tracemalloc.start()
        try:
            found = await index.search(replace(query, mode="vector", principals=frozenset({"group-1"})))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        matrix = 4000 * SCALE_DIMENSIONS * 4
        assert found and peak < 1.5 * matrix, f"peak {peak / 1e6:.1f} MB for a {matrix / 1e6:.1f} MB matrix"
    finally:
        await index.close()


@pytest.mark.slow
async def test_hybrid_search_p50_at_scale(tmp_path: Path) -> None:
    index = await SqliteKnowledgeIndex.open(str(tmp_path / "state.db"), SCALE_DIMENSIONS)
    try:
        for document_id, chunks in scale_documents():
            await index.replace_document(document_id, chunks)

        p50 = await p50_ms(index, scale_queries())

        assert p50 <= P50_TARGET_MS, f"hybrid p50 {p50:.1f} ms at {SCALE_CHUNKS} chunks"
    finally:
        await index.close()
