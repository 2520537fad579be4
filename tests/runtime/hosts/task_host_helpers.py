"""What the task-trigger tests of both serverless hosts share: the environment of a host that consumes
a task queue, and tasks put in its store the way the API would (a separate task service, same files)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agent_runtime.bus.base import ReceivedMessage
from agent_runtime.bus.factory import open_bus
from agent_runtime.caller import Caller
from agent_runtime.settings import Settings
from agent_runtime.tasks.factory import open_task_service
from agent_runtime.tasks.model import PendingApproval, TaskRecord, TaskState
from agent_runtime.tasks.service import ORPHANED_AFTER_SECONDS, task_message, worker_queue
from agent_runtime.testing import ScriptedModelServer

RUNTIME = Path(__file__).resolve().parents[3] / "runtime"
TASK_QUEUE = "agent-tasks"
API_KEY = "host-key-0123456789"
AGENTS = [{"name": "assistant", "instructions": "Be brief."}]


TENANT_KEYS = {
    "alice-host-key-0123": {"caller": "alice", "roles": ["user"], "tenant": "t-a"},
    "bob-host-key-01234": {"caller": "bob", "roles": ["user"], "tenant": "t-b"},
}
"""Two callers in two tenants, for the hosts' conversation ownership tests."""
MEMORY_AGENTS = [{"name": "assistant", "instructions": "Be brief.", "memory": {"history_window": 10}}]


@contextmanager
def imported_host(
    filename: str, model: ScriptedModelServer, state: Path, **extra_env: str
) -> Iterator[tuple[ModuleType, Settings]]:
    """``runtime/<filename>`` imported as its platform imports it, configured to run the queue's tasks
    (``extra_env`` adds or replaces its environment variables)."""
    env = {
        "AGENTSTAGE_SQLITE_PATH": str(state / "state.db"),
        "AGENTSTAGE_BUS_SQLITE_PATH": str(state / "bus.db"),
        "AGENTSTAGE_TASK_QUEUE": TASK_QUEUE,
        "AGENTSTAGE_LLM_ENDPOINT": model.base_url,
        "AGENTSTAGE_LLM_AUTH": "none",
        "AGENTSTAGE_LLM_MAX_RETRIES": "0",
        "AGENTSTAGE_AGENTS": json.dumps(AGENTS),
        "AGENTSTAGE_API_KEY": API_KEY,
    } | extra_env
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        spec = importlib.util.spec_from_file_location(filename.removesuffix(".py"), RUNTIME / filename)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module, Settings()


def chat_body(text: str, *, stream: bool) -> str:
    return json.dumps(
        {"model": "assistant", "stream": stream, "messages": [{"role": "user", "content": text}]}
    )


def invoke_body(text: str, conversation_id: str | None = None) -> str:
    return json.dumps({"input": text} | ({"conversation_id": conversation_id} if conversation_id else {}))


def two_tenants_env() -> dict[str, str]:
    return {"AGENTSTAGE_API_KEYS": json.dumps(TENANT_KEYS), "AGENTSTAGE_AGENTS": json.dumps(MEMORY_AGENTS)}


def streamed_text(sse: str) -> str:
    """The answer carried by a chat completion's server-sent events, as an OpenAI client joins it."""
    chunks = [json.loads(line[6:]) for line in sse.splitlines() if line.startswith("data: {")]
    assert not [chunk for chunk in chunks if "error" in chunk], sse
    return "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])


def submit(settings: Settings, text: str) -> TaskRecord:
    """A queued task of ``assistant``, created as the API creates it; its message is what a queue delivers."""

    async def create() -> TaskRecord:
        tasks = await open_task_service(settings, _catalog(settings))
        try:
            record, _ = await tasks.submit("assistant", [{"role": "user", "content": text}], Caller("alice"))
            return record
        finally:
            await tasks.close()

    return asyncio.run(create())


