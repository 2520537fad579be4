"""The worker in-process: outcomes stored on the record, poison to the dead letters, takeover of a dead
worker's task, cancellation between steps, a failing bus, and the task's span."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from task_effects import payments
from task_stack import Stack, close_stack, open_stack, run_worker_until_finished, task_settings

from agent_runtime.bus.base import OutgoingMessage
from agent_runtime.bus.sqlite import SqliteBus
from agent_runtime.caller import Caller
from agent_runtime.governance.setup import build_redactor
from agent_runtime.tasks.model import TASK_MESSAGE_KIND, TaskRecord, TaskState
from agent_runtime.tasks.service import task_message, worker_queue
from agent_runtime.tasks.worker import Worker, WorkerBusError
from agent_runtime.telemetry import Telemetry
from agent_runtime.testing import ScriptedModelServer

pytestmark = pytest.mark.anyio

ALICE = Caller("alice", frozenset({"user"}))


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def submit(stack: Stack, text: str) -> TaskRecord:
    record, _ = await stack.tasks.submit("payer", user(text), ALICE)
    return record


async def test_a_task_runs_once_and_its_result_is_stored(stack: Stack) -> None:
    task = await submit(stack, "pay r1 0")
    [done] = await run_worker_until_finished(stack, [task.id])
    assert done.state is TaskState.SUCCEEDED
    assert done.result is not None and done.result["answer"] == "paid r1"
    assert [step["kind"] for step in done.result["steps"]] == ["model", "tool", "model"]
    assert done.attempts == 1 and done.started_at and done.finished_at
    assert done.lease_until is None
    effects = Path(stack.settings.sqlite_path).with_name("effects.db")
    assert [ref for _, ref in payments(effects)] == ["r1"]
    assert await stack.bus.receive(worker_queue(stack.settings), wait_seconds=0) == []


async def test_a_failing_run_stores_the_error_code(stack: Stack) -> None:
    task = await submit(stack, "fail")
    [done] = await run_worker_until_finished(stack, [task.id])
    assert done.state is TaskState.FAILED
    assert done.error is not None and done.error["code"] == "model_error"


async def test_poison_messages_land_in_the_dead_letters_with_the_reason(stack: Stack) -> None:
    queue = worker_queue(stack.settings)
    now = time.time()
    ghost = TaskRecord(
        id="ghost-task",
        agent="ghost",
        messages=user("hi"),
        queue=queue,
        caller="alice",
        created_at=now,
        updated_at=now,
    )
    await stack.tasks.store.create(ghost)
    await stack.bus.send(queue, OutgoingMessage(body={"hello": "world"}))
    await stack.bus.send(queue, OutgoingMessage(body={"kind": TASK_MESSAGE_KIND, "task_id": "nope"}))
    await stack.bus.send(queue, task_message(ghost))
    marker = await submit(stack, "pay after-poison 0")  # sent last: once it is done, so is the poison
    await run_worker_until_finished(stack, [marker.id], worker_concurrency=1)
    reasons = sorted(letter.reason for letter in await stack.bus.dead_letters(queue))
    assert reasons == [
        "not a task message: expected {'kind': 'agentstage.task.v1', 'task_id': '<id>'}",
        "unknown agent: no agent named 'ghost'",
        "unknown task id 'nope'",
    ]
    failed = await stack.tasks.store.get("ghost-task")
    assert failed is not None and failed.state is TaskState.FAILED
    assert failed.error == {"code": "unknown_agent", "message": "unknown agent: no agent named 'ghost'"}


async def test_a_dead_workers_task_is_taken_over_once_its_lease_passes(stack: Stack) -> None:
    task = await submit(stack, "pay taken-over 0")
    orphan = task.model_copy(
        update={"state": TaskState.RUNNING, "attempts": 1, "lease_until": time.time() + 1.0}
    )
    await stack.tasks.store.replace(orphan, expected_version=task.version)
    started = time.monotonic()
    [done] = await run_worker_until_finished(stack, [task.id])
    assert done.state is TaskState.SUCCEEDED
    assert done.attempts == 2
    assert time.monotonic() - started >= 0.9  # the fresh lease was respected, not stolen


async def test_cancelling_a_queued_task_ends_it_without_running(
    stack: Stack, task_model: ScriptedModelServer
) -> None:
    task = await submit(stack, "pay never 0")
    cancelled = await stack.tasks.cancel(task.id, ALICE)
    assert cancelled.state is TaskState.CANCELLED
    task_model.requests.clear()
    [done] = await run_worker_until_finished(stack, [task.id])
    assert done.state is TaskState.CANCELLED
    assert task_model.requests == []
    assert await stack.bus.receive(worker_queue(stack.settings), wait_seconds=0) == []


async def test_a_running_task_stops_between_steps_when_cancelled(
    stack: Stack, task_model: ScriptedModelServer
) -> None:
    task = await submit(stack, "nap")
    worker = stack.worker()
    running = asyncio.create_task(worker.run())
    try:
        while (await stack.tasks.store.get(task.id)).state is not TaskState.RUNNING:  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
        flagged = await stack.tasks.cancel(task.id, ALICE)
        assert flagged.state is TaskState.RUNNING and flagged.cancel_requested
        [done] = await stack.tasks.wait([task.id], asyncio.get_running_loop().time() + 5)
    finally:
        worker.stop()
        await running
    assert done.state is TaskState.CANCELLED
    assert done.error == {"code": "cancelled", "message": "cancelled while running"}
    assert len(task_model.requests) < 4  # stopped long before the agent's step limit


async def test_a_bus_outage_is_retried_then_reported_and_nothing_is_lost(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = await submit(stack, "pay kept 0")
    broken = tmp_path / "not-a-database"
    broken.mkdir()
    tasks = stack.tasks
    tasks.bus = SqliteBus(broken)
    worker = Worker(
        stack.services.runner,
        stack.services.catalog,
        tasks,
        stack.settings.model_copy(update={"worker_bus_retries": 2, "worker_concurrency": 1}),
    )
    with pytest.raises(
        WorkerBusError, match=r"failed 3 times in a row on receive of queue 'agentstage-tasks'"
    ):
        await worker.run()
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 2
    assert (await tasks.store.get(task.id)).state is TaskState.QUEUED  # type: ignore[union-attr]
    tasks.bus = stack.bus
    [done] = await run_worker_until_finished(stack, [task.id])
    assert done.state is TaskState.SUCCEEDED


async def test_the_task_span_continues_the_callers_trace(
    task_model: ScriptedModelServer, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = task_settings(task_model, tmp_path)
    stack = await open_stack(
        settings, Telemetry(settings, build_redactor(settings), tracer_provider=provider)
    )
    try:
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        task, _ = await stack.tasks.submit(
            "payer", user("pay traced 0"), ALICE, traceparent=f"00-{trace_id}-00f067aa0ba902b7-01"
        )
        await run_worker_until_finished(stack, [task.id])
    finally:
        await close_stack(stack)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    task_span, run_span = spans["task payer"], spans["invoke_agent payer"]
    assert f"{task_span.context.trace_id:032x}" == trace_id
    assert run_span.parent.span_id == task_span.context.span_id
    assert task_span.attributes["task.id"] == task.id
    assert task_span.attributes["task.state"] == "succeeded"
    assert task_span.attributes["task.attempt"] == 1
    assert task_span.attributes["task.queue_wait_ms"] >= 0
    assert task_span.attributes["task.run_ms"] > 0


async def test_a_stopping_worker_hands_a_running_task_back_after_its_grace(stack: Stack) -> None:
    task = await submit(stack, "nap")
    worker = stack.worker(worker_shutdown_grace_seconds=0.1)
    running = asyncio.create_task(worker.run())
    while (await stack.tasks.store.get(task.id)).state is not TaskState.RUNNING:  # type: ignore[union-attr]
        await asyncio.sleep(0.02)
    worker.stop()
    await asyncio.wait_for(running, 5)
    handed_back = await stack.tasks.store.get(task.id)
    assert handed_back is not None
    assert (handed_back.state, handed_back.attempts, handed_back.lease_until) == (TaskState.QUEUED, 1, None)
    [message] = await stack.bus.receive(worker_queue(stack.settings), wait_seconds=0)
    assert message.body["task_id"] == task.id
