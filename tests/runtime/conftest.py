"""Real pieces for runtime tests: the scripted model server and the runtime, each served by uvicorn on a
loopback port in a thread, with SQLite state in a temporary directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dynamodb_support import dynamodb, dynamodb_server  # noqa: F401  (DynamoDB on the session's moto server)
from runtime_helpers import AGENTS, API_KEYS, EXECUTED, SCRIPT, Runtime, RuntimeFactory, make_registry

from agent_runtime.api import create_app
from agent_runtime.settings import Settings
from agent_runtime.testing import ScriptedModelServer, ServerThread
from agent_runtime.tools import ToolRegistry


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
    server = ServerThread(app).start()
    return Runtime(server, settings)


@pytest.fixture
def runtime_factory(model: ScriptedModelServer, tmp_path: Path) -> Iterator[RuntimeFactory]:
    """Start a runtime with settings of its own (stopped after the test); ``app_options`` go to
    ``create_app`` (OpenTelemetry providers)."""
    started: list[Runtime] = []

    def start(
        registry: ToolRegistry | None = None, app_options: dict[str, Any] | None = None, **overrides: Any
    ) -> Runtime:
        started.append(_start(model, tmp_path, registry, app_options, **overrides))
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
