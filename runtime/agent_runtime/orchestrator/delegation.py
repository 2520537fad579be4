"""Sub-tasks over the bus: submit one per chosen delegate, wait for all until a deadline, report each.

Each sub-task is an ordinary task (:mod:`agent_runtime.tasks`) with ``parent_id`` set, sent to the
delegate's queue and run by whichever worker serves that queue. Each is a ``delegate <agent>`` span whose
W3C trace context travels in the task, so the delegate's ``invoke_agent`` span (and its model and tool
spans) join the orchestrator's trace across processes. Nothing here can hang: the wait ends at the
deadline, delegates still running then are reported ``timed_out`` and asked to cancel, and a delegate
that cannot even be submitted (bus down) is reported ``failed`` while the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agent_runtime.caller import Caller
from agent_runtime.errors import AgentRuntimeError
from agent_runtime.orchestrator.outcome import Delegation
from agent_runtime.settings import Settings
from agent_runtime.tasks.factory import SharedTaskService
from agent_runtime.tasks.model import TaskRecord, TaskState, result_answer
from agent_runtime.tasks.service import TaskService, queue_for
from agent_runtime.trace import TokenUsage

log = logging.getLogger("agentstage.orchestrator")
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class Assignment:
    """One sub-task to hand out: the delegate, the messages it gets, and the conversation it continues."""

    agent: str
    messages: Sequence[Mapping[str, Any]]
    conversation_id: str | None = None


class Delegator:
    def __init__(self, tasks: SharedTaskService, settings: Settings, tracer: trace.Tracer) -> None:
        self._tasks = tasks
        self._settings = settings
        self._tracer = tracer

    async def run(
        self,
        assignments: Sequence[Assignment],
        caller: Caller,
        parent: Span,
        *,
        wait_seconds: float,
        parent_task: str | None,
        request_key: str | None,
        task_class: str | None,
    ) -> list[Delegation]:
        """Every assignment's outcome, in assignment order, within ``wait_seconds``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks = await self._tasks.get()
        spans = [self._start_span(tasks, a.agent, parent) for a in assignments]
        submitted = await asyncio.gather(
            *(
                self._submit(tasks, a, caller, span, parent_task, request_key, task_class)
                for a, span in zip(assignments, spans, strict=True)
            )
        )
        pending = [outcome.id for outcome in submitted if isinstance(outcome, TaskRecord)]
        finished: dict[str, TaskRecord] = {}
        if pending:
            records = await tasks.wait(pending, started + wait_seconds)
            finished = {record.id: record for record in records}
        elapsed = loop.time() - started
        outcomes: list[Delegation] = []
        for assignment, span, outcome in zip(assignments, spans, submitted, strict=True):
            if isinstance(outcome, TaskRecord):
                record = finished.get(outcome.id, outcome)
                delegation = _outcome(assignment.agent, record, elapsed)
                if delegation.status == "timed_out":
                    await _cancel(tasks, record, caller)
            else:
                delegation = outcome
            _end_span(span, delegation)
            outcomes.append(delegation)
        return outcomes

    def _start_span(self, tasks: TaskService, agent: str, parent: Span) -> Span:
        queue = queue_for(agent, self._settings)
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "messaging.system": tasks.bus.name,
            "messaging.destination.name": queue,
            "messaging.operation.type": "send",
        }
        return self._tracer.start_span(
            f"delegate {agent}", trace.set_span_in_context(parent), SpanKind.PRODUCER, attributes
        )

    async def _submit(
        self,
        tasks: TaskService,
        assignment: Assignment,
        caller: Caller,
        span: Span,
        parent_task: str | None,
        request_key: str | None,
        task_class: str | None,
    ) -> TaskRecord | Delegation:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
        # A redelivered orchestrator task (or a retried request) finds its sub-tasks instead of
        # submitting them twice: the store deduplicates on (caller, idempotency key).
        scope = parent_task or request_key
        try:
            record, _ = await tasks.submit(
                assignment.agent,
                assignment.messages,
                caller,
                conversation_id=assignment.conversation_id,
                task_class=task_class,
                parent_id=parent_task,
                idempotency_key=f"{scope}:delegate:{assignment.agent}" if scope else None,
                traceparent=carrier.get("traceparent"),
            )
        except AgentRuntimeError as error:
            log.warning("delegating to '%s' failed: %s: %s", assignment.agent, error.code, error.message)
            error_body = {"code": error.code, "message": error.message}
            return Delegation(assignment.agent, None, "failed", error=error_body)
        span.set_attribute("agentstage.task.id", record.id)
        return record


async def _cancel(tasks: TaskService, record: TaskRecord, caller: Caller) -> None:
    """Ask a late delegate to stop (its answer would be thrown away); best effort."""
    try:
        await tasks.cancel(record.id, caller)
    except AgentRuntimeError as error:
        log.info("cancelling late sub-task %s failed: %s", record.id, error.code)


def _outcome(agent: str, record: TaskRecord, seconds: float) -> Delegation:
    result: Mapping[str, Any] = record.result or {}
    usage = TokenUsage.model_validate(result.get("usage") or {})
    if record.state is TaskState.SUCCEEDED:
        return Delegation(agent, record.id, "succeeded", result_answer(result), None, usage, seconds)
    if record.state is TaskState.FAILED:
        error = dict(record.error or {"code": "task_failed", "message": "the sub-task failed"})
        return Delegation(agent, record.id, "failed", None, error, usage, seconds)
    if record.state is TaskState.CANCELLED:
        return Delegation(agent, record.id, "cancelled", None, None, usage, seconds)
    if record.state is TaskState.AWAITING_APPROVAL:  # a reviewer may still approve it: not cancelled
        return Delegation(agent, record.id, "awaiting_approval", None, None, usage, seconds)
    return Delegation(agent, record.id, "timed_out", None, None, usage, seconds)


def _end_span(span: Span, delegation: Delegation) -> None:
    span.set_attribute("agentstage.delegation.status", delegation.status)
    span.set_attribute("gen_ai.usage.input_tokens", delegation.usage.prompt_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", delegation.usage.completion_tokens)
    if not delegation.succeeded:
        span.set_attribute("error.type", (delegation.error or {}).get("code", delegation.status))
        span.set_status(Status(StatusCode.ERROR, delegation.describe_failure()))
    span.end()
