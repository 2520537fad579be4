"""History written before conversations had owners: readable by nobody, and left where it was.

Old records carry no owner, and none can be inferred (any caller could have sent the id). Each backend keeps
them in their old place (a table, key names or container this version never reads), so upgrading makes
nothing world-readable and destroys nothing an operator may still want to export or drop by hand.
"""

from __future__ import annotations

import json
import sqlite3
import uuid

import pytest
import redis

from agent_runtime.memory import Owner
from agent_runtime.memory.postgres import PostgresConversationStore
from agent_runtime.memory.redis import RedisConversationStore
from agent_runtime.memory.sqlite import SqliteConversationStore

pytestmark = pytest.mark.anyio

OLD = json.dumps({"role": "user", "content": "written before owners"})
ANYONE = [Owner("default", "alice"), Owner("t-a", "bob"), Owner("default", "default")]


async def _nobody_reads_it(store: object) -> None:
    for owner in ANYONE:
        assert await store.history(owner, "legacy") == []  # type: ignore[attr-defined]
        assert await store.conversations(owner) == []  # type: ignore[attr-defined]


async def test_sqlite_leaves_the_old_table_unread(tmp_path):
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE conversation_messages (seq INTEGER PRIMARY KEY, conversation_id TEXT, message TEXT)"
        )
        db.execute(
            "INSERT INTO conversation_messages (conversation_id, message) VALUES ('legacy', ?)", (OLD,)
        )
    store = await SqliteConversationStore.open(str(path))
    try:
        await _nobody_reads_it(store)
        await store.append(ANYONE[0], "legacy", [{"role": "user", "content": "new"}])
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT message FROM conversation_messages").fetchall() == [(OLD,)]


async def test_postgres_leaves_the_old_table_unread(postgres_dsn):
    import psycopg

    schema = f"legacy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(
            f"CREATE TABLE {schema}.conversation_messages "
            "(seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, conversation_id text, message json)"
        )
        db.execute(
            f"INSERT INTO {schema}.conversation_messages (conversation_id, message) VALUES ('legacy', %s)",
            (OLD,),
        )
    store = await PostgresConversationStore.connect(postgres_dsn, schema=schema)
    try:
        await _nobody_reads_it(store)
    finally:
        await store.close()
    with psycopg.connect(postgres_dsn) as db:
        assert db.execute(f"SELECT count(*) FROM {schema}.conversation_messages").fetchone() == (1,)


async def test_redis_leaves_the_old_keys_unread(redis_url):
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(redis_url)
    client.rpush(f"{prefix}conversation:legacy", OLD)
    store = await RedisConversationStore.connect(redis_url, prefix=prefix)
    try:
        await _nobody_reads_it(store)
    finally:
        await store.close()
    assert client.lrange(f"{prefix}conversation:legacy", 0, -1) == [OLD.encode()]
