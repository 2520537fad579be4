"""The embedded knowledge index: FTS5 for keywords, numpy for vectors, in the runtime's SQLite file.

Tables are prefixed ``knowledge_`` so that the index can share the runtime's state file. Chunk text, title
and headings live in the FTS5 table ``knowledge_fts`` (porter stemming over unicode61 words; bm25 weighs a
title hit above a heading hit above a text hit); the rest of a chunk in ``knowledge_chunks`` and its
float32 embedding in ``knowledge_vectors``, all under the same rowid. Embeddings have a table of their own
so that ``knowledge_chunks``, which every keyword match is joined with, stays small enough to stay cached.

Readers are stored once per distinct set (``knowledge_reader_sets``, each reader of a set a row of
``knowledge_readers``), and each chunk points at its set. A search first turns the caller's principals
into the ids of the sets they may read, then trims inside both searches: the FTS query joins on those ids,
and the vector search scores only the rows of those sets before taking the best. Filtering after taking
the best would let better restricted matches push every readable passage out of ``top_k``.

Vectors are scored exactly, in numpy, over a matrix cached per index: this Python's ``sqlite3`` cannot load
sqlite-vec, and brute force over 50,000 x 384 float32 takes a few milliseconds. The matrix is grouped by
reader set, so the rows a caller may read are a few contiguous slices: trimming costs no copy, and a
caller who may read little costs little. The ingestion worker writes from another process, so every write
sets a new random ``revision`` in the same transaction, and a search reloads the matrix when the revision
it reads differs from the cached one.

One connection runs on one dedicated thread (as in :mod:`agent_runtime.memory.sqlite`): calls are
serialised in order, a whole search (trimming, both rankings, fetching passages) sees one snapshot of the
file, and neither SQLite nor the matrix product blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from agent_runtime.memory.common import DimensionMismatchError, check_id
from agent_runtime.sqlite_file import connect_wal
from agent_runtime.sqlite_transaction import in_transaction

from .base import Chunk, KnowledgeQuery, Passage
from .common import check_chunks, check_query, query_terms, readable_by
from .fusion import HYBRID_CANDIDATES, reciprocal_rank_fusion

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowledge_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision TEXT NOT NULL,
    dimensions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS knowledge_documents (
    document_id TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS knowledge_reader_sets (
    id INTEGER PRIMARY KEY,
    readers TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS knowledge_readers (
    reader TEXT NOT NULL,
    reader_set INTEGER NOT NULL,
    PRIMARY KEY (reader, reader_set)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS knowledge_chunks (
    id INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    uri TEXT NOT NULL,
    reader_set INTEGER NOT NULL,
    UNIQUE (document_id, chunk_index)
);
CREATE TABLE IF NOT EXISTS knowledge_vectors (
    id INTEGER PRIMARY KEY,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS knowledge_chunks_by_reader_set ON knowledge_chunks (reader_set);
CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_fts
    USING fts5(title, headings, text, tokenize='porter unicode61');
"""

MMAP_BYTES = 1 << 30

_NEW_REVISION = "UPDATE knowledge_state SET revision = lower(hex(randomblob(8)))"
_BM25 = "bm25(knowledge_fts, 4.0, 2.0, 1.0)"  # weights of title, headings, text
_KEYWORD = f"""
SELECT f.rowid, -{_BM25} FROM knowledge_fts f JOIN knowledge_chunks c ON c.id = f.rowid
WHERE knowledge_fts MATCH ? AND c.reader_set IN (SELECT value FROM json_each(?))
ORDER BY {_BM25} LIMIT ?
"""
_PASSAGES = """
SELECT c.id, c.document_id, c.chunk_index, c.uri, f.title, f.headings, f.text
FROM knowledge_chunks c JOIN knowledge_fts f ON f.rowid = c.id
WHERE c.id IN (SELECT value FROM json_each(?))
"""


def fts_query(text: str) -> str | None:
    """The query's words as an FTS5 query that ORs literal terms (``None`` when there are none).

    Each term is a double-quoted FTS5 string, so ``AND``, ``NEAR`` or ``OR`` in it is a word to find, not
    an operator; :func:`~.common.query_terms` already dropped every character FTS5 syntax uses. ``OR``
    lets a passage that has some of the words rank (bm25 puts those with more, and rarer, words first).
    """
    terms = query_terms(text)
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms) if terms else None


