"""PostgreSQL backends (psycopg 3, async pool), with pgvector for vectors.

Tables live in their own schema (``agentstage`` by default) and are created idempotently at startup, under
an advisory lock because concurrent ``CREATE ... IF NOT EXISTS`` from several starting replicas can still
collide in the catalog. Vectors are sent as pgvector's text form cast with ``::vector``, so the ``pgvector``
Python package is not needed.

Connections take an optional :data:`ConnectionAuth`: libpq parameters asked for afresh by every connection
opened, the first and each one the pool adds later, which is how a password that expires (an RDS IAM token,
:mod:`.postgres_iam`) reaches them. Without it the DSN is used as it is.

Search is ``ORDER BY embedding <=> query`` (cosine distance) over an HNSW index. HNSW is approximate, and
it applies ``WHERE`` (the namespace and metadata filters) only to the ``hnsw.ef_search`` candidates it
found, so a selective filter can leave fewer than ``top_k`` rows (pgvector 0.6 has no iterative scan). When
that happens the query is repeated exactly over the filtered rows, which the planner reaches through the
``(namespace, id)`` primary key. ``top_k`` above 40 raises ``ef_search`` for that query, since HNSW never
returns more rows than that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .base import Conversation, HistoryPage, Message, Owner, VectorHit, VectorItem
from .common import (
    CloseOnce,
    DimensionMismatchError,
    InvalidCursor,
    check_count,
    check_embedding,
    check_id,
    check_items,
    check_messages,
    check_owner,
    check_where,
    conversation_key,
    dump_json,
    page_span,
    position_cursor,
    read_position,
)

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

DEFAULT_SCHEMA = "agentstage"
DEFAULT_EF_SEARCH = 40
_SCHEMA_LOCK = 7_412_001  # advisory lock key serialising schema creation across replicas
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ConnectionAuth = Callable[[], Awaitable[dict[str, str]]]
"""Extra libpq parameters (a fresh ``password``, an ``sslmode``) for one new connection."""


def _vector_literal(values: Sequence[float]) -> str:
    return "[" + ",".join(map(repr, values)) + "]"


async def create_schema(conn: AsyncConnection, schema: str, ddl: list[str]) -> None:
    """Run ``ddl`` (``{schema}`` is filled in as a quoted identifier) once across concurrently starting replicas.

    The schema is created only when missing: ``CREATE SCHEMA IF NOT EXISTS`` checks the CREATE privilege on
    the database before it looks, and a role that owns its schema (the database bootstrap's writer) need not
    hold that privilege.
    """
    from psycopg import sql

    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        found = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if await found.fetchone() is None:
            await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for statement in ddl:
            await conn.execute(sql.SQL(statement).format(schema=sql.Identifier(schema)))


async def setup_connection(dsn: str, auth: ConnectionAuth | None = None) -> AsyncConnection:
    """One autocommit connection (schema setup), authenticated by ``auth`` when given."""
    from psycopg import AsyncConnection  # lazy: only deployments that use PostgreSQL pay for the import

    params = await auth() if auth is not None else {}
    return await AsyncConnection.connect(dsn, autocommit=True, **params)


async def open_pool(dsn: str, auth: ConnectionAuth | None = None) -> AsyncConnectionPool:
    """A small pool of autocommit connections: a single statement needs no BEGIN/COMMIT round trips, and
    multi-statement operations open an explicit transaction. ``wait=True`` fails now if the server is down.

    With ``auth`` the pool asks it for every connection it opens (psycopg_pool 3.3 resolves callable
    ``kwargs`` per connection), so one opened an hour later carries a fresh credential.
    """
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(dsn, min_size=1, max_size=10, open=False, kwargs=_pool_kwargs(auth))
    await pool.open(wait=True)
    return pool


def _pool_kwargs(
    auth: ConnectionAuth | None,
) -> dict[str, Any] | Callable[[], Awaitable[dict[str, Any]]]:
    if auth is None:
        return {"autocommit": True}

    async def kwargs() -> dict[str, Any]:
        return {"autocommit": True, **await auth()}

    return kwargs


class PostgresConversationStore:
    """Conversations keyed by (tenant, caller, id) in ``conversations``; their messages as ``json`` rows of
    ``conversation_history`` ordered by an identity column.

    ``json`` rather than ``jsonb``: the message is stored as sent, and jsonb would refuse a ``\\u0000`` that a
    model or a user can put in content. History written before conversations had owners is in
    ``conversation_messages``, which this store never reads: it has no owner, so no caller may see it.
    """

    def __init__(self, pool: AsyncConnectionPool, schema: str):
        from psycopg import sql

        self._pool = pool
        self._close = CloseOnce(pool.close)
        conversations = sql.Identifier(schema, "conversations")
        history = sql.Identifier(schema, "conversation_history")
        key = sql.SQL("tenant = %s AND caller = %s AND conversation_id = %s")
        self._touch = sql.SQL(
            "INSERT INTO {} AS c (tenant, caller, conversation_id, messages) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (tenant, caller, conversation_id) DO UPDATE SET "
            "updated_at = greatest(c.updated_at, now()), messages = c.messages + excluded.messages"
        ).format(conversations)
        self._insert = sql.SQL(
            "INSERT INTO {} (tenant, caller, conversation_id, message) VALUES (%s, %s, %s, %s)"
        ).format(history)
        self._select = sql.SQL("SELECT message FROM {} WHERE {} ORDER BY seq DESC LIMIT %s").format(
            history, key
        )
        self._length = sql.SQL("SELECT messages FROM {} WHERE {}").format(conversations, key)
        self._span = sql.SQL("SELECT message FROM {} WHERE {} ORDER BY seq LIMIT %s OFFSET %s").format(
            history, key
        )
        self._span_from_end = sql.SQL(
            "SELECT message FROM {} WHERE {} ORDER BY seq DESC LIMIT %s OFFSET %s"
        ).format(history, key)
        # The last column, the cursor's time: microseconds, exactly (a float's seconds would not compare equal).
        listed = (
            "SELECT conversation_id, extract(epoch FROM created_at), extract(epoch FROM updated_at), messages, "
            "(extract(epoch FROM updated_at) * 1000000)::bigint "
        )
        newest = "ORDER BY updated_at DESC, conversation_id DESC LIMIT %s"
        self._list = sql.SQL(listed + "FROM {} WHERE tenant = %s AND caller = %s " + newest).format(
            conversations
        )
        # The row comparison is a range of the (tenant, caller, updated_at) index (PostgreSQL derives
        # ``updated_at <=`` from it): a page reads what the first does, however deep the walk.
        self._list_after = sql.SQL(
            listed
            + "FROM {} WHERE tenant = %s AND caller = %s AND (updated_at, conversation_id) < (%s, %s) "
            + newest
        ).format(conversations)
        self._delete = (
            sql.SQL("DELETE FROM {} WHERE {}").format(conversations, key),
            sql.SQL("DELETE FROM {} WHERE {}").format(history, key),
        )
        self._delete_tenant = (
            sql.SQL("DELETE FROM {} WHERE tenant = %s").format(conversations),
            sql.SQL("DELETE FROM {} WHERE tenant = %s").format(history),
        )

    @classmethod
    async def connect(
        cls, dsn: str, *, schema: str = DEFAULT_SCHEMA, auth: ConnectionAuth | None = None
    ) -> PostgresConversationStore:
        ddl = [
            """CREATE TABLE IF NOT EXISTS {schema}.conversations (
                tenant text NOT NULL,
                caller text NOT NULL,
                conversation_id text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                messages bigint NOT NULL,
                PRIMARY KEY (tenant, caller, conversation_id))""",
            """CREATE INDEX IF NOT EXISTS conversations_by_update
                ON {schema}.conversations (tenant, caller, updated_at)""",
            """CREATE TABLE IF NOT EXISTS {schema}.conversation_history (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                tenant text NOT NULL,
                caller text NOT NULL,
                conversation_id text NOT NULL,
                message json NOT NULL)""",
            """CREATE INDEX IF NOT EXISTS conversation_history_by_conversation
                ON {schema}.conversation_history (tenant, caller, conversation_id, seq)""",
        ]
        async with await setup_connection(dsn, auth) as conn:
            await create_schema(conn, schema, ddl)
        return cls(await open_pool(dsn, auth), schema)

    async def append(self, owner: Owner, conversation_id: str, messages: Sequence[Message]) -> None:
        key = conversation_key(owner, conversation_id)
        rows = [(*key, dump_json(m)) for m in check_messages(messages)]
        if not rows:
            return
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            # The upsert locks the conversation's row until commit, so appends to one conversation are
            # serialised: one append's messages get consecutive sequence numbers, visible in sequence order.
            await cur.execute(self._touch, (*key, len(rows)))
            await cur.executemany(self._insert, rows)

    async def history(self, owner: Owner, conversation_id: str, limit: int | None = None) -> list[Message]:
        key = conversation_key(owner, conversation_id)
        limit = check_count(limit, "limit", optional=True)
        async with self._pool.connection() as conn:
            cur = await conn.execute(self._select, (*key, limit))  # LIMIT NULL means no limit
            rows = await cur.fetchall()
        return [message for (message,) in reversed(rows)]

    async def page(
        self, owner: Owner, conversation_id: str, limit: int, before: int | None = None
    ) -> HistoryPage:
        key = conversation_key(owner, conversation_id)
        async with self._pool.connection() as conn, conn.transaction():
            # Both statements read one snapshot (an append writes the length and its messages in one
            # transaction), so a page's rows are counted from the conversation's end as exactly as from its
            # start: from the nearer end, and the newest page reads its own rows only, however long the
            # conversation (counted from the start, it stepped through all of them).
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = await (await conn.execute(self._length, key)).fetchone()
            length = int(row[0]) if row else 0
            span = page_span(length, limit, before)
            after_span = length - span.stop
            if after_span < span.start:
                cur = await conn.execute(self._span_from_end, (*key, len(span), after_span))
                messages = [message for (message,) in reversed(await cur.fetchall())]
            else:
                cur = await conn.execute(self._span, (*key, len(span), span.start))
                messages = [message for (message,) in await cur.fetchall()]
        return HistoryPage(span.start, messages, length)

    async def conversations(
        self, owner: Owner, limit: int = 100, after: str | None = None
    ) -> list[Conversation]:
        check_owner(owner)
        limit = check_count(limit, "limit")
        query, parameters = self._list, [owner.tenant, owner.caller, limit]
        if after is not None:
            changed, last = _after(after)
            query, parameters[2:2] = self._list_after, [changed, last]
        async with self._pool.connection() as conn:
            cur = await conn.execute(query, parameters)
            rows = await cur.fetchall()
        return [
            Conversation(id_, float(created), float(updated), int(count), position_cursor(microseconds, id_))
            for id_, created, updated, count, microseconds in rows
        ]

    async def delete(self, owner: Owner, conversation_id: str) -> bool:
        key = conversation_key(owner, conversation_id)
        async with self._pool.connection() as conn, conn.transaction():
            found = await conn.execute(self._delete[0], key)
            await conn.execute(self._delete[1], key)
        return found.rowcount > 0

    async def delete_tenant(self, tenant: str) -> int:
        check_id(tenant, "tenant")
        async with self._pool.connection() as conn, conn.transaction():
            counted = await conn.execute(self._delete_tenant[0], (tenant,))
            await conn.execute(self._delete_tenant[1], (tenant,))
        return counted.rowcount

    async def close(self) -> None:
        await self._close()


def _after(cursor: str) -> tuple[datetime, str]:
    """The (updated_at, conversation id) a listing's cursor names: microseconds since the epoch, exactly."""
    changed, conversation_id = read_position(cursor)
    if not isinstance(changed, int):
        raise InvalidCursor(cursor)
    try:
        return _EPOCH + timedelta(microseconds=changed), conversation_id
    except OverflowError as error:
        raise InvalidCursor(cursor) from error


class PostgresVectorStore:
    """Items in a ``vector(n)`` table keyed by (namespace, id), searched by cosine distance over HNSW."""

    def __init__(self, pool: AsyncConnectionPool, schema: str, dimensions: int):
        from psycopg import sql

        self._pool = pool
        self._close = CloseOnce(pool.close)
        self._dimensions = dimensions
        table = sql.Identifier(schema, "vector_items")
        self._upsert = sql.SQL(
            "INSERT INTO {} (namespace, id, embedding, text, metadata) VALUES (%s, %s, %s::vector, %s, %s::jsonb)"
            " ON CONFLICT (namespace, id) DO UPDATE SET"
            " embedding = excluded.embedding, text = excluded.text, metadata = excluded.metadata"
        ).format(table)
        self._approximate = sql.SQL(
            "SELECT id, text, metadata, 1 - (embedding <=> %(q)s::vector) FROM {}"
            " WHERE namespace = %(namespace)s AND metadata @> %(where)s::jsonb"
            " ORDER BY embedding <=> %(q)s::vector LIMIT %(top_k)s"
        ).format(table)
        # MATERIALIZED keeps the planner from ordering through the HNSW index: the filter runs first, exactly.
        self._exact = sql.SQL(
            "WITH candidates AS MATERIALIZED ("
            " SELECT id, text, metadata, embedding <=> %(q)s::vector AS distance FROM {}"
            " WHERE namespace = %(namespace)s AND metadata @> %(where)s::jsonb)"
            " SELECT id, text, metadata, 1 - distance FROM candidates ORDER BY distance LIMIT %(top_k)s"
        ).format(table)
        self._delete = sql.SQL("DELETE FROM {} WHERE namespace = %s AND id = ANY(%s)").format(table)

    @classmethod
    async def connect(
        cls, dsn: str, dimensions: int, *, schema: str = DEFAULT_SCHEMA, auth: ConnectionAuth | None = None
    ) -> PostgresVectorStore:
        ddl = [
            "CREATE EXTENSION IF NOT EXISTS vector",
            f"""CREATE TABLE IF NOT EXISTS {{schema}}.vector_items (
                namespace text NOT NULL,
                id text NOT NULL,
                embedding vector({int(dimensions)}) NOT NULL,
                text text NOT NULL,
                metadata jsonb NOT NULL DEFAULT '{{{{}}}}',
                PRIMARY KEY (namespace, id))""",
            """CREATE INDEX IF NOT EXISTS vector_items_embedding_hnsw
                ON {schema}.vector_items USING hnsw (embedding vector_cosine_ops)""",
        ]
        async with await setup_connection(dsn, auth) as conn:
            await require_pgvector(conn)
            await create_schema(conn, schema, ddl)
            cur = await conn.execute(
                "SELECT a.atttypmod FROM pg_attribute a"
                " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = 'vector_items' AND a.attname = 'embedding'",
                (schema,),
            )
            (stored,) = await cur.fetchone()
        if stored != dimensions:  # refuse to start rather than fail every write
            raise DimensionMismatchError(
                f"table {schema}.vector_items holds {stored}-dimensional vectors but "
                f"AGENTSTAGE_EMBEDDING_DIMENSIONS is {dimensions}"
            )
        return cls(await open_pool(dsn, auth), schema, dimensions)

    async def upsert(self, namespace: str, items: Sequence[VectorItem]) -> None:
        check_id(namespace, "namespace")
        rows = [
            (namespace, item.id, _vector_literal(values), item.text, dump_json(item.metadata))
            for item, values in check_items(items, self._dimensions)
        ]
        if not rows:
            return
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(self._upsert, rows)

    async def query(
        self,
        namespace: str,
        embedding: Sequence[float],
        top_k: int = 5,
        where: dict[str, Any] | None = None,
    ) -> list[VectorHit]:
        check_id(namespace, "namespace")
        params = {
            "namespace": namespace,
            "q": _vector_literal(check_embedding(embedding, self._dimensions)),
            "top_k": check_count(top_k, "top_k"),
            "where": dump_json(check_where(where)),  # jsonb containment: exact match of each key's value
        }
        if top_k == 0:
            return []
        async with self._pool.connection() as conn:
            if top_k <= DEFAULT_EF_SEARCH:
                rows = await self._search(conn, params)
            else:
                async with conn.transaction():  # HNSW never returns more than ef_search rows: raise it
                    await conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(top_k),))
                    rows = await self._search(conn, params)
        return [
            VectorHit(id=id_, text=text, score=float(score), metadata=meta) for id_, text, meta, score in rows
        ]

    async def _search(self, conn: AsyncConnection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        rows = await (await conn.execute(self._approximate, params)).fetchall()
        if len(rows) < params["top_k"]:  # the filters discarded index candidates, or there are fewer matches
            rows = await (await conn.execute(self._exact, params)).fetchall()
        return rows

    async def delete(self, namespace: str, ids: Sequence[str]) -> None:
        check_id(namespace, "namespace")
        ids = [check_id(id_, "item id") for id_ in ids]
        if ids:
            async with self._pool.connection() as conn:
                await conn.execute(self._delete, (namespace, ids))

    async def close(self) -> None:
        await self._close()


async def require_pgvector(conn: AsyncConnection) -> None:
    """Fail with the fix, rather than with CREATE EXTENSION's "could not open extension control file"."""
    cur = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    if await cur.fetchone() is None:
        raise RuntimeError(
            "the pgvector extension is not available on this PostgreSQL server "
            "(on Azure Database for PostgreSQL, allow-list VECTOR in the azure.extensions parameter)"
        )
