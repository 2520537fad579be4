"""The task tests' building blocks: settings, the runtime's pieces opened in-process (stores, bus, agent
runner) on a temporary SQLite file, and ways to run a worker until a task gets somewhere."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from task_effects import AGENTS, register

from agent_runtime.bus.sqlite import SqliteBus
from agent_runtime.memory.factory import open_stores
from agent_runtime.services import Assembly, Services
from agent_runtime.settings import Settings
from agent_runtime.tasks.factory import open_task_store
from agent_runtime.tasks.model import TaskRecord, TaskState
from agent_runtime.tasks.service import TaskService
from agent_runtime.tasks.worker import Worker
from agent_runtime.telemetry import Telemetry
from agent_runtime.testing import ScriptedModelServer
from agent_runtime.tools import ToolRegistry
from agent_runtime.tools.builtins import builtin_tools


def task_settings(model: ScriptedModelServer, state_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_endpoint": model.base_url,
        "llm_auth": "none",
        "llm_max_retries": 0,
        "sqlite_path": str(state_dir / "state.db"),
        "bus_sqlite_path": str(state_dir / "bus.db"),
        "agents": json.dumps(AGENTS),
        "deadline_seconds": 10,
        "task_lease_seconds": 3,
        "bus_visibility_seconds": 3,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.05,
        "worker_shutdown_grace_seconds": 2,
    }
    return Settings(**(values | overrides))


def task_registry() -> ToolRegistry:
    return register(ToolRegistry(builtin_tools()))


@dataclass
class Stack:
    """The pieces a worker process holds, in this process: services, task service, bus, worker."""

    settings: Settings
    services: Services
    assembly: Assembly
    tasks: TaskService
    bus: SqliteBus

    def worker(self, **overrides: Any) -> Worker:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return Worker(self.services.runner, self.services.catalog, self.tasks, settings)


async def open_stack(settings: Settings, telemetry: Telemetry | None = None) -> Stack:
    assembly = Assembly.from_settings(settings, task_registry(), open_stores, telemetry)
    services = await Services.open(assembly)
    bus = SqliteBus(settings.bus_sqlite_path)
    store = await open_task_store(settings)  # the state backend's: SQLite unless a test chose another
    return Stack(settings, services, assembly, TaskService(store, bus, settings, services.catalog), bus)


async def close_stack(stack: Stack) -> None:
    await stack.tasks.close()
    await stack.services.close()
    await stack.assembly.close()


async def run_worker_until_finished(
    stack: Stack, task_ids: list[str], timeout: float = 10.0, **overrides: Any
) -> list[TaskRecord]:
    """Run a worker until every task is finished (or ``timeout``); the records as they ended."""
    worker = stack.worker(**overrides)
    running = asyncio.create_task(worker.run())
    try:
        return await stack.tasks.wait(task_ids, asyncio.get_running_loop().time() + timeout)
    finally:
        worker.stop()
        await running


async def run_worker_until(
    stack: Stack, task_id: str, reached: Callable[[TaskRecord], bool], timeout: float = 10.0
) -> TaskRecord:
    """Run a worker until the task's record satisfies ``reached`` (or ``timeout``); the record then."""
    worker = stack.worker()
    running = asyncio.create_task(worker.run())
    deadline = time.monotonic() + timeout
    try:
        while True:
            record = await stack.tasks.store.get(task_id)
            assert record is not None
            if reached(record) or time.monotonic() > deadline:
                return record
            await asyncio.sleep(0.02)
    finally:
        worker.stop()
        await running


def parked(record: TaskRecord) -> bool:
    return record.state is TaskState.AWAITING_APPROVAL


def called_back(record: TaskRecord) -> bool:
    """The callback was posted (delivered or given up on), not merely claimed for posting (``sending``)."""
    return record.callback is not None and record.callback.get("status") != "sending"
