"""Real servers for the memory contract tests, and one fixture that opens any backend's stores.

Redis comes from Debian's ``redis-server``; PostgreSQL 16 + pgvector from the ``pgserver`` package's
binaries. PostgreSQL refuses to run as root, and CI runs as root, so the binaries run as an unprivileged
user that the fixture creates when missing. A server that cannot start FAILS the tests that need it, with
the reason; it never skips them.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.memory import ConversationStore, VectorStore

BACKENDS = ["sqlite", "redis", "postgres", "dynamodb"]
CONVERSATION_BACKENDS = [*BACKENDS, "cosmos"]
"""Conversations also run on Cosmos DB, against an in-memory container (fake_cosmos_conversations.py)."""
PG_USER = "agentstage-pg"
_USERADD = [
    "useradd",
    "--system",
    "--no-create-home",
    "--home-dir",
    "/nonexistent",
    "--shell",
    "/usr/sbin/nologin",
]
_INITDB_OPTIONS = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
# Only a unix socket (no TCP port to collide on) and no durability: the server is thrown away after the run.
_PG_OPTIONS = [
    "-c",
    "listen_addresses=",
    "-c",
    "fsync=off",
    "-c",
    "synchronous_commit=off",
    "-c",
    "full_page_writes=off",
]
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


def _pg_install() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        pytest.fail(
            "the pgserver package is not installed; pip install 'pgserver>=0.1.4' (dev extra)", pytrace=False
        )
    return Path(spec.origin).parent / "pginstall"


def _pg_account() -> dict[str, Any]:
    """``subprocess`` options that drop root to the unprivileged PostgreSQL user (created on first use)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            [*_USERADD, PG_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(PG_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _pg_binaries(workdir: Path, account: dict[str, Any]) -> Path:
    """The pgserver ``bin`` directory, copied next to the data when the user cannot reach it where it is.

    A checkout under root's 0700 home is unreadable to the PostgreSQL user; a copy (about 27 MB) is. The
    copy keeps the wheel's layout, because the binaries find their vendored libpq through the relative
    rpath ``$ORIGIN/../../../pgserver.libs``.
    """
    install = _pg_install()
    try:
        subprocess.run(
            [install / "bin" / "postgres", "--version"], check=True, capture_output=True, **account
        )
        return install / "bin"
    except (PermissionError, subprocess.CalledProcessError):
        copy = workdir / "site" / "pgserver" / "pginstall"
        shutil.copytree(install, copy, symlinks=True, ignore=shutil.ignore_patterns("include"))
        libs = install.parent.parent / "pgserver.libs"
        if libs.is_dir():
            shutil.copytree(libs, workdir / "site" / "pgserver.libs")
        return copy / "bin"


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL 16 + pgvector, listening only on a unix socket in a private temp directory."""
    import psycopg

    account = _pg_account()
    workdir = Path(tempfile.mkdtemp(prefix="agentstage-pg-"))
    try:
        if account:
            os.chown(workdir, account["user"], account["group"])
        binaries = _pg_binaries(workdir, account)
        data, log = workdir / "data", workdir / "postgres.log"
        initdb = subprocess.run(
            [binaries / "initdb", "-D", data, *_INITDB_OPTIONS],
            check=False,
            capture_output=True,
            text=True,
            **account,
        )
        if initdb.returncode != 0:
            pytest.fail(f"initdb failed ({binaries}):\n{initdb.stdout}\n{initdb.stderr}", pytrace=False)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [binaries / "postgres", "-D", data, "-k", workdir, *_PG_OPTIONS],
                stdout=out,
                stderr=subprocess.STDOUT,
                **account,
            )
        dsn = f"host={workdir} port=5432 user=postgres dbname=postgres connect_timeout=5"

        def ready() -> bool:
            try:
                psycopg.connect(dsn).close()
                return True
            except psycopg.OperationalError:
                return False

        try:
            _wait_until(ready, proc, "postgres", log)
            yield dsn
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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