def stored(settings: Settings, task_id: str) -> TaskRecord:
    async def read() -> TaskRecord:
        tasks = await open_task_service(settings, _catalog(settings))
        try:
            record = await tasks.store.get(task_id)
            assert record is not None
            return record
        finally:
            await tasks.close()

    return asyncio.run(read())


def mark_running_elsewhere(settings: Settings, task_id: str) -> None:
    """As if another instance had claimed the task a moment ago and were still running it."""

    async def claim() -> None:
        tasks = await open_task_service(settings, _catalog(settings))
        try:
            record = await tasks.store.get(task_id)
            assert record is not None
            running = record.model_copy(
                update={"state": TaskState.RUNNING, "attempts": 1, "lease_until": time.time() + 60}
            )
            await tasks.store.replace(running, expected_version=record.version)
        finally:
            await tasks.close()

    asyncio.run(claim())


DELEGATE, DELEGATE_QUEUE = "researcher", "research-tasks"
DELEGATING = {
    "AGENTSTAGE_AGENTS": json.dumps([*AGENTS, {"name": DELEGATE, "instructions": "Cite."}]),
    "AGENTSTAGE_AGENT_QUEUES": json.dumps({DELEGATE: DELEGATE_QUEUE}),
}
"""An orchestrator's host: it sends ``researcher``'s tasks to another deployment's queue, and sweeps that
queue and its own."""


def orphan(settings: Settings, text: str, agent: str = "assistant", queue: str | None = None) -> TaskRecord:
    """A queued task of ``agent`` on ``queue`` (the host's own by default) whose message was never sent (the
    API died between writing the task and sending it), last written longer ago than the sweep waits before
    it sends another."""

    at = time.time() - ORPHANED_AFTER_SECONDS - 60
    record = TaskRecord(
        id=uuid.uuid4().hex,
        agent=agent,
        state=TaskState.QUEUED,
        messages=[{"role": "user", "content": text}],
        queue=queue or worker_queue(settings),
        caller="alice",
        created_at=at,
        updated_at=at,
    )
    return _written(settings, record)


def lapsed_approval(settings: Settings) -> TaskRecord:
    """A task of ``assistant`` parked on a tool call requested longer ago than the approval timeout."""
    at = time.time() - settings.approval_timeout_seconds - 60
    approval = PendingApproval(tool="transfer", call_id="call-1", arguments={}, requested_at=at)
    record = TaskRecord(
        id=uuid.uuid4().hex,
        agent="assistant",
        state=TaskState.AWAITING_APPROVAL,
        approval=approval,
        messages=[{"role": "user", "content": "transfer 5"}],
        queue=worker_queue(settings),
        caller="alice",
        created_at=at,
        updated_at=at,
    )
    return _written(settings, record)


def _written(settings: Settings, record: TaskRecord) -> TaskRecord:
    """``record`` written to the host's task store as it is."""

    async def create() -> TaskRecord:
        tasks = await open_task_service(settings, _catalog(settings))
        try:
            created, _ = await tasks.store.create(record)
            return created
        finally:
            await tasks.close()

    return asyncio.run(create())


def waiting_messages(settings: Settings, queue: str | None = None) -> list[ReceivedMessage]:
    """The messages waiting on ``queue`` (the host's task queue by default), received, so leased for a
    while."""

    async def receive() -> list[ReceivedMessage]:
        bus = open_bus(settings)
        try:
            return await bus.receive(queue or worker_queue(settings), max_messages=10, wait_seconds=0)
        finally:
            await bus.close()

    return asyncio.run(receive())


def message_parts(record: TaskRecord) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(message id, body, headers) of the task's queue message."""
    message = task_message(record)
    return message.message_id or "", dict(message.body), dict(message.headers)


def _catalog(settings: Settings) -> Any:
    from agent_runtime.agents import AgentCatalog
    from agent_runtime.tools import default_registry

    return AgentCatalog.from_settings(settings, default_registry)
