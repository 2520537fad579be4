"""Reliability with real processes: worker processes SIGKILLed in the middle of tasks, again and again.

Tasks call ``pay``, a side effect applied downstream at most once per idempotency key (see task_effects.py).
Worker processes (``python -m agent_runtime.worker``) share the SQLite bus and state with this test; each
one is killed at a random moment while it works, then a new one starts. Afterwards every task must have
succeeded (none lost) and every payment must have been applied exactly once: a re-run after a crash
must reuse the key of the cut-off call, or a second payment row would appear.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time
from pathlib import Path

import pytest
from task_effects import attempts, payments
from task_processes import start_worker, worker_env
from task_stack import task_registry, task_settings

from agent_runtime.agents import AgentCatalog
from agent_runtime.bus.sqlite import SqliteBus
from agent_runtime.caller import Caller
from agent_runtime.tasks.model import TaskRecord, TaskState
from agent_runtime.tasks.service import TaskService, worker_queue
from agent_runtime.tasks.store_sqlite import SqliteTaskStore
from agent_runtime.testing import ScriptedModelServer

pytestmark = pytest.mark.anyio

TASKS = 24
KILLS_MID_TASK = 20
MAX_KILLS = 40
SLOTS = 2  # worker processes alive at once, each killed and restarted on its own schedule
HOST = socket.gethostname()


class Killer:
    """Starts worker processes and SIGKILLs each at a random moment of its first task (before, during or
    after the payment), counting the kills that left a task cut off in the middle."""

    def __init__(self, tasks: TaskService, ids: list[str], model: ScriptedModelServer, state: Path) -> None:
        self.tasks, self.ids, self.model, self.state = tasks, ids, model, state
        self.kills = self.mid_task = 0
        self.log = state / "workers.log"
        self._chance = random.Random(6)

    def env(self, slot: int) -> dict[str, str]:
        return worker_env(self.model, self.state, self.state / f"alive-{slot}")

    async def running_on(self, pid: int) -> list[TaskRecord]:
        records = [await self.tasks.store.get(task_id) for task_id in self.ids]
        return [r for r in records if r and r.state is TaskState.RUNNING and r.worker == f"{HOST}:{pid}"]

    async def slot(self, slot: int) -> None:
        while self.mid_task < KILLS_MID_TASK and self.kills < MAX_KILLS:
            worker = await start_worker(self.env(slot), self.state, self.log)
            deadline = time.monotonic() + 10
            while not await self.running_on(worker.pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(self._chance.uniform(0.0, 0.5))  # one task takes ~0.5 s
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            self.kills += 1
            self.mid_task += bool(await self.running_on(worker.pid))


async def test_killing_workers_mid_task_loses_nothing_and_repeats_no_side_effect(
    task_model: ScriptedModelServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    settings = task_settings(task_model, tmp_path)
    tasks = TaskService(
        await SqliteTaskStore.open(settings.sqlite_path),
        SqliteBus(settings.bus_sqlite_path),
        settings,
        AgentCatalog.from_settings(settings, task_registry()),
    )
    caller = Caller("alice", frozenset({"user"}))
    ids = [
        (await tasks.submit("payer", [{"role": "user", "content": f"pay ref-{n:02d} 0.4"}], caller))[0].id
        for n in range(TASKS)
    ]
    killer = Killer(tasks, ids, task_model, tmp_path)
    try:
        await asyncio.gather(*(killer.slot(slot) for slot in range(SLOTS)))
        survivor = await start_worker(killer.env(0), tmp_path, killer.log)
        done = await tasks.wait(ids, asyncio.get_running_loop().time() + 40)
        survivor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(survivor.wait(), 15) == 0, killer.log.read_text()[-3000:]
        dead = await tasks.bus.dead_letters(worker_queue(settings))
    finally:
        await tasks.close()
    elapsed = time.monotonic() - started
    print(
        f"\n{killer.kills} kills ({killer.mid_task} mid-task), {TASKS} tasks, {attempts(tmp_path / 'effects.db')} payment "
        f"attempts, {sum(r.attempts for r in done)} runs, {elapsed:.1f} s"
    )

    assert killer.mid_task >= KILLS_MID_TASK
    assert [r.state for r in done] == [TaskState.SUCCEEDED] * TASKS, [(r.id, r.state, r.error) for r in done]
    assert [r.result["answer"] for r in done if r.result] == [f"paid ref-{n:02d}" for n in range(TASKS)]
    applied = payments(tmp_path / "effects.db")
    assert sorted(ref for _, ref in applied) == [f"ref-{n:02d}" for n in range(TASKS)]  # each exactly once
    assert dead == []
    assert any(r.attempts > 1 for r in done)  # some tasks were really taken over after a kill
