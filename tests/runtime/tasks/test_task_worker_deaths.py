"""Worker processes SIGKILLed on every delivery of a task's message: the task still ends, with its callback.

A message is delivered at most ``bus_max_delivery_count`` times, then dead-lettered unseen; a task whose
worker dies every time (OOM, a crashing native call) must not stay ``running`` for ever. Worker processes
(``python -m agent_runtime.worker``) share the SQLite bus and state with the test, which kills each at a
chosen point: in the middle of a run, or while it posts the task's callback.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from task_hooks import LOOPBACK_CALLBACKS, Hook, hook
from task_processes import start_worker, worker_env
from task_stack import task_registry, task_settings

from agent_runtime.agents import AgentCatalog
from agent_runtime.bus.sqlite import SqliteBus
from agent_runtime.caller import Caller
from agent_runtime.tasks.model import TaskRecord, TaskState
from agent_runtime.tasks.service import TaskService
from agent_runtime.tasks.store_sqlite import SqliteTaskStore
from agent_runtime.testing import ScriptedModelServer

pytestmark = pytest.mark.anyio

DELIVERY_COUNT_EXCEEDED = "delivery_count_exceeded"
"""The error code of a task failed because its workers kept dying and its message's deliveries ran out."""

HOST = socket.gethostname()
ALICE = Caller("alice", frozenset({"user"}))
LAPSE_SECONDS = 1.3  # the workers' leases (task and message) are 1 s: a dead worker's have passed


class Deaths:
    """Worker processes on one state directory, each started for one delivery and killed at a point."""

    def __init__(self, tasks: TaskService, model: ScriptedModelServer, state: Path, deliveries: int) -> None:
        self.tasks, self.state = tasks, state
        self.log = state / "workers.log"
        self.env = worker_env(
            model,
            state,
            state / "alive",
            bus_max_delivery_count=str(deliveries),
            worker_concurrency="1",
            callback_timeout_seconds="2",
            callback_max_retries="0",
            http_allowed_hosts="127.0.0.1",
            http_allow_loopback="true",
        )

    async def record(self, task_id: str) -> TaskRecord:
        record = await self.tasks.store.get(task_id)
        assert record is not None
        return record

    async def kill_at(self, task_id: str, receiver: Hook) -> str:
        """Start a worker and SIGKILL it once it runs the task ("running") or posts its callback
        ("posting"); "nothing" if it did neither within 15 s."""
        worker = await start_worker(self.env, self.state, self.log)
        point = "nothing"
        deadline = time.monotonic() + 15
        while point == "nothing" and time.monotonic() < deadline:
            record = await self.record(task_id)
            if receiver.posted.is_set():
                point = "posting"
            elif record.state is TaskState.RUNNING and record.worker == f"{HOST}:{worker.pid}":
                await asyncio.sleep(0.3)  # into the run: the model's answer, the payment
                point = "running"
            else:
                await asyncio.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        await asyncio.sleep(LAPSE_SECONDS)
        return point

    async def survive_until_called_back(self, task_id: str) -> TaskRecord:
        """A worker that lives, until the task's callback is settled (or 20 s); the record then."""
        worker = await start_worker(self.env, self.state, self.log)
        try:
            async with asyncio.timeout(20):
                while (record := await self.record(task_id)).callback is None or record.callback[
                    "status"
                ] == "sending":
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pass
        finally:
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(worker.wait(), 15) == 0, self.log.read_text()[-3000:]
        return record


@pytest.fixture
async def service(task_model: ScriptedModelServer, tmp_path: Path) -> AsyncIterator[TaskService]:
    settings = task_settings(task_model, tmp_path, **LOOPBACK_CALLBACKS)
    tasks = TaskService(
        await SqliteTaskStore.open(settings.sqlite_path),
        SqliteBus(settings.bus_sqlite_path),
        settings,
        AgentCatalog.from_settings(settings, task_registry()),
    )
    yield tasks
    await tasks.close()


async def submit(tasks: TaskService, text: str, receiver: Hook) -> TaskRecord:
    record, _ = await tasks.submit(
        "payer", [{"role": "user", "content": text}], ALICE, callback_url=receiver.url
    )
    return record


async def test_a_task_whose_workers_die_running_it_fails_and_calls_back_though_one_dies_posting(
    service: TaskService, task_model: ScriptedModelServer, tmp_path: Path
) -> None:
    """Three deliveries: the first two workers die mid-run; the third does not run the task again (it would
    die too, and the next delivery is dead-lettered unseen) but fails it, and dies posting the callback;
    a fourth worker posts it."""
    deaths = Deaths(service, task_model, tmp_path, deliveries=3)
    with hook(stall=1, stall_seconds=10.0) as receiver:
        task = await submit(service, "pay dies-1 0.8", receiver)
        points = [await deaths.kill_at(task.id, receiver) for _ in range(3)]
        done = await deaths.survive_until_called_back(task.id)

    assert points == ["running", "running", "posting"], deaths.log.read_text()[-3000:]
    assert done.state is TaskState.FAILED and done.error is not None, done
    assert done.error["code"] == DELIVERY_COUNT_EXCEEDED and done.attempts == 2
    assert done.callback is not None and done.callback["status"] == "delivered"
    assert [(post["id"], post["state"]) for post in receiver.posts] == [(task.id, "failed")] * 2


async def test_with_one_delivery_a_run_that_dies_leaves_a_standby_that_ends_the_task(
    service: TaskService, task_model: ScriptedModelServer, tmp_path: Path
) -> None:
    """With ``bus_max_delivery_count`` 1 every delivery is the last: the worker that runs the task first
    sends a standby; killed mid-run, the standby's worker finds it dead and fails the task."""
    deaths = Deaths(service, task_model, tmp_path, deliveries=1)
    with hook() as receiver:
        task = await submit(service, "pay dies-2 0.8", receiver)
        point = await deaths.kill_at(task.id, receiver)
        done = await deaths.survive_until_called_back(task.id)

    assert point == "running"
    assert done.state is TaskState.FAILED and done.error is not None, done
    assert done.error["code"] == DELIVERY_COUNT_EXCEEDED and done.attempts == 1
    assert [(post["id"], post["state"]) for post in receiver.posts] == [(task.id, "failed")]
