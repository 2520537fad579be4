"""Real pieces for runtime tests: the scripted model server and the runtime, each served by uvicorn on a
loopback port in a thread, with SQLite state in a temporary directory; and a PostgreSQL server.

PostgreSQL 16 + pgvector comes from the ``pgserver`` package's binaries. PostgreSQL refuses to run as root,
and CI runs as root, so the binaries run as an unprivileged user that the fixture creates when missing. A
server that cannot start FAILS the tests that need it, with the reason; it never skips them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dns_helpers import resolver  # noqa: F401  (names that answer with a test's addresses)
from dynamodb_support import dynamodb, dynamodb_server  # noqa: F401  (DynamoDB on the session's moto server)
from otel_helpers import Otel
from runtime_helpers import AGENTS, API_KEYS, EXECUTED, SCRIPT, Runtime, RuntimeFactory, make_registry
from servers import MotoServer, ServerError, moto_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agent_runtime.api import create_app
from agent_runtime.api.hot_routes import HotRoutes
from agent_runtime.settings import Settings
from agent_runtime.testing import ScriptedModelServer, ServerThread
from agent_runtime.tools import ToolRegistry


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """moto's AWS emulator (SQS, DynamoDB, S3, Secrets Manager ...) for one test module, so each module's
    queues, tables and secrets start empty; one that cannot start fails the module's tests with the reason.
    (The bus tests share one per session: each of their tests names its own queue.)"""
    try:
        with moto_server() as server:
            yield server
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def model_server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(SCRIPT) as server:
        yield server


@pytest.fixture
def model(model_server: ScriptedModelServer) -> ScriptedModelServer:
    """The shared model server, with this test's requests only."""
    model_server.requests.clear()
    model_server.headers.clear()
    model_server.faults.clear()
    EXECUTED.clear()
    return model_server


def _start(
    model: ScriptedModelServer,
    state_dir: Path,
    registry: ToolRegistry | None,
    app_options: dict[str, Any] | None = None,
    plain_fastapi: bool = False,
    **overrides: Any,
) -> Runtime:
    values: dict[str, Any] = {
        "llm_endpoint": model.base_url,
        "llm_auth": "none",
        "llm_max_retries": 0,
        "sqlite_path": str(state_dir / "state.db"),
        "agents": json.dumps(AGENTS),
        "api_keys": json.dumps(API_KEYS),
        "deadline_seconds": 10,
    }
    settings = Settings(**(values | overrides))
    app = create_app(settings, registry=registry or make_registry(), **(app_options or {}))
    if plain_fastapi:  # every route through FastAPI's own routing: what the hot routes must answer alike
        app.user_middleware = [layer for layer in app.user_middleware if layer.cls is not HotRoutes]
    server = ServerThread(app).start()
    return Runtime(server, settings)


@pytest.fixture
def runtime_factory(model: ScriptedModelServer, tmp_path: Path) -> Iterator[RuntimeFactory]:
    """Start a runtime with settings of its own (stopped after the test); ``app_options`` go to
    ``create_app`` (OpenTelemetry providers); ``plain_fastapi`` leaves out the hot routes' middleware."""
    started: list[Runtime] = []

    def start(
        registry: ToolRegistry | None = None,
        app_options: dict[str, Any] | None = None,
        plain_fastapi: bool = False,
        **overrides: Any,
    ) -> Runtime:
        started.append(_start(model, tmp_path, registry, app_options, plain_fastapi, **overrides))
        return started[-1]

    yield start
    for runtime in started:
        runtime.close()


@pytest.fixture(scope="session")
def shared_runtime(
    model_server: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    runtime = _start(model_server, tmp_path_factory.mktemp("state"), None)
    yield runtime
    runtime.close()


@pytest.fixture
def runtime(shared_runtime: Runtime, model: ScriptedModelServer) -> Runtime:
    """The runtime with the default test settings, shared by the tests that need no settings of their own."""
    return shared_runtime


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
    """A throwaway PostgreSQL 16 + pgvector, listening only on a unix socket in a private temp directory.

    One server for the whole run, shared by the memory and the knowledge tests (each test works in a schema
    of its own). ``pg_ctl`` starts it and waits until it accepts connections.
    """
    account = _pg_account()
    workdir = Path(tempfile.mkdtemp(prefix="agentstage-pg-"))
    try:
        if account:
            os.chown(workdir, account["user"], account["group"])
        binaries = _pg_binaries(workdir, account)
        data, log = workdir / "data", workdir / "postgres.log"
        _pg_run(account, log, binaries / "initdb", "-D", data, *_INITDB_OPTIONS)
        options = shlex.join(["-k", str(workdir), *_PG_OPTIONS])  # pg_ctl passes them through a shell
        _pg_run(account, log, binaries / "pg_ctl", "start", "-w", "-D", data, "-l", log, "-o", options)
        try:
            yield f"host={workdir} port=5432 user=postgres dbname=postgres connect_timeout=5"
        finally:
            _pg_run(account, log, binaries / "pg_ctl", "stop", "-m", "fast", "-w", "-D", data)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _pg_run(account: dict[str, Any], log: Path, *command: str | Path) -> None:
    """Run a PostgreSQL program as the PostgreSQL user; fail the tests with its output and the server log."""
    done = subprocess.run(command, check=False, capture_output=True, text=True, **account)
    if done.returncode != 0:
        server_log = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        pytest.fail(
            f"{' '.join(map(str, command))} failed:\n{done.stdout}{done.stderr}\n{server_log}", pytrace=False
        )


@pytest.fixture(scope="session")
def pages() -> Iterator[dict[str, str]]:
    """Text served at ``http://127.0.0.1:<port>/<name>``; the dict also holds the server's ``base`` URL."""
    content: dict[str, str] = {}

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(content.get(request.path_params["name"], ""))

    with ServerThread(Starlette(routes=[Route("/{name}", page)])) as server:
        content["base"] = server.url
        yield content


@pytest.fixture
def otel() -> Iterator[Otel]:
    recorder = Otel()
    yield recorder
    recorder.tracer_provider.shutdown()
    recorder.meter_provider.shutdown()
