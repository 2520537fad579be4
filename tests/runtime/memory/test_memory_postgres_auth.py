"""How the PostgreSQL stores connect: per-connection credentials (``auth``, what IAM tokens ride on), and a
database user that owns its schema but may not create schemas, as the database bootstrap leaves it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agent_runtime.memory import Owner, VectorItem
from agent_runtime.memory.postgres import PostgresConversationStore, PostgresVectorStore

pytestmark = pytest.mark.anyio


class CountingAuth:
    """A provider of connection parameters that counts how often it is asked, and names each connection
    after the call that opened it (``application_name``, visible in ``pg_stat_activity``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    async def __call__(self) -> dict[str, str]:
        self.calls += 1
        return {"application_name": f"{self.name}-{self.calls}"}


async def test_both_stores_ask_for_credentials_for_each_connection(postgres_dsn: str) -> None:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    tag = uuid.uuid4().hex[:8]
    conversations_auth, vectors_auth = CountingAuth(f"conversations-{tag}"), CountingAuth(f"vectors-{tag}")
    conversations = await PostgresConversationStore.connect(
        postgres_dsn, schema=schema, auth=conversations_auth
    )
    vectors = await PostgresVectorStore.connect(postgres_dsn, 4, schema=schema, auth=vectors_auth)
    try:
        owner = Owner("tenant", "caller")
        await conversations.append(owner, "c1", [{"role": "user", "content": "hi"}])
        assert await conversations.history(owner, "c1") == [{"role": "user", "content": "hi"}]
        await vectors.upsert("ns", [VectorItem("v", [1.0, 0.0, 0.0, 0.0], "text")])
        assert [hit.id for hit in await vectors.query("ns", [1.0, 0.0, 0.0, 0.0])] == ["v"]
        with psycopg.connect(postgres_dsn) as admin:
            names = admin.execute(
                "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s",
                (f"%-{tag}-%",),
            ).fetchall()
        assert sorted(names) == [(f"conversations-{tag}-2",), (f"vectors-{tag}-2",)], "each pool's connection"
    finally:
        await conversations.close()
        await vectors.close()
    assert (conversations_auth.calls, vectors_auth.calls) == (2, 2), "the setup connection, the pool's first"


@pytest.fixture
def schema_owner(postgres_dsn: str) -> Iterator[tuple[str, str]]:
    """A user owning a schema, without CREATE on the database: the DSN it connects with, and the schema."""
    role, schema = f"owner_{uuid.uuid4().hex[:8]}", f"owned_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION IF NOT EXISTS vector")
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(*map(sql.Identifier, (schema, role)))
        )
        assert admin.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CREATE')", (role,)
        ).fetchone() == (False,)
    try:
        yield make_conninfo(**(conninfo_to_dict(postgres_dsn) | {"user": role})), schema
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_a_user_that_owns_its_schema_needs_no_create_on_the_database(
    schema_owner: tuple[str, str],
) -> None:
    dsn, schema = schema_owner
    conversations = await PostgresConversationStore.connect(dsn, schema=schema)
    vectors = await PostgresVectorStore.connect(dsn, 4, schema=schema)
    await conversations.close()
    await vectors.close()
