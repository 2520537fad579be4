"""Long-running tasks: the record every component agrees on, and the store contract.

A task is one agent run decoupled from the HTTP request that asked for it. The API writes the record
(``queued``) and sends a :data:`TASK_MESSAGE_KIND` message carrying only the task id; a worker leases
the message, moves the record to ``running`` with a compare-and-set (so two deliveries of one message can
never both run it), runs the agent and stores the outcome. The record, not the message, is the truth:
a redelivered message for a finished task is completed without running anything.

States::

    queued -> running -> succeeded | failed
    running -> queued (a stopping worker hands the task back)
    running -> awaiting_approval -> queued (approved: resumes) | failed (rejected, or expired undecided)
    queued | running | awaiting_approval -> cancelled
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.caller import DEFAULT_TENANT, UNKNOWN_APPLICATION

TASK_MESSAGE_KIND = "agentstage.task.v1"
"""``kind`` of a bus message's body that asks a worker to run task ``task_id``."""


class TaskState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """No worker will touch the task again (its callback may still be due)."""
        return self in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


class PendingApproval(BaseModel):
    """A tool call parked until a reviewer decides (the architecture's review workflow).

    ``arguments`` is stored redacted: that copy is what the task's creator, its tenant, callbacks and logs
    see. A reviewer of the task's tenant is shown the call's real arguments instead, read from the parked
    run's checkpoint while it holds the call (see ``TaskService``): what is approved is what runs.
    """

    model_config = ConfigDict(extra="forbid")

    tool: str
    call_id: str
    arguments: Mapping[str, Any]
    args_sha256: str | None = None
    """SHA-256 of the call's exact argument text, as the tool call's own audit record has it (``None`` on
    calls parked before it was recorded); an approval is bound to it."""
    requested_at: float
    decision: str | None = None  # "approved" | "rejected" | "expired" (no reviewer decided in time)
    reviewer: str | None = None  # none when expired: the system decided
    decided_at: float | None = None  # when expired: the moment it lapsed
    comment: str | None = None


def shown_arguments(text: str) -> dict[str, Any]:
    """A tool call's argument text as the object a review shows (text that is not a JSON object is
    wrapped, so nothing the model wrote is hidden from the reviewer)."""
    try:
        arguments: Any = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {"raw": text}
    return arguments if isinstance(arguments, dict) else {"value": arguments}


class TaskRecord(BaseModel):
    """Everything known about one task. Timestamps are epoch seconds."""

    model_config = ConfigDict(extra="forbid")

    id: str
    agent: str
    state: TaskState = TaskState.QUEUED
    messages: Sequence[Mapping[str, Any]]  # the run's input, as sent: never returned by the API
    conversation_id: str | None = None
    task_class: str | None = None  # for the agent's model routing policy, as in invoke
    queue: str  # where the task's messages go (its agent's worker queue)
    caller: str
    tenant: str | None = None
    # The submitting caller's client application: the worker's run spends that application's budgets, so
    # submitting a task never moves spending to another quota. Records stored before the field load as
    # the shared unknown application, as callers whose credentials name none do.
    application: str = UNKNOWN_APPLICATION
    roles: Sequence[str] = Field(default_factory=list)
    idempotency_key: str | None = None
    callback_url: str | None = None
    parent_id: str | None = None  # the orchestrator task that delegated this one
    traceparent: str | None = None  # W3C trace context of the request that created the task
    result: Mapping[str, Any] | None = (
        None  # {"answer": str, "conversation_id", "usage": {...}, "steps": [...]}
    )
    error: Mapping[str, Any] | None = None  # {"code": str, "message": str}
    approval: PendingApproval | None = None
    attempts: int = 0  # runs started (a crashed worker's run counts)
    cancel_requested: bool = False
    lease_until: float | None = None  # while running: the owning worker's heartbeat deadline
    worker: str | None = None  # the worker ("<host>:<pid>") that ran the latest attempt
    checkpoint: Mapping[str, Any] | None = None  # a parked run (see agent_runtime.runner.Checkpoint)
    callback: Mapping[str, Any] | None = None  # {"status": delivered|failed, "attempts", "detail", "at"}
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float
    version: int = Field(default=0, description="Bumped by every write; compare-and-set uses it.")


def owner_gone(record: TaskRecord, now: float) -> bool:
    """Whether ``record`` is running with a lease that has passed: its worker stopped renewing it, so it is
    presumed dead (a delivery of its message takes the task over, a cancel ends it at once)."""
    return record.state is TaskState.RUNNING and (record.lease_until or 0.0) <= now


def approval_lapsed(record: TaskRecord, timeout: float, now: float) -> bool:
    """Whether ``record`` is parked on a call that no reviewer decided within ``timeout`` seconds of its
    request (``approval_timeout_seconds``): it is due to expire."""
    approval = record.approval
    return (
        record.state is TaskState.AWAITING_APPROVAL
        and approval is not None
        and approval.decision is None
        and approval.requested_at + timeout <= now
    )


def tenant_of(record: TaskRecord) -> str:
    """The tenant ``record`` belongs to, as reviewers are scoped: its ``tenant``, or
    :data:`~agent_runtime.caller.DEFAULT_TENANT` for a task of a caller without one (stored as none)."""
    return record.tenant or DEFAULT_TENANT


def result_answer(result: Mapping[str, Any]) -> str:
    """The answer of a stored ``result`` (``output`` in records written before it was named ``answer``)."""
    return str(result.get("answer", result.get("output", "")))


class TaskConflict(Exception):
    """A compare-and-set lost: the record changed since it was read (another worker, a cancel)."""


@runtime_checkable
class TaskStore(Protocol):
    """Durable task records with optimistic concurrency. SQLite locally, Redis, Cosmos DB in the cloud."""

    async def create(self, record: TaskRecord) -> tuple[TaskRecord, bool]:
        """Insert ``record``; when a task with the same (caller, idempotency_key) exists, return that one
        and ``False`` instead (no second task, no second message)."""
        ...

    async def get(self, task_id: str) -> TaskRecord | None: ...

    async def replace(self, record: TaskRecord, *, expected_version: int) -> TaskRecord:
        """Write ``record`` (version bumped) iff the stored version is ``expected_version``; else
        :class:`TaskConflict`."""
        ...

    async def children(self, parent_id: str) -> list[TaskRecord]:
        """Tasks delegated by ``parent_id`` (orchestrator fan-out), oldest first."""
        ...

    async def awaiting_approval(self, limit: int, *, tenant: str | None = None) -> list[TaskRecord]:
        """Up to ``limit`` tasks parked for a reviewer's decision, oldest first (the reviewers' queue): of
        every tenant, or only of ``tenant`` (:func:`tenant_of`). A tenant's queue reads that tenant's tasks
        only, never every tenant's to pick out its own: what other tenants park costs its reviewers
        nothing. Either reads about ``limit`` records, plus any the store's index still lists but that have
        left the queue since (and, once after an upgrade, those an older runtime's index lists: see the
        Redis and DynamoDB stores)."""
        ...

    async def queued_before(self, queue: str, before: float, limit: int) -> list[TaskRecord]:
        """Up to ``limit`` tasks of ``queue`` still ``queued`` whose record was last written before
        ``before`` (epoch seconds): the candidates of the sweep for tasks whose message was lost (see
        ``TaskService.requeue_orphans``). An index of the queued tasks serves it, so it reads about
        ``limit`` records however many tasks the store holds; when more qualify, the least recently written
        come first, so tasks re-sent a moment ago never hide an older one."""
        ...

    async def close(self) -> None: ...