_VECTORS = (
    "SELECT c.id, c.reader_set, v.embedding FROM knowledge_chunks c"
    " JOIN knowledge_vectors v ON v.id = c.id ORDER BY c.reader_set, c.id"
)
LOAD_BATCH = 4096
"""Rows read and copied into the matrix at a time while it loads."""


class _Vectors:
    """Every chunk's unit embedding at one revision, grouped by reader set, with the chunk's row id."""

    def __init__(self, revision: str, ids: np.ndarray, reader_sets: np.ndarray, unit: np.ndarray):
        """``ids`` and ``reader_sets`` per row of ``unit``, ordered by reader set."""
        self.revision = revision
        self.ids = ids
        sets, starts = np.unique(reader_sets, return_index=True)
        ends = [*starts[1:], len(ids)]
        self.slices = {
            int(s): (int(start), int(end)) for s, start, end in zip(sets, starts, ends, strict=True)
        }
        self.unit = unit

    @classmethod
    def load(cls, c: sqlite3.Connection, revision: str, dimensions: int) -> _Vectors:
        """Read every embedding into one preallocated matrix, a batch at a time, and normalise it in place:
        the peak is the matrix and one batch. Fetching every row first, joining the blobs and dividing into
        a new array held the matrix about four times over (727 MB at the peak for a 154 MB matrix of
        100,000 x 384). Runs inside the caller's read transaction: the count and the rows agree."""
        (count,) = c.execute(f"SELECT count(*) FROM ({_VECTORS})").fetchone()
        ids, reader_sets = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
        unit = np.empty((count, dimensions), dtype=np.float32)
        cursor, at = c.execute(_VECTORS), 0
        while batch := cursor.fetchmany(LOAD_BATCH):
            end = at + len(batch)
            ids[at:end] = [row[0] for row in batch]
            reader_sets[at:end] = [row[1] for row in batch]
            # open() refused a file of other dimensions, so every blob holds exactly ``dimensions`` floats
            blobs = b"".join(row[2] for row in batch)
            unit[at:end] = np.frombuffer(blobs, dtype="<f4").reshape(len(batch), dimensions)
            at = end
        unit /= np.sqrt(np.einsum("ij,ij->i", unit, unit))[:, None]  # row norms without a squared copy
        return cls(revision, ids, reader_sets, unit)

    def search(self, query: list[float], allowed_sets: list[int], depth: int) -> list[tuple[int, float]]:
        """The ``depth`` most similar chunks among those whose reader set is allowed: (row id, cosine)."""
        ranges = [self.slices[s] for s in allowed_sets if s in self.slices]
        if not ranges:
            return []
        q = np.asarray(query, dtype=np.float32)
        q /= np.linalg.norm(q)
        rows = np.concatenate([np.arange(start, end) for start, end in ranges])
        # einsum, not BLAS's multithreaded matmul: the product is bound by memory bandwidth, so threads gain
        # nothing, and they stall whenever other work holds a core (several times slower at the median).
        scores = np.concatenate([np.einsum("ij,j->i", self.unit[start:end], q) for start, end in ranges])
        if depth < len(scores):
            best = np.argpartition(-scores, depth - 1)[:depth]
        else:
            best = np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(self.ids[rows[i]]), float(scores[i])) for i in best]


