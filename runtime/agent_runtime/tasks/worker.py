"""The task worker: lease a message, own its task, run the agent, store the outcome, complete the message.

Delivery is at-least-once and workers die (OOM, eviction, SIGKILL), so correctness rests on the record:

- a task is *owned* by the worker whose compare-and-set moved it to ``running`` (``attempts`` names the
  run); the owner renews ``lease_until`` (and the message's lease) every third of the shorter of
  ``task_lease_seconds`` and ``bus_visibility_seconds``;
- a delivery for a ``running`` task whose lease is fresh is handed back with a delay (its owner is alive);
  once the lease has passed, the owner is presumed dead and the task is taken over (a new attempt);
- a delivery for a finished or parked task completes the message without running anything;
- tool calls are keyed by (task, step, call index), so a taken-over run replays finished side effects
  from the ledger and re-runs a cut-off call under the same key (see :mod:`agent_runtime.tools.executor`).

A message is delivered at most ``bus_max_delivery_count`` times (or the fewer the queue allows, as the bus
says); the bus or the platform dead-letters it on the receive after that, where no worker sees it. So the
worker acts on the last delivery it is allowed to see, and a task never outlives its messages:

- first, unless the task needs no more messages, a standby message is sent, due in a lease: it takes
  the task on should this worker die handling the delivery (mid-run, posting the callback);
- a task whose worker died (its lease passed) is failed (``delivery_count_exceeded``), not run again, and
  its callback is delivered: a worker that dies on every attempt (OOM, a crashing native call) ends it;
- a message that would be handed back (the owner is alive, a callback is being sent) is completed
  instead, the standby taking its place, since a released message would be dead-lettered.

Every worker also sweeps, every :data:`SWEEP_SECONDS`: it re-sends the messages of its queue's tasks queued
too long ago to still have one (:meth:`~agent_runtime.tasks.service.TaskService.requeue_orphans`), and
expires the parked tasks, of any queue, that no reviewer decided within ``approval_timeout_seconds``
(:meth:`~agent_runtime.tasks.service.TaskService.expire_approvals`).

Poison messages (a body that is not a task message, an unknown task, an unknown agent) go to the dead-letter
queue with the reason. A failing bus is retried with backoff; after ``worker_bus_retries`` the worker
stops with :class:`WorkerBusError`, leaving every message on the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import ValidationError

from agent_runtime.agents import Agent, AgentCatalog
from agent_runtime.bus.base import BusError, LeaseLost, MessageBus, OutgoingMessage, ReceivedMessage
from agent_runtime.caller import DEFAULT_TENANT, Caller
from agent_runtime.errors import AgentRuntimeError, UnknownAgent
from agent_runtime.memory.base import Message
from agent_runtime.runner import ApprovalRequired, Checkpoint, Runner, RunOptions, RunResult
from agent_runtime.settings import Settings
from agent_runtime.tasks.callbacks import deliver, delivery_seconds
from agent_runtime.tasks.cas import Unchanged, update
from agent_runtime.tasks.model import (
    TASK_MESSAGE_KIND,
    PendingApproval,
    TaskRecord,
    TaskState,
    owner_gone,
    shown_arguments,
)
from agent_runtime.tasks.service import TaskService, audit_review, cancelled, failed, worker_queue
from agent_runtime.tasks.view import TaskView
from agent_runtime.tools import audit

log = logging.getLogger("agentstage.worker")
T = TypeVar("T")
_PROPAGATOR = TraceContextTextMapPropagator()
RECEIVE_WAIT_SECONDS = 1.0
SWEEP_SECONDS = 60.0
"""How often each worker sweeps. It re-sends the messages of its queue's tasks queued with none (the API
died between writing a task and sending its message): such a task runs at most a minute after it is
presumed orphaned (``ORPHANED_AFTER_SECONDS`` of the task service). And it expires parked tasks whose
approval lapsed, at most a minute late (unless a backlog exceeds a sweep's bound). Each costs an indexed
query of a few records a minute per worker process. The first sweep runs when the worker starts."""
DELIVERY_COUNT_EXCEEDED = "delivery_count_exceeded"
"""The error code of a task failed because its worker kept dying and its message's deliveries ran out."""


class WorkerBusError(Exception):
    """The bus kept failing after every retry; the worker stops (its messages stay on the queue)."""


class _Cancelled(Exception):
    """The task's cancellation was requested; the run stops before its next model call."""


class _LeaseLost(Exception):
    """Another worker took the task over (this one was presumed dead): stop without writing."""


class Worker:
    """Consumes this runtime's task queue with ``worker_concurrency`` runs at a time until :meth:`stop`."""

    def __init__(self, runner: Runner, catalog: AgentCatalog, tasks: TaskService, settings: Settings):
        self._runner = runner
        self._catalog = catalog
        self._tasks = tasks
        self._bus: MessageBus = tasks.bus
        self._settings = settings
        self.queue = worker_queue(settings)
        self._lease = settings.task_lease_seconds
        self._visibility = settings.bus_visibility_seconds
        self._renew_every = min(settings.task_lease_seconds, settings.bus_visibility_seconds) / 3
        self._max_deliveries = settings.bus_max_delivery_count
        self._stopping = asyncio.Event()
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self._heartbeat = Path(settings.worker_heartbeat_file) if settings.worker_heartbeat_file else None

    def stop(self) -> None:
        """Stop leasing; running tasks get ``worker_shutdown_grace_seconds`` to finish, then go back."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until :meth:`stop` (returns) or the bus fails for good (raises :class:`WorkerBusError`)."""
        consumers = [asyncio.create_task(self._consume()) for _ in range(self._settings.worker_concurrency)]
        sweeper = asyncio.create_task(self._sweep())
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([*consumers, stopping], return_when=asyncio.FIRST_COMPLETED)
        self._stopping.set()
        sweeper.cancel()
        _, unfinished = await asyncio.wait(consumers, timeout=self._settings.worker_shutdown_grace_seconds)
        for consumer in unfinished:
            consumer.cancel()
        outcomes = await asyncio.gather(*consumers, return_exceptions=True)
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                raise outcome

    async def _consume(self) -> None:
        while not self._stopping.is_set():
            if self._heartbeat is not None:
                self._heartbeat.touch()
            messages = await self._bus_call(
                "receive",
                lambda: self._bus.receive(
                    self.queue,
                    max_messages=1,
                    wait_seconds=RECEIVE_WAIT_SECONDS,
                    visibility_seconds=self._visibility,
                ),
            )
            for message in messages:
                await self.handle(message)

    async def _sweep(self) -> None:
        """Every :data:`SWEEP_SECONDS`, starting now, sweep this queue (:meth:`TaskService.sweep`). A failing
        store or bus is logged and left to the next sweep: tasks must keep running."""
        while True:
            try:
                await self._tasks.sweep([self.queue])
            except Exception as error:  # noqa: BLE001 -- the next sweep tries again
                log.warning("the sweep of queue '%s' failed: %s", self.queue, error)
            await asyncio.sleep(SWEEP_SECONDS)

    async def _bus_call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` retried with exponential backoff; :class:`WorkerBusError` once retries run out."""
        settings = self._settings
        for attempt in range(settings.worker_bus_retries + 1):
            try:
                return await call()
            except LeaseLost:
                raise
            except BusError as error:
                if attempt == settings.worker_bus_retries:
                    raise WorkerBusError(
                        f"the message bus ({self._bus.name}) failed {attempt + 1} times in a row on {what} of "
                        f"queue '{self.queue}': {error.message}; queued tasks stay on the queue"
                    ) from error
                delay = min(settings.retry_base_seconds * 2**attempt, settings.retry_max_seconds)
                log.warning("bus %s failed (%s); retry %d in %.2fs", what, error.message, attempt + 1, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # -- one delivery ----------------------------------------------------------------------------------

    async def handle(self, message: ReceivedMessage) -> None:
        """Process one delivery to its end: run the task, settle a finished one, hand back one owned by a
        live worker, or dead-letter poison. The receive loop calls it; so do serverless hosts with the
        message their trigger was pushed (:mod:`agent_runtime.hosting`)."""
        task_id = _task_id(message.body)
        if task_id is None:
            await self._dead_letter(
                message, f"not a task message: expected {{'kind': '{TASK_MESSAGE_KIND}', 'task_id': '<id>'}}"
            )
            return
        record = await self._read(task_id, message)
        if record is None:
            await self._dead_letter(message, f"unknown task id '{task_id}'")
            return
        if self._last_delivery(message) and _pending(record):
            # The bus dead-letters this message on its next receive: should this worker die now, the task
            # would be left with none.
            await self._send_standby(task_id, message)
        if record.state.finished or record.state is TaskState.AWAITING_APPROVAL:
            await self._settle(record, message)
            return
        try:
            agent, resume = self._agent_of(record)
        except (UnknownAgent, ValidationError) as error:
            code, reason = (
                ("unknown_agent", f"unknown agent: {error}")
                if isinstance(error, UnknownAgent)
                else (
                    "checkpoint_invalid",
                    "its saved checkpoint is unreadable (written by another version?)",
                )
            )
            record = await self._write(record.id, lambda r: failed(r, code, reason, time.time()))
            await self._callback(record)
            await self._dead_letter(message, reason)
            return
        wait = (record.lease_until or 0.0) - time.time()
        if record.state is TaskState.RUNNING and wait > 0:
            # Its owner is alive (or not yet presumed dead): look again once its lease would have passed.
            await self._later(record, message, wait)
            return
        if record.state is TaskState.RUNNING and self._last_delivery(message):
            # Its worker died and its deliveries are spent: it ends here, or a task that kills every worker
            # running it would be run for ever, from standby to standby.
            await self._give_up(record, message)
            return
        claimed = await self._claim(record.id)
        if claimed is None:  # finished, parked or taken by another worker in the meantime
            await self._settle(await self._tasks.store.get(record.id) or record, message)
            return
        await self._run(claimed, agent, resume, message)

    def _agent_of(self, record: TaskRecord) -> tuple[Agent, Checkpoint | None]:
        resume = Checkpoint.model_validate(record.checkpoint) if record.checkpoint else None
        return self._catalog.get(resume.agent if resume else record.agent), resume

    async def _claim(self, task_id: str) -> TaskRecord | None:
        """queued (or running with a stale lease) -> running, as a new attempt; ``None`` if not claimable."""
        claimed = False

        def claim(record: TaskRecord) -> TaskRecord:
            nonlocal claimed
            claimed = False
            now = time.time()
            if not (record.state is TaskState.QUEUED or owner_gone(record, now)):
                raise Unchanged
            if record.cancel_requested:
                return cancelled(record, "cancelled before it ran", now)
            claimed = True
            return record.model_copy(
                update={
                    "state": TaskState.RUNNING,
                    "attempts": record.attempts + 1,
                    "started_at": record.started_at or now,
                    "lease_until": now + self._lease,
                    "worker": self.id,
                }
            )

        after = await update(self._tasks.store, task_id, claim, now=time.time())
        return after if claimed else None

    async def _run(
        self, record: TaskRecord, agent: Agent, resume: Checkpoint | None, message: ReceivedMessage
    ) -> None:
        lease = _Lease(self, record, message)
        span = self._start_span(record, message)
        started = time.time()
        error: BaseException | None = None
        outcome: Callable[[TaskRecord], TaskRecord]
        try:
            try:
                async with lease.kept():
                    result = await self._runner.run(
                        agent,
                        cast(list[Message], list(record.messages)),
                        self._options(record, resume, span, lease),
                    )
                outcome = _succeeded(result)
            except ApprovalRequired as parked:
                outcome = self._parked(parked)
            except _Cancelled:
                outcome = _cancelling("cancelled while running")
            except _LeaseLost:
                log.warning(
                    "task %s was taken over by another worker; this run's outcome is dropped", record.id
                )
                return
            except asyncio.CancelledError:
                await self._hand_back(lease)
                raise
            except AgentRuntimeError as failure:
                error = failure
                outcome = _failing(failure.code, failure.message)
            except Exception as failure:
                log.exception("task %s: the run failed unexpectedly", record.id)
                error = failure
                outcome = _failing(
                    "internal_error", "the run failed unexpectedly; the operators have the details"
                )
            final = await self._write(record.id, lambda r: outcome(r) if lease.owns(r) else _unchanged())
            parked_by_this_run = (
                final.state is TaskState.AWAITING_APPROVAL and final.attempts == record.attempts
            )
            if parked_by_this_run:
                audit_review(final)
            span.set_attribute("task.state", final.state.value)
            span.set_attribute("task.run_ms", round((time.time() - started) * 1000, 3))
            await self._settle(final, lease.message)
        finally:
            self._runner.telemetry.end(span, error)

    def _options(
        self, record: TaskRecord, resume: Checkpoint | None, span: Span, lease: _Lease
    ) -> RunOptions:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        # The run is the submitter's, whole: its access (id, roles, tenant) and the application whose
        # budgets it spends; an orchestrator run passes the same caller on to its sub-tasks.
        return RunOptions(
            caller=Caller(
                record.caller, frozenset(record.roles), record.tenant or DEFAULT_TENANT, record.application
            ),
            conversation_id=record.conversation_id,
            trace_headers=carrier,
            task_class=record.task_class,
            task_id=record.id,
            resume=resume,
            takeover=record.attempts > 1,
            between_steps=lease.check,
        )

    def _parked(self, parked: ApprovalRequired) -> Callable[[TaskRecord], TaskRecord]:
        call = parked.call
        redacted = self._runner.guardrails.redactor.redact_value(shown_arguments(call.arguments))
        approval = PendingApproval(
            tool=call.name,
            call_id=call.id,
            arguments=redacted,
            args_sha256=audit.digest(call.arguments),
            requested_at=time.time(),
        )
        checkpoint = parked.checkpoint.model_dump(mode="json")
        return lambda r: r.model_copy(
            update={
                "state": TaskState.AWAITING_APPROVAL,
                "approval": approval,
                "checkpoint": checkpoint,
                "lease_until": None,
            }
        )

    async def _hand_back(self, lease: _Lease) -> None:
        """Shutdown cut the run short: the task goes back to ``queued`` and its message to the queue."""

        def requeue(record: TaskRecord) -> TaskRecord:
            if not lease.owns(record):
                raise Unchanged
            return record.model_copy(update={"state": TaskState.QUEUED, "lease_until": None})

        try:
            queued = await asyncio.shield(self._write(lease.record.id, requeue))
            await asyncio.shield(self._later(queued, lease.message, 0.0))
        except Exception as error:  # noqa: BLE001 -- shutting down: its lease's expiry hands it back anyway
            log.warning(
                "task %s: not handed back (%s); it is taken over once its lease passes",
                lease.record.id,
                error,
            )

    def _last_delivery(self, message: ReceivedMessage) -> bool:
        """Whether the bus dead-letters ``message`` on its next receive, unseen by any worker: the limit is
        the bus's, or this runtime's setting for a message a platform pushed."""
        return message.delivery_count >= (message.max_delivery_count or self._max_deliveries)

    async def _give_up(self, record: TaskRecord, message: ReceivedMessage) -> None:
        """The last delivery of a task whose worker died: fail it (cancel it, if that was asked), as the
        next delivery would be dead-lettered and leave it running for ever, and deliver its callback. If it
        moved on meanwhile (another delivery took it over), this message is handed on instead."""

        def give_up(current: TaskRecord) -> TaskRecord:
            now = time.time()
            if not owner_gone(current, now):
                raise Unchanged
            if current.cancel_requested:
                return cancelled(current, "cancelled; its worker died before it stopped", now)
            reason = (
                f"its worker died running it (attempt {current.attempts}), and its message has been "
                f"delivered {message.delivery_count} times, the most the bus allows: it is not run again"
            )
            log.warning("task %s: %s", current.id, reason)
            return failed(current, DELIVERY_COUNT_EXCEEDED, reason, now)

        after = await self._write(record.id, give_up)
        if after.state.finished or after.state is TaskState.AWAITING_APPROVAL:
            await self._settle(after, message)
        else:
            await self._later(after, message, (after.lease_until or 0.0) - time.time())

    async def _later(self, record: TaskRecord, message: ReceivedMessage, delay: float) -> None:
        """Have the task looked at again in ``delay`` seconds: release the message; on its last delivery
        (released, it would be dead-lettered) complete it, the standby sent on its arrival taking over."""
        if self._last_delivery(message):
            await self._complete(record, message)
        else:
            delay = max(delay, 0.0)
            await self._bus_call("release", lambda: self._bus.release(message, delay_seconds=delay))

    async def _read(self, task_id: str, message: ReceivedMessage) -> TaskRecord | None:
        """The task's record. When the store fails on the message's last delivery, a standby is sent first
        (the task may need one), as this worker stops with the store's error."""
        try:
            return await self._tasks.store.get(task_id)
        except Exception:
            if self._last_delivery(message):
                await self._send_standby(task_id, message)
            raise

    async def _send_standby(self, task_id: str, message: ReceivedMessage) -> None:
        """On a message's last delivery, before anything is written, send a copy due in a lease: should this
        worker die handling the delivery (mid-run, posting the callback), it carries the task on once the
        worker's lease has passed; if the worker lives, the copy finds nothing left to do, or the task's
        owner alive. Its id is not the API's (``<task>.<version>``), so a bus that deduplicates keeps it."""
        standby = OutgoingMessage(
            body=message.body,
            headers=message.headers,
            message_id=f"{task_id}.standby-{uuid.uuid4().hex[:12]}",
            delay_seconds=self._lease,
        )
        await self._bus_call("send", lambda: self._bus.send(message.queue, standby))

    async def _settle(self, record: TaskRecord, message: ReceivedMessage) -> None:
        """The task needs nothing more from this message: deliver a due callback, then complete it. While
        another delivery sends the callback, the message comes back once that one's claim would have lapsed
        (so a sender that died is replaced)."""
        sending_for = await self._callback(record)
        if sending_for is not None:
            await self._later(record, message, sending_for)
            return
        await self._complete(record, message)

    async def _complete(self, record: TaskRecord, message: ReceivedMessage) -> None:
        try:
            await self._bus_call("complete", lambda: self._bus.complete(message))
        except LeaseLost:
            log.info(
                "task %s: the message's lease passed before completion; its redelivery is a no-op", record.id
            )

    async def _callback(self, record: TaskRecord) -> float | None:
        """POST a finished task's due callback, once per outcome: the delivery claims it on the record
        first (``{"status": "sending", "until"}``), so a redelivered or duplicate message never POSTs it
        again. Returns ``None`` when nothing is left to do, else the seconds until another delivery's claim
        lapses (a lapsed claim is taken over)."""
        if not record.state.finished or record.callback_url is None:
            return None
        now = time.time()
        # The claim outlives the longest delivery by a lease (the writes around it): a lapsed one is a dead
        # sender's.
        claim = {
            "status": "sending",
            "worker": self.id,
            "at": now,
            "until": now + delivery_seconds(self._settings) + self._lease,
        }

        def claimed(current: TaskRecord) -> TaskRecord:
            sending = current.callback
            if sending is not None and not (sending["status"] == "sending" and sending["until"] <= now):
                raise Unchanged
            return current.model_copy(update={"callback": claim})

        current = await self._write(record.id, claimed)
        if current.callback != claim:
            sending = current.callback
            return sending["until"] - now if sending is not None and sending["status"] == "sending" else None
        outcome = await deliver(
            self._runner.http,
            record.callback_url,
            TaskView.of(record).model_dump(mode="json"),
            self._settings,
        )
        await self._write(
            record.id,
            lambda r: r.model_copy(update={"callback": outcome}) if r.callback == claim else _unchanged(),
        )
        return None

    async def _dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        log.warning("dead-lettering message %s of queue %s: %s", message.message_id, message.queue, reason)
        await self._bus_call("dead_letter", lambda: self._bus.dead_letter(message, reason=reason))

    async def _write(self, task_id: str, change: Callable[[TaskRecord], TaskRecord]) -> TaskRecord:
        return await update(self._tasks.store, task_id, change, now=time.time())

    def _start_span(self, record: TaskRecord, message: ReceivedMessage) -> Span:
        now = time.time()
        parent = _PROPAGATOR.extract(dict(message.headers)) if message.headers else None
        return self._runner.telemetry.tracer.start_span(
            f"task {record.agent}",
            parent,
            SpanKind.CONSUMER,
            {
                "task.id": record.id,
                "task.attempt": record.attempts,
                "task.queue_wait_ms": round(max(now - message.enqueued_at, 0.0) * 1000, 3),
                "messaging.system": self._bus.name,
                "messaging.destination.name": message.queue,
                "messaging.message.id": message.message_id,
                "messaging.message.delivery_count": message.delivery_count,
                "gen_ai.agent.name": record.agent,
            },
        )


class _Lease:
    """This worker's ownership of one running task: kept alive in the background, checked between steps."""

    def __init__(self, worker: Worker, record: TaskRecord, message: ReceivedMessage) -> None:
        self._worker = worker
        self.record = record
        self.message = message
        self._attempt = record.attempts

    def owns(self, record: TaskRecord) -> bool:
        return record.state is TaskState.RUNNING and record.attempts == self._attempt

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Renew the record's and the message's lease while the block runs; if the task is taken over
        meanwhile (this worker was presumed dead), the block is cancelled and raises :class:`_LeaseLost`."""
        runner = asyncio.current_task()
        assert runner is not None
        lost = False

        async def keep() -> None:
            nonlocal lost
            interval = self._worker._renew_every
            while True:
                await asyncio.sleep(interval)
                try:
                    await self._renew()
                except _LeaseLost:
                    lost = True
                    runner.cancel()
                    return
                except Exception as error:  # noqa: BLE001 -- a blip: the next renewal may succeed in time
                    log.warning("task %s: lease renewal failed: %s", self.record.id, error)

        keeper = asyncio.create_task(keep())
        try:
            yield
        except asyncio.CancelledError:
            if lost:
                raise _LeaseLost from None
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if lost and runner.cancelling():
                runner.uncancel()

    async def _renew(self) -> None:
        lease = self._worker._lease

        def extend(record: TaskRecord) -> TaskRecord:
            if not self.owns(record):
                raise _LeaseLost
            return record.model_copy(update={"lease_until": time.time() + lease})

        self.record = await self._worker._write(self.record.id, extend)
        self.message = await self._worker._bus.renew(
            self.message, visibility_seconds=self._worker._visibility
        )

    async def check(self) -> None:
        """Between steps: stop if the task was cancelled or taken over."""
        record = await self._worker._tasks.store.get(self.record.id)
        if record is None or not self.owns(record):
            raise _LeaseLost
        if record.cancel_requested:
            raise _Cancelled


def _succeeded(result: RunResult) -> Callable[[TaskRecord], TaskRecord]:
    outcome = {
        "answer": result.answer,
        "conversation_id": result.conversation_id,
        "usage": result.usage.model_dump(),
        "steps": [step.model_dump() for step in result.steps],
    }
    return lambda r: r.model_copy(
        update={
            "state": TaskState.SUCCEEDED,
            "result": outcome,
            "finished_at": time.time(),
            "lease_until": None,
            "checkpoint": None,
        }
    )


def _cancelling(reason: str) -> Callable[[TaskRecord], TaskRecord]:
    return lambda record: cancelled(record, reason, time.time())


def _failing(code: str, message: str) -> Callable[[TaskRecord], TaskRecord]:
    return lambda record: failed(record, code, message, time.time())


def _pending(record: TaskRecord) -> bool:
    """Whether ``record``'s task still needs a message: to run, or to have its callback posted (a parked task
    gets a new one when it is decided)."""
    if record.state in (TaskState.QUEUED, TaskState.RUNNING):
        return True
    unsettled = record.callback is None or record.callback["status"] == "sending"
    return record.state.finished and record.callback_url is not None and unsettled


def _unchanged() -> TaskRecord:
    raise Unchanged


def _task_id(body: Mapping[str, Any]) -> str | None:
    task_id = body.get("task_id") if isinstance(body, Mapping) else None
    if body.get("kind") != TASK_MESSAGE_KIND or not isinstance(task_id, str) or not task_id:
        return None
    return task_id
