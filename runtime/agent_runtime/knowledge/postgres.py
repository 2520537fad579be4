"""The knowledge index on PostgreSQL: full-text search and pgvector's HNSW in one table.

``knowledge_chunks`` holds each chunk with its ``readers text[]`` (GIN-indexed), its ``embedding
vector(n)`` (HNSW, cosine) and a generated ``tsvector`` (GIN) over title, headings and text weighted A, B
and C, so that a word in the title counts most. Headings are a ``jsonb`` array because a generated column
takes only immutable functions: ``to_tsvector`` of ``jsonb`` is, joining a ``text[]`` is not.
``knowledge_documents`` holds each document's content hash. The ingestion worker (``manage_index``) creates
the tables idempotently, under the memory stores' advisory lock, so that replicas starting together do not
collide. Agents only read: their runtime creates nothing, and refuses to start until the tables are there
and readable, because on AWS they sign in as a database user that may only SELECT
(:mod:`.postgres_bootstrap`).
Embeddings travel as binary ``float8[]`` cast to ``vector`` by the server: no pgvector Python package, and
no float formatted as text (a third of the time of a bulk load).

Every search is trimmed inside its SQL by ``readers && $readable`` (the caller's principals plus
:data:`~.base.EVERYONE`). HNSW applies that filter to the candidates it visits: pgvector 0.8 and later keep
scanning until enough rows pass (iterative scan, enabled when the installed version has it); before 0.8 the
scan stops at ``hnsw.ef_search`` candidates, so a selective filter can leave too few. Then ``ef_search`` is
raised to what the observed pass rate needs, and if that still finds too few, the query is repeated exactly
over the readable rows (which the GIN index on ``readers`` finds): better restricted matches never push
readable ones out of ``top_k``.

The query's words are ORed (a passage with some of them still ranks, ``ts_rank`` orders) through
``websearch_to_tsquery``, which accepts any text; :func:`~.common.query_terms` has already reduced it to
plain words. Hybrid search fuses both rankings in Python (:mod:`.fusion`), after both ran in one
read-only snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_runtime.memory.common import CloseOnce, DimensionMismatchError, check_id, dump_json
from agent_runtime.memory.postgres import (
    DEFAULT_EF_SEARCH,
    DEFAULT_SCHEMA,
    ConnectionAuth,
    create_schema,
    open_pool,
    require_pgvector,
    setup_connection,
)
from agent_runtime.settings_contract import env_name

from .base import Chunk, KnowledgeQuery, Passage
from .common import check_chunks, check_query, query_terms, readable_by
from .fusion import HYBRID_CANDIDATES, reciprocal_rank_fusion

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
_ITERATIVE_SCAN = (0, 8)  # the pgvector version that can keep scanning HNSW until enough rows pass a filter
_COLUMNS = "document_id, chunk_index, text, uri, title, headings"
TABLES = ("knowledge_chunks", "knowledge_documents")


class KnowledgeTablesMissing(RuntimeError):
    """A runtime that only reads the index found its tables missing or unreadable; the message says why."""


def _ddl(dimensions: int) -> list[str]:
    """The extension, tables and indexes (``{schema}`` is filled in by ``create_schema``)."""
    return [
        "CREATE EXTENSION IF NOT EXISTS vector",
        """CREATE TABLE IF NOT EXISTS {schema}.knowledge_documents (
            document_id text PRIMARY KEY,
            content_hash text NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {{schema}}.knowledge_chunks (
            document_id text NOT NULL,
            chunk_index integer NOT NULL,
            text text NOT NULL,
            uri text NOT NULL,
            title text NOT NULL,
            headings jsonb NOT NULL,
            readers text[] NOT NULL,
            embedding vector({int(dimensions)}) NOT NULL,
            search tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english'::regconfig, title), 'A')
                || setweight(to_tsvector('english'::regconfig, headings), 'B')
                || setweight(to_tsvector('english'::regconfig, text), 'C')) STORED,
            PRIMARY KEY (document_id, chunk_index))""",
        """CREATE INDEX IF NOT EXISTS knowledge_chunks_embedding
            ON {schema}.knowledge_chunks USING hnsw (embedding vector_cosine_ops)""",
        """CREATE INDEX IF NOT EXISTS knowledge_chunks_search
            ON {schema}.knowledge_chunks USING gin (search)""",
        """CREATE INDEX IF NOT EXISTS knowledge_chunks_readers
            ON {schema}.knowledge_chunks USING gin (readers)""",
    ]


async def create_tables(conn: AsyncConnection, schema: str, dimensions: int) -> None:
    """The extension, tables and indexes, each created when missing (safe when replicas start together)."""
    await require_pgvector(conn)
    await create_schema(conn, schema, _ddl(dimensions))


async def require_tables(conn: AsyncConnection, schema: str) -> None:
    """Refuse to start a reader whose tables are missing or that may not read them, naming the fix."""
    cur = await conn.execute(
        "SELECT c.relname, has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')",
        (schema, list(TABLES)),
    )
    readable = dict(await cur.fetchall())
    missing = [f"{schema}.{table}" for table in TABLES if table not in readable]
    if missing:
        manage = env_name("knowledge_manage_index")
        raise KnowledgeTablesMissing(
            f"the knowledge index has no table {', '.join(missing)} and this runtime only reads it "
            f"({manage}=false): the ingestion worker creates the tables when it starts (its runtime sets "
            f"{manage}=true), so run it once; on AWS also check that the database bootstrap prepared schema "
            f"{schema} and that {env_name('knowledge_schema')} names it"
        )
    unreadable = [f"{schema}.{table}" for table in TABLES if not readable[table]]
    if unreadable:
        raise KnowledgeTablesMissing(
            f"database user {conn.info.user} may not read {', '.join(unreadable)}: the database bootstrap "
            f"grants the reader USAGE on schema {schema} and SELECT on the writer's tables; run it again for "
            "this user (it is idempotent)"
        )


def tsquery_text(text: str) -> str | None:
    """The query's words joined by ``or`` for ``websearch_to_tsquery`` (``None`` when there are none).

    The words hold letters and digits only, so nothing in them is websearch syntax but the word ``or``
    itself, which is dropped (it is an English stop word, never indexed).
    """
    terms = [term for term in query_terms(text) if term.casefold() != "or"]
    return " or ".join(terms) if terms else None


class PostgresKnowledgeIndex:
    """A :class:`~.base.KnowledgeIndex` in PostgreSQL + pgvector (see the module docstring)."""

    def __init__(self, pool: AsyncConnectionPool, schema: str, dimensions: int, iterative_scan: bool):
        from psycopg import sql

        self._pool = pool
        self._close = CloseOnce(pool.close)
        self._dimensions = dimensions
        self._iterative_scan = iterative_scan
        chunks = sql.Identifier(schema, "knowledge_chunks")
        documents = sql.Identifier(schema, "knowledge_documents")
        self._lock_document = sql.SQL(
            "INSERT INTO {} (document_id, content_hash) VALUES (%s, %s)"
            " ON CONFLICT (document_id) DO UPDATE SET content_hash = excluded.content_hash"
        ).format(documents)
        self._forget_document = sql.SQL("DELETE FROM {} WHERE document_id = %s").format(documents)
        self._delete = sql.SQL("DELETE FROM {} WHERE document_id = %s").format(chunks)
        self._insert = sql.SQL(
            "INSERT INTO {} (document_id, chunk_index, text, uri, title, headings, readers, embedding)"
            " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %b::vector)"
        ).format(chunks)
        self._hashes = sql.SQL("SELECT document_id, content_hash FROM {}").format(documents)
        self._hash = sql.SQL("SELECT content_hash FROM {} WHERE document_id = %s").format(documents)
        self._keyword = sql.SQL(
            "SELECT {columns}, ts_rank(search, query) AS score"
            " FROM {chunks}, websearch_to_tsquery('english', %(text)s) AS query"
            " WHERE search @@ query AND readers && %(readable)s::text[]"
            " ORDER BY score DESC LIMIT %(depth)s"
        ).format(columns=sql.SQL(_COLUMNS), chunks=chunks)
        self._approximate = sql.SQL(
            "SELECT {columns}, 1 - (embedding <=> %(q)b::vector) FROM {chunks}"
            " WHERE readers && %(readable)s::text[] ORDER BY embedding <=> %(q)b::vector LIMIT %(depth)s"
        ).format(columns=sql.SQL(_COLUMNS), chunks=chunks)
        # MATERIALIZED keeps the planner from ordering through HNSW: the readable rows are scored exactly.
        self._exact = sql.SQL(
            "WITH readable AS MATERIALIZED ("
            " SELECT {columns}, embedding <=> %(q)b::vector AS distance FROM {chunks}"
            " WHERE readers && %(readable)s::text[])"
            " SELECT {columns}, 1 - distance FROM readable ORDER BY distance LIMIT %(depth)s"
        ).format(columns=sql.SQL(_COLUMNS), chunks=chunks)

    @classmethod
    async def connect(
        cls,
        dsn: str,
        dimensions: int,
        *,
        schema: str = DEFAULT_SCHEMA,
        manage_index: bool = True,
        auth: ConnectionAuth | None = None,
    ) -> PostgresKnowledgeIndex:
        """Connect; with ``manage_index`` create the extension, tables and indexes when missing, without it
        only check they are there and readable (:class:`KnowledgeTablesMissing`). Either way a table that
        holds vectors of other dimensions is refused. ``auth``: see :func:`.memory.postgres.open_pool`.
        """
        async with await setup_connection(dsn, auth) as conn:
            if manage_index:
                await create_tables(conn, schema, dimensions)
            else:
                await require_tables(conn, schema)
            await check_dimensions(conn, schema, dimensions)
            cur = await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            (version,) = await cur.fetchone()
        iterative = tuple(int(part) for part in version.split(".")[:2]) >= _ITERATIVE_SCAN
        return cls(await open_pool(dsn, auth), schema, dimensions, iterative)

    async def replace_document(self, document_id: str, chunks: Sequence[Chunk]) -> None:
        embeddings = check_chunks(document_id, chunks, self._dimensions)
        rows = [
            (
                document_id,
                chunk.index,
                chunk.text,
                chunk.uri,
                chunk.title,
                dump_json(list(chunk.headings)),
                sorted(chunk.readers),
                embedding,
            )
            for chunk, embedding in zip(chunks, embeddings, strict=True)
        ]
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            # The document's row first: its lock queues concurrent replaces of one document, so the second
            # deletes the first one's chunks instead of colliding with them.
            await cur.execute(self._lock_document, (document_id, chunks[0].content_hash))
            await cur.execute(self._delete, (document_id,))
            await cur.executemany(self._insert, rows)

    async def delete_document(self, document_id: str) -> int:
        check_id(document_id, "document id")
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(self._forget_document, (document_id,))
            deleted = await conn.execute(self._delete, (document_id,))
        return deleted.rowcount

    async def document_hashes(self) -> dict[str, str]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(self._hashes)
            return dict(await cur.fetchall())

    async def document_hash(self, document_id: str) -> str | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(self._hash, (document_id,))
            row = await cur.fetchone()
        return row[0] if row else None

    async def search(self, query: KnowledgeQuery) -> list[Passage]:
        embedding = check_query(query, self._dimensions)
        text = tsquery_text(query.text) if query.mode != "vector" else None
        if query.top_k == 0 or (query.mode == "keyword" and text is None):
            return []
        depth = max(query.top_k, HYBRID_CANDIDATES) if query.mode == "hybrid" else query.top_k
        params = {"text": text, "readable": readable_by(query.principals), "depth": depth}
        rankings = []
        async with self._pool.connection() as conn, conn.transaction():
            # One snapshot for both rankings, so a document replaced meanwhile is not fused in two versions.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if text is not None:
                rankings.append(await (await conn.execute(self._keyword, params)).fetchall())
            if embedding is not None:
                rankings.append(await self._nearest(conn, params | {"q": embedding}, query.top_k))
        rows = {(row[0], row[1]): row for ranking in rankings for row in ranking}
        if query.mode == "hybrid":
            ranked = reciprocal_rank_fusion([(row[0], row[1]) for row in ranking] for ranking in rankings)
        else:
            ranked = [((row[0], row[1]), row[-1]) for row in rankings[0]]
        return [_passage(rows[key], score) for key, score in ranked[: query.top_k]]

    async def _nearest(
        self, conn: AsyncConnection, params: dict[str, Any], needed: int
    ) -> list[tuple[Any, ...]]:
        """Up to ``depth`` readable chunks nearest the query: through HNSW, or exactly when HNSW finds fewer
        than the ``needed`` passages (a hybrid query's deeper candidate list may come back a little short:
        fusion needs candidates, not all of them; the passages returned must not go missing)."""
        depth = params["depth"]
        ef_search = min(
            max(DEFAULT_EF_SEARCH, 2 * depth), MAX_EF_SEARCH
        )  # HNSW returns at most ef_search rows
        if self._iterative_scan:
            await conn.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
        rows = await self._approximate_rows(conn, params, ef_search)
        if len(rows) < needed and not self._iterative_scan:
            # The filter passed len(rows) of ef_search candidates: ask for enough at that rate.
            wanted = min(2 * ef_search * depth // len(rows) if rows else MAX_EF_SEARCH, MAX_EF_SEARCH)
            if wanted > ef_search:
                rows = await self._approximate_rows(conn, params, wanted)
        if len(rows) < needed:  # too few readable rows among the nearest, or too few rows at all
            rows = await (await conn.execute(self._exact, params)).fetchall()
        return rows

    async def _approximate_rows(
        self, conn: AsyncConnection, params: dict[str, Any], ef_search: int
    ) -> list[tuple[Any, ...]]:
        await conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
        return await (await conn.execute(self._approximate, params)).fetchall()

    async def close(self) -> None:
        await self._close()


async def check_dimensions(conn: AsyncConnection, schema: str, dimensions: int) -> None:
    """Refuse to start on a table built for other embeddings, rather than fail every write and search."""
    cur = await conn.execute(
        "SELECT a.atttypmod FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = 'knowledge_chunks' AND a.attname = 'embedding'",
        (schema,),
    )
    (stored,) = await cur.fetchone()
    if stored != dimensions:
        raise DimensionMismatchError(
            f"table {schema}.knowledge_chunks holds {stored}-dimensional vectors but "
            f"{dimensions} were configured"
        )


def _passage(row: tuple[Any, ...], score: float) -> Passage:
    document_id, index, text, uri, title, headings = row[:6]
    return Passage(document_id, index, text, uri, title, tuple(headings), float(score))