class SqliteKnowledgeIndex:
    """A :class:`~.base.KnowledgeIndex` in one SQLite file (see the module docstring for the layout)."""

    def __init__(self, path: str, dimensions: int):
        self._path = path
        self._dimensions = dimensions
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentstage-knowledge")
        self._conn: sqlite3.Connection | None = None
        self._vectors: _Vectors | None = None  # touched only on the database thread
        self._closed = False

    @classmethod
    async def open(cls, path: str, dimensions: int) -> SqliteKnowledgeIndex:
        """Open (creating when missing) the index in ``path``; refuses a file indexed at other dimensions."""
        index = cls(path, dimensions)
        try:
            await index._run(index._connect)
        except BaseException:
            await index.close()
            raise
        return index

    def _connect(self) -> None:
        # Autocommit: every transaction is explicit. The busy timeout makes a writer in another process
        # (the ingestion worker) delay us instead of failing us.
        self._conn = connect_wal(self._path, timeout=5.0)
        # Reads through a memory map of the file: a keyword search touches pages of several tables for every
        # match, and the map spares it a system call per page (the pages stay in the OS cache, shared).
        self._conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")

        def create(c: sqlite3.Connection) -> int:
            # not executescript(): it commits first, and creation must be one transaction (two processes
            # opening a new file at once)
            for statement in filter(str.strip, _SCHEMA.split(";")):
                c.execute(statement)
            c.execute(
                "INSERT OR IGNORE INTO knowledge_state VALUES (1, lower(hex(randomblob(8))), ?)",
                (self._dimensions,),
            )
            return c.execute("SELECT dimensions FROM knowledge_state").fetchone()[0]

        stored = in_transaction(self._conn, create)
        if stored != self._dimensions:
            raise DimensionMismatchError(
                f"the knowledge index in {self._path} holds {stored}-dimensional embeddings but "
                f"{self._dimensions} were configured"
            )

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("the knowledge index is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one read transaction: everything it reads belongs to the same commit."""
        return await self._run(self._transaction, "BEGIN", fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one write transaction, taking the write lock up front (no lock-upgrade deadlock)."""
        return await self._run(self._transaction, "BEGIN IMMEDIATE", fn)

    def _transaction(self, begin: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._conn is not None
        return in_transaction(self._conn, fn, begin)

    async def replace_document(self, document_id: str, chunks: Sequence[Chunk]) -> None:
        embeddings = check_chunks(document_id, chunks, self._dimensions)

        def write(c: sqlite3.Connection) -> None:
            old_sets = _delete_chunks(c, document_id)
            for chunk, embedding in zip(chunks, embeddings, strict=True):
                row_id = c.execute(
                    "INSERT INTO knowledge_chunks (document_id, chunk_index, uri, reader_set)"
                    " VALUES (?, ?, ?, ?)",
                    (document_id, chunk.index, chunk.uri, _reader_set(c, chunk.readers)),
                ).lastrowid
                c.execute(
                    "INSERT INTO knowledge_vectors VALUES (?, ?)",
                    (row_id, np.asarray(embedding, dtype="<f4").tobytes()),
                )
                c.execute(
                    "INSERT INTO knowledge_fts (rowid, title, headings, text) VALUES (?, ?, ?, ?)",
                    (row_id, chunk.title, _dump(list(chunk.headings)), chunk.text),
                )
            c.execute(
                "INSERT INTO knowledge_documents VALUES (?, ?) "
                "ON CONFLICT (document_id) DO UPDATE SET content_hash = excluded.content_hash",
                (document_id, chunks[0].content_hash),
            )
            _prune_reader_sets(c, old_sets)
            c.execute(_NEW_REVISION)

        await self._write(write)

    async def delete_document(self, document_id: str) -> int:
        check_id(document_id, "document id")

        def write(c: sqlite3.Connection) -> int:
            count = c.execute(
                "SELECT count(*) FROM knowledge_chunks WHERE document_id = ?", (document_id,)
            ).fetchone()[0]
            if count:  # an unknown document changes nothing: keep every reader's cached matrix
                _prune_reader_sets(c, _delete_chunks(c, document_id))
                c.execute(_NEW_REVISION)
            c.execute("DELETE FROM knowledge_documents WHERE document_id = ?", (document_id,))
            return count

        return await self._write(write)

    async def document_hashes(self) -> dict[str, str]:
        rows = await self._read(
            lambda c: c.execute("SELECT document_id, content_hash FROM knowledge_documents").fetchall()
        )
        return dict(rows)

    async def document_hash(self, document_id: str) -> str | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT content_hash FROM knowledge_documents WHERE document_id = ?", (document_id,)
            ).fetchone()
        )
        return row[0] if row else None

    async def search(self, query: KnowledgeQuery) -> list[Passage]:
        embedding = check_query(query, self._dimensions)
        match = fts_query(query.text) if query.mode != "vector" else None
        if query.top_k == 0 or (query.mode == "keyword" and match is None):
            return []
        return await self._read(lambda c: self._search(c, query, match, embedding))

    def _search(
        self, c: sqlite3.Connection, query: KnowledgeQuery, match: str | None, embedding: list[float] | None
    ) -> list[Passage]:
        """Both rankings, trimmed to what the principals may read, fused when hybrid (database thread)."""
        allowed = [
            row[0]
            for row in c.execute(
                "SELECT DISTINCT reader_set FROM knowledge_readers"
                " WHERE reader IN (SELECT value FROM json_each(?))",
                (_dump(readable_by(query.principals)),),
            )
        ]
        if not allowed:
            return []
        depth = max(query.top_k, HYBRID_CANDIDATES) if query.mode == "hybrid" else query.top_k
        rankings: list[list[tuple[int, float]]] = []
        if match is not None:
            rankings.append(c.execute(_KEYWORD, (match, _dump(allowed), depth)).fetchall())
        if embedding is not None:
            rankings.append(self._current_vectors(c).search(embedding, allowed, depth))
        if query.mode == "hybrid":
            ranked = reciprocal_rank_fusion([row_id for row_id, _ in ranking] for ranking in rankings)
        else:
            (ranked,) = rankings
        best = ranked[: query.top_k]
        rows = {row[0]: row[1:] for row in c.execute(_PASSAGES, (_dump([row_id for row_id, _ in best]),))}
        return [_passage(rows[row_id], score) for row_id, score in best]

    def _current_vectors(self, c: sqlite3.Connection) -> _Vectors:
        """The cached matrix, reloaded when any process has written since it was loaded (database thread)."""
        (revision,) = c.execute("SELECT revision FROM knowledge_state").fetchone()
        if self._vectors is None or self._vectors.revision != revision:
            self._vectors = None  # free the old matrix before building the new one
            self._vectors = _Vectors.load(c, revision, self._dimensions)
        return self._vectors

    async def close(self) -> None:
        if self._closed:
            return
        if self._conn is not None:
            await self._run(self._conn.close)
        self._closed = True
        self._vectors = None
        self._executor.shutdown(wait=False)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _reader_set(c: sqlite3.Connection, readers: frozenset[str]) -> int:
    """The id of this exact set of readers, stored on first use."""
    key = _dump(sorted(readers))
    row = c.execute("SELECT id FROM knowledge_reader_sets WHERE readers = ?", (key,)).fetchone()
    if row:
        return row[0]
    set_id = c.execute("INSERT INTO knowledge_reader_sets (readers) VALUES (?)", (key,)).lastrowid
    assert set_id is not None  # an INSERT always sets it
    c.executemany("INSERT INTO knowledge_readers VALUES (?, ?)", [(reader, set_id) for reader in readers])
    return set_id


def _delete_chunks(c: sqlite3.Connection, document_id: str) -> list[int]:
    """Delete the document's chunks; returns the reader sets they used (to prune if now unused)."""
    sets = [
        row[0]
        for row in c.execute(
            "SELECT DISTINCT reader_set FROM knowledge_chunks WHERE document_id = ?", (document_id,)
        )
    ]
    rows = "(SELECT id FROM knowledge_chunks WHERE document_id = ?)"
    c.execute(f"DELETE FROM knowledge_fts WHERE rowid IN {rows}", (document_id,))
    c.execute(f"DELETE FROM knowledge_vectors WHERE id IN {rows}", (document_id,))
    c.execute("DELETE FROM knowledge_chunks WHERE document_id = ?", (document_id,))
    return sets


def _prune_reader_sets(c: sqlite3.Connection, candidates: list[int]) -> None:
    """Forget the reader sets among ``candidates`` that no chunk uses any more."""
    unused = [
        set_id
        for set_id in candidates
        if c.execute("SELECT 1 FROM knowledge_chunks WHERE reader_set = ? LIMIT 1", (set_id,)).fetchone()
        is None
    ]
    c.executemany("DELETE FROM knowledge_reader_sets WHERE id = ?", [(set_id,) for set_id in unused])
    c.executemany("DELETE FROM knowledge_readers WHERE reader_set = ?", [(set_id,) for set_id in unused])


def _passage(row: tuple[Any, ...], score: float) -> Passage:
    document_id, index, uri, title, headings, text = row
    return Passage(document_id, index, text, uri, title, tuple(json.loads(headings)), score)
