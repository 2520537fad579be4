"""open_stores: backend choice from Settings, errors that name the missing variable, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent_runtime.memory import MemoryConfigurationError, Owner, VectorItem, open_stores
from agent_runtime.memory.postgres import PostgresVectorStore
from agent_runtime.memory.redis import RedisConversationStore
from agent_runtime.memory.sqlite import SqliteConversationStore, SqliteVectorStore
from agent_runtime.settings import Settings

pytestmark = pytest.mark.anyio


async def test_defaults_open_the_embedded_sqlite_stores(tmp_path):
    path = tmp_path / "nested" / "state.db"
    conversations, vectors = await open_stores(Settings(sqlite_path=str(path), embedding_dimensions=3))
    try:
        assert isinstance(conversations, SqliteConversationStore)
        assert isinstance(vectors, SqliteVectorStore)
        await conversations.append(Owner("t", "alice"), "c", [{"role": "user", "content": "hi"}])
        await vectors.upsert("ns", [VectorItem("a", [1.0, 0.0, 0.0], "a")])
        assert (await vectors.query("ns", [1.0, 0.0, 0.0]))[0].id == "a"
        assert path.exists()
    finally:
        await conversations.close()
        await vectors.close()


async def test_each_store_uses_its_own_backend(redis_url, postgres_dsn):
    settings = Settings(
        state_backend="redis", vector_backend="postgres", redis_url=redis_url, postgres_dsn=postgres_dsn
    )
    conversations, vectors = await open_stores(settings)
    try:
        assert isinstance(conversations, RedisConversationStore)
        assert isinstance(vectors, PostgresVectorStore)
    finally:
        await conversations.close()
        await vectors.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"state_backend": "redis"}, "AGENTSTAGE_STATE_BACKEND=redis needs AGENTSTAGE_REDIS_URL"),
        ({"vector_backend": "postgres"}, "AGENTSTAGE_VECTOR_BACKEND=postgres needs AGENTSTAGE_POSTGRES_DSN"),
        ({"state_backend": "cosmos"}, "AGENTSTAGE_STATE_BACKEND=cosmos needs AGENTSTAGE_COSMOS_ENDPOINT"),
        ({"embedding_dimensions": 0}, "AGENTSTAGE_EMBEDDING_DIMENSIONS must be at least 1"),
    ],
)
async def test_missing_settings_fail_before_connecting(tmp_path, settings, message):
    path = tmp_path / "state.db"
    with pytest.raises(MemoryConfigurationError, match=message):
        await open_stores(Settings(sqlite_path=str(path), **settings))
    assert not path.exists(), "the SQLite store was opened before the settings were checked"


def test_backend_client_libraries_are_imported_only_when_chosen():
    code = (
        "import sys, agent_runtime.memory, agent_runtime.memory.factory;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'redis', 'psycopg', 'psycopg_pool'})"
        " + sorted(m for m in sys.modules if m.startswith('azure')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_in_memory_sqlite_path_is_refused_for_conversations_with_the_setting_named() -> None:
    """The SQLite conversation store opens its file twice: ':memory:' would be two databases."""
    with pytest.raises(ValueError, match="AGENTSTAGE_SQLITE_PATH ':memory:' cannot hold conversations"):
        Settings(sqlite_path=":memory:")
    assert (
        Settings(sqlite_path=":memory:", state_backend="redis", redis_url="redis://x").sqlite_path
        == ":memory:"
    )
