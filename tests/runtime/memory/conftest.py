"""Real servers for the memory contract tests, and one fixture that opens any backend's stores.

Redis comes from Debian's ``redis-server``; PostgreSQL (``postgres_dsn``) from tests/runtime/conftest.py,
shared with the knowledge index tests. A server that cannot start FAILS the tests that need it, with the
reason; it never skips them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.memory import ConversationStore, Owner, VectorStore

BACKENDS = ["sqlite", "redis", "postgres", "dynamodb"]
CONVERSATION_BACKENDS = [*BACKENDS, "cosmos"]
"""Conversations also run on Cosmos DB, against an in-memory container (fake_cosmos_conversations.py)."""
STARTUP_TIMEOUT = 30.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"{what} exited with code {proc.returncode} at startup:\n{_log_tail(log)}", pytrace=False
            )
        if ready():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} did not become ready in {STARTUP_TIMEOUT:.0f}s:\n{_log_tail(log)}", pytrace=False)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway ``redis-server`` on a free loopback port, without persistence."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed; the Redis backend tests need it: apt-get install redis-server "
            "(or run scripts/install-system-deps.sh)",
            pytrace=False,
        )
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    log = workdir / "redis.log"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), "--logfile", str(log)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def ready() -> bool:
        try:
            return bool(redis.Redis(port=port, socket_timeout=1).ping())
        except redis.ConnectionError:
            return False

    try:
        _wait_until(ready, proc, "redis-server", log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


@dataclass
class Backend:
    """Opens stores of one backend at one per-test location; several stores may share it, like replicas."""

    name: str
    location: dict[str, Any]
    opened: list[ConversationStore | VectorStore] = field(default_factory=list)

    async def conversations(self) -> ConversationStore:
        store: ConversationStore
        if self.name == "sqlite":
            from agent_runtime.memory.sqlite import SqliteConversationStore

            store = await SqliteConversationStore.open(self.location["path"])
        elif self.name == "redis":
            from agent_runtime.memory.redis import RedisConversationStore

            store = await RedisConversationStore.connect(self.location["url"], prefix=self.location["prefix"])
        elif self.name == "postgres":
            from agent_runtime.memory.postgres import PostgresConversationStore

            store = await PostgresConversationStore.connect(
                self.location["dsn"], schema=self.location["schema"]
            )
        elif self.name == "dynamodb":
            from agent_runtime.memory.dynamodb import DynamoDBConversationStore

            store = await DynamoDBConversationStore.connect(self.location["conversations"])
        else:
            from agent_runtime.memory.cosmos import CosmosConversationStore

            store = await CosmosConversationStore.connect(
                "https://acct.documents.azure.com", "agentstage", container="conversations-by-owner"
            )
        self.opened.append(store)
        return store

    @asynccontextmanager
    async def one_instant(self, owner: Owner, conversation_ids: list[str]) -> AsyncIterator[None]:
        """The appends made inside change ``conversation_ids`` at one instant (ties), as appends on several
        replicas can: the stores' clock (``time.time``) stands still meanwhile. PostgreSQL's clock is its
        own, so there their times are made equal afterwards."""
        with pytest.MonkeyPatch.context() as patch:
            if self.name != "postgres":
                instant = time.time()
                patch.setattr(time, "time", lambda: instant)
            yield
        if self.name == "postgres":
            await _tie_in_postgres(self.location, owner, conversation_ids)

    async def vectors(self, dimensions: int) -> VectorStore:
        store: VectorStore
        if self.name == "sqlite":
            from agent_runtime.memory.sqlite import SqliteVectorStore

            store = await SqliteVectorStore.open(self.location["path"], dimensions)
        elif self.name == "redis":
            from agent_runtime.memory.redis import RedisVectorStore

            store = await RedisVectorStore.connect(
                self.location["url"], dimensions, prefix=self.location["prefix"]
            )
        elif self.name == "dynamodb":
            from agent_runtime.memory.dynamodb import DynamoDBVectorStore

            store = await DynamoDBVectorStore.connect(self.location["memories"], dimensions)
        else:
            from agent_runtime.memory.postgres import PostgresVectorStore

            store = await PostgresVectorStore.connect(
                self.location["dsn"], dimensions, schema=self.location["schema"]
            )
        self.opened.append(store)
        return store


async def _tie_in_postgres(location: dict[str, Any], owner: Owner, conversation_ids: list[str]) -> None:
    import psycopg
    from psycopg import sql

    table = sql.Identifier(location["schema"], "conversations")
    mine = sql.SQL("tenant = %s AND caller = %s AND conversation_id = ANY(%s)")
    key = (owner.tenant, owner.caller, conversation_ids)
    async with await psycopg.AsyncConnection.connect(location["dsn"], autocommit=True) as conn:
        statement = sql.SQL("UPDATE {} SET updated_at = (SELECT max(updated_at) FROM {} WHERE {}) WHERE {}")
        await conn.execute(statement.format(table, table, mine, mine), key + key)


async def _opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each test gets a fresh location: its own SQLite file, Redis key prefix, PostgreSQL schema, DynamoDB
    tables or fake Cosmos DB container."""
    unique = uuid.uuid4().hex[:12]
    location: dict[str, Any] = {}
    if request.param == "sqlite":
        location = {"path": str(tmp_path / "state.db")}
    elif request.param == "redis":
        location = {"url": request.getfixturevalue("redis_url"), "prefix": f"test-{unique}:"}
    elif request.param == "postgres":
        location = {"dsn": request.getfixturevalue("postgres_dsn"), "schema": f"test_{unique}"}
    elif request.param == "dynamodb":
        dynamodb = request.getfixturevalue("dynamodb")  # fresh tables per test on the session's moto server
        location = {
            "conversations": dynamodb.create("conversations"),
            "memories": dynamodb.create("memories"),
        }
    else:
        from fake_cosmos_conversations import FakeAccount, FakeConversationsContainer

        from agent_runtime.cosmos_account import CosmosAccount
        from agent_runtime.memory.cosmos import CONVERSATION_PARTITION_KEY

        fake = FakeAccount(FakeConversationsContainer(), CONVERSATION_PARTITION_KEY)
        request.getfixturevalue("monkeypatch").setattr(
            CosmosAccount, "connect", classmethod(lambda cls, endpoint, client_id: cls(fake, fake))
        )
    backend = Backend(request.param, location)
    yield backend
    for store in backend.opened:
        await store.close()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in _opened(request, tmp_path):
        yield opened


@pytest.fixture(params=CONVERSATION_BACKENDS)
async def conversation_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in _opened(request, tmp_path):
        yield opened
