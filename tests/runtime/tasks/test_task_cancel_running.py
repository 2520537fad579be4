"""Cancelling a running task: its worker stops it if it is alive; if it is gone, nobody would, so it ends now."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from task_hooks import LOOPBACK_CALLBACKS, hook
from task_stack import close_stack, open_stack, run_worker_until, task_settings

from agent_runtime.caller import Caller
from agent_runtime.tasks.model import TaskRecord, TaskState
from agent_runtime.tasks.service import worker_queue
from agent_runtime.testing import ScriptedModelServer

pytestmark = pytest.mark.anyio

ALICE = Caller("alice", frozenset({"user"}))


async def test_a_running_task_whose_worker_is_gone_is_cancelled_at_once_and_one_alive_is_flagged(
    task_model: ScriptedModelServer, tmp_path: Path
) -> None:
    """Both tasks' workers claimed them and took their messages; one renews its lease, the other died long
    ago and its message is spent (dead-lettered after its last delivery)."""
    stack = await open_stack(task_settings(task_model, tmp_path, **LOOPBACK_CALLBACKS))
    try:
        with hook() as receiver:
            submitted = [
                (
                    await stack.tasks.submit(
                        "payer", [{"role": "user", "content": "nap"}], ALICE, callback_url=receiver.url
                    )
                )[0]
                for _ in range(2)
            ]
            for message in await stack.bus.receive(
                worker_queue(stack.settings), max_messages=2, wait_seconds=1
            ):
                await stack.bus.complete(message)
            gone, alive = [
                await stack.tasks.store.replace(
                    task.model_copy(
                        update={"state": TaskState.RUNNING, "attempts": 1, "lease_until": time.time() + lease}
                    ),
                    expected_version=task.version,
                )
                for task, lease in zip(submitted, (-1.0, 60.0), strict=True)
            ]

            ended = await stack.tasks.cancel(gone.id, ALICE)
            flagged = await stack.tasks.cancel(alive.id, ALICE)
            called_back = await run_worker_until(stack, gone.id, lambda r: r.callback is not None)
            await asyncio.sleep(0.2)
            still: TaskRecord | None = await stack.tasks.store.get(alive.id)
    finally:
        await close_stack(stack)

    assert (ended.state, ended.error) == (
        TaskState.CANCELLED,
        {"code": "cancelled", "message": "cancelled by alice"},
    )
    assert ended.finished_at is not None and ended.lease_until is None
    assert (flagged.state, flagged.cancel_requested) == (TaskState.RUNNING, True)
    assert called_back.callback is not None and called_back.callback["status"] == "delivered"
    assert [(post["id"], post["state"]) for post in receiver.posts] == [(gone.id, "cancelled")]
    assert still is not None and (still.state, still.cancel_requested) == (TaskState.RUNNING, True)
