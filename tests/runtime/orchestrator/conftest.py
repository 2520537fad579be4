"""Fixtures of the orchestrator tests: the scripted model server with per-model faults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from orchestration_stack import SCRIPT, SLOW_SECONDS

from agent_runtime.testing import Faults, ScriptedModelServer


@pytest.fixture(scope="session")
def model_server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(SCRIPT) as server:
        yield server


@pytest.fixture
def model(model_server: ScriptedModelServer) -> ScriptedModelServer:
    model_server.requests.clear()
    model_server.faults.clear()
    model_server.faults["m-flaky"] = Faults(rate_500=1.0)
    model_server.faults["m-slow"] = Faults(rate_timeout=1.0, timeout_delay=SLOW_SECONDS)
    return model_server
