"""TaskService: the one public way to create, read, cancel, review and await tasks.

The HTTP API (:mod:`agent_runtime.api.tasks`) and the orchestrator (child tasks, ``parent_id``) both call
it; workers (:mod:`agent_runtime.tasks.worker`) only consume what it sends. It writes the record first and
then sends a message carrying nothing but the task id (and the trace context), so the record stays the
single truth and a message can always be re-sent safely:

- ``submit`` with an idempotency key returns the caller's existing task instead of a second one, and re-
  sends its message while it is still queued (the first send may have been lost with a crash);
- ``cancel`` ends a queued or parked task at once, and a running one whose worker is gone (its lease has
  passed); it flags a running one whose worker is alive, which stops it between steps;
- ``requeue_orphans`` re-sends the message of a task queued long ago: the API may die between writing a
  task and sending its message, and workers call it periodically so that such a task still runs;
- ``awaiting_review`` lists the parked tool calls for reviewers; ``decide`` lets a caller with the
  reviewer role approve (the task is queued again and resumes from its
  checkpoint, running the approved call once) or reject (the task fails with ``approval_rejected``) a
  parked tool call; every decision is written to the audit log. A reviewer is shown the parked call's real
  arguments (every other reader its redacted copy), and an approval covers that call only: its id, tool
  and exact arguments. A decision repeated by its reviewer re-sends the message the first may have lost;
- ``expire_approvals`` fails (``approval_expired``) the parked tasks that no reviewer decided within
  ``approval_timeout_seconds``, audited as decided by the system and with their callbacks sent: workers
  call it every minute, and ``decide`` expires such a task itself rather than decide it. Until then a read
  shows the task still parked (a minute at most, unless a backlog exceeds a sweep's bound): readers see
  what the record and the callback say, never an outcome computed on the side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import ValidationError

from agent_runtime.agents import AgentCatalog
from agent_runtime.bus.base import BusError, MessageBus, OutgoingMessage
from agent_runtime.caller import DEFAULT_TENANT, Caller
from agent_runtime.errors import ConfigurationError, Forbidden, ToolError, UnprocessableRequest
from agent_runtime.runner import Checkpoint, approval_key, approval_key_of
from agent_runtime.settings import Settings
from agent_runtime.settings_contract import env_name
from agent_runtime.tasks.cas import Unchanged, update
from agent_runtime.tasks.errors import TaskNotFound, TaskStateConflict
from agent_runtime.tasks.model import (
    TASK_MESSAGE_KIND,
    TaskRecord,
    TaskState,
    TaskStore,
    approval_lapsed,
    owner_gone,
    shown_arguments,
    tenant_of,
)
from agent_runtime.tools import audit
from agent_runtime.tools.builtins.http_get import checked_url

log = logging.getLogger("agentstage.worker")

DEFAULT_QUEUE = "agentstage-tasks"
"""The task queue of a runtime whose ``task_queue`` is unset (``agentstage dev``, tests)."""

# ``wait`` polls the store: soon at first (a delegate on an idle worker finishes in a few milliseconds),
# then less often, so a wait overshoots a finish by at most half its age and a long wait costs little.
WAIT_FIRST_POLL_SECONDS = 0.005
WAIT_POLL_GROWTH = 1.5
WAIT_MAX_POLL_SECONDS = 1.0

ORPHANED_AFTER_SECONDS = 300.0
"""A task still ``queued`` this long after its record was last written is presumed to have lost its message
(the API died between the write and the send) and is sent another. Far longer than a message waits on a queue
that keeps up, so a task whose message is merely waiting seldom gets a second one; when it does (a backlog),
the copy is harmless, as a worker's claim runs a task once whatever arrives, and re-sending rewrites the
record, so a task gets at most one copy per period however many workers sweep."""
ORPHAN_SWEEP_LIMIT = 20
"""Tasks one sweep re-sends at most: what a sweep reads (one indexed query) and sends stays bounded
whatever the store holds; any left over are found by the next sweep."""
APPROVAL_EXPIRED = "approval_expired"
"""The error code of a task failed because no reviewer decided on its parked call in time."""
EXPIRED = "expired"
"""The ``decision`` of an approval that lapsed undecided: the system's, not a reviewer's."""
APPROVAL_EXPIRY_LIMIT = 20
"""Tasks one sweep expires at most: each is a write, an audit record and a callback message, so a sweep's
work stays bounded when many approvals lapse at once (a backlog drains this many per sweep and worker)."""
APPROVAL_EXPIRY_WINDOW = 8 * APPROVAL_EXPIRY_LIMIT
"""How far into the reviewers' queue a sweep reads at most. The queue is in creation order, not in order of
parking: a task created long ago that parked recently (a long run, its second reviewed call) sits in front
without having lapsed, and may hide lapsed ones behind it. A sweep reads :data:`APPROVAL_EXPIRY_LIMIT`
tasks; only if it found fewer lapsed ones than that and the last it read was created longer than the
timeout ago (so tasks behind it may have lapsed: a task created since cannot have) does it read again
twice as far, up to this many tasks (fewer than twice this many records read in all). A queue of tasks
created within the timeout, the usual case, costs one read; and a lapsed approval hides only while this
many tasks created before it, and over a timeout ago, wait on approvals that have not lapsed (each of
them is decided or lapses within ``approval_timeout_seconds``)."""


def worker_queue(settings: Settings) -> str:
    """The queue this runtime's worker consumes."""
    return settings.task_queue or DEFAULT_QUEUE


def queue_for(agent: str, settings: Settings) -> str:
    """Where tasks of ``agent`` go: its entry in ``agent_queues``, else this runtime's own queue."""
    try:
        queues = json.loads(settings.agent_queues or "{}")
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{env_name('agent_queues')} is not valid JSON: {error}") from None
    queue = queues.get(agent) if isinstance(queues, dict) else None
    return queue if isinstance(queue, str) and queue else worker_queue(settings)


def task_message(record: TaskRecord) -> OutgoingMessage:
    """The message asking a worker to look at ``record``: its id only, plus the trace context.

    The id changes with every write (``<task>.<version>``): adapters that deduplicate drop a re-send of
    the same state, never the message sent after an approval.
    """
    headers = {"traceparent": record.traceparent} if record.traceparent else {}
    return OutgoingMessage(
        body={"kind": TASK_MESSAGE_KIND, "task_id": record.id},
        headers=headers,
        message_id=f"{record.id}.{record.version}",
    )


class TaskService:
    """Create, read, cancel, review and await tasks. One per process; safe for concurrent use."""

    def __init__(self, store: TaskStore, bus: MessageBus, settings: Settings, catalog: AgentCatalog) -> None:
        self.store = store
        self.bus = bus
        self._settings = settings
        self._catalog = catalog

    async def submit(
        self,
        agent: str,
        messages: Sequence[Mapping[str, Any]],
        caller: Caller,
        *,
        conversation_id: str | None = None,
        task_class: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        parent_id: str | None = None,
        traceparent: str | None = None,
    ) -> tuple[TaskRecord, bool]:
        """Queue a run of ``agent`` on ``messages`` for ``caller``; returns the task and whether it is new.

        With ``idempotency_key`` a second submission by the same caller returns the first task (whatever
        its state) and creates nothing. ``callback_url`` must be on ``http_allowed_hosts``. Raises
        :class:`UnknownAgent`, :class:`UnprocessableRequest` (``callback_url``) or :class:`BusError`
        (the record exists but its message could not be sent: retry with the same idempotency key).
        """
        self._catalog.get(agent)
        if callback_url is not None:
            try:
                checked_url(callback_url, self._settings)
            except ToolError as error:
                raise UnprocessableRequest(f"callback_url: {error.message}", field="callback_url") from None
        now = time.time()
        record = TaskRecord(
            id=uuid.uuid4().hex,
            agent=agent,
            messages=[dict(message) for message in messages],
            conversation_id=conversation_id,
            task_class=task_class,
            queue=queue_for(agent, self._settings),
            caller=caller.id,
            tenant=caller.tenant if caller.tenant != DEFAULT_TENANT else None,
            application=caller.application,
            roles=sorted(caller.roles),
            # The stores claim (caller, key): the tenant goes into the key, so a caller of the same name in
            # another tenant never replays into this one's task.
            idempotency_key=json.dumps([caller.tenant, idempotency_key]) if idempotency_key else None,
            callback_url=callback_url,
            parent_id=parent_id,
            traceparent=traceparent,
            created_at=now,
            updated_at=now,
        )
        stored, created = await self.store.create(record)
        if created or stored.state is TaskState.QUEUED:
            await self._send_new(stored)
        return stored, created

    async def get(self, task_id: str, caller: Caller) -> TaskRecord:
        """The task, if ``caller`` created it, shares its (explicit) tenant or reviews for its tenant; else
        :class:`TaskNotFound` (whether it exists is not revealed)."""
        record = await self.store.get(task_id)
        if record is None or not self._may_read(record, caller):
            raise TaskNotFound(f"no task '{task_id}'", field="task_id")
        return self._shown(record, caller)

    async def cancel(self, task_id: str, caller: Caller) -> TaskRecord:
        """Cancel for its creator or a reviewer: a queued or parked task ends now, and so does a running one
        whose lease has passed (its worker is gone: nobody would act on a flag, and its message may be
        spent); a running one whose worker is alive is flagged (``cancel_requested``) and its worker stops
        it before the next model call.

        A task that ends here is sent a message for its callback: a worker's claim on the callback posts it
        once, whatever other message of the task arrives too. Cancelling a cancelled task whose callback is
        still owed (a retry after a failed send: the record was written, its message may not have been)
        re-sends that message and changes nothing."""
        await self._managed(task_id, caller)
        repeated = False

        def cancel(record: TaskRecord) -> TaskRecord:
            nonlocal repeated
            repeated = record.state is TaskState.CANCELLED and _callback_owed(record)
            if repeated:
                raise Unchanged
            if record.state.finished:
                raise TaskStateConflict(f"task '{task_id}' is already {record.state.value}", field="task_id")
            now = time.time()
            if record.state is TaskState.RUNNING and not owner_gone(record, now):
                if record.cancel_requested:
                    raise Unchanged
                return record.model_copy(update={"cancel_requested": True})
            return cancelled(record, f"cancelled by {caller.id}", now)

        record = await update(self.store, task_id, cancel, now=time.time())
        if record.state is TaskState.CANCELLED:
            await self._send_for_callback(record)
        return record

    async def decide(
        self,
        task_id: str,
        caller: Caller,
        *,
        approve: bool,
        comment: str | None = None,
        args_sha256: str | None = None,
    ) -> TaskRecord:
        """Approve or reject the tool call ``task_id`` waits on; needs the reviewer role, and a reviewer
        may not review their own task. Approved: queued again, resuming with the call allowed once.
        Rejected: failed with ``approval_rejected``. Audited either way. ``args_sha256``, the digest the
        reviewer was shown, binds the decision to that call: once the task has moved on to another one (a
        decision submitted twice, the second after the run resumed and parked again), it is refused.

        The same reviewer's same decision again (a retry after a failed send: the record was written, its
        message may not have been) re-sends the message and changes nothing; adapters that deduplicate
        drop the second copy, and a worker's claim runs the task once whatever arrives.

        A decision arriving once the call has waited longer than ``approval_timeout_seconds`` is refused
        (:class:`TaskStateConflict`, saying when it expired): the task is expired here and now, as a sweep
        would (see :meth:`expire_approvals`), if no sweep did it first."""
        record = await self.get(task_id, caller)
        role = self._settings.reviewer_role
        if role not in caller.roles:
            raise Forbidden(f"deciding on a tool call needs the '{role}' role")
        if _created_by(record, caller):
            raise Forbidden("a task's creator may not review its own tool calls")
        await self._expire(record)  # too late: the task fails instead, and the decision is refused below
        now = time.time()
        decision = "approved" if approve else "rejected"
        retried = False

        def decide(current: TaskRecord) -> TaskRecord:
            nonlocal retried
            retried = _already_decided(current, caller, decision)
            if retried:
                raise Unchanged
            if current.state is not TaskState.AWAITING_APPROVAL or current.approval is None:
                raise _undecidable(current)
            if args_sha256 is not None and args_sha256 != current.approval.args_sha256:
                raise TaskStateConflict(
                    f"task '{task_id}' now waits on another call than the one reviewed (args_sha256 "
                    f"{current.approval.args_sha256}); review that one",
                    field="args_sha256",
                )
            approval = current.approval.model_copy(
                update={
                    "decision": decision,
                    "reviewer": caller.id,
                    "decided_at": now,
                    "comment": comment,
                }
            )
            if not approve:
                reason = f"reviewer '{caller.id}' rejected the call of tool '{approval.tool}'"
                return current.model_copy(
                    update={
                        "state": TaskState.FAILED,
                        "approval": approval,
                        "checkpoint": None,
                        "finished_at": now,
                        "error": {"code": "approval_rejected", "message": reason},
                    }
                )
            checkpoint = Checkpoint.model_validate(current.checkpoint)
            # A call parked before its digest was recorded gets no key: it parks again, for a review that
            # is bound to its arguments.
            if approval.args_sha256 is not None:
                checkpoint.approved.append(
                    approval_key(approval.call_id, approval.tool, approval.args_sha256)
                )
            return current.model_copy(
                update={
                    "state": TaskState.QUEUED,
                    "approval": approval,
                    "checkpoint": checkpoint.model_dump(mode="json"),
                }
            )

        decided = await update(self.store, task_id, decide, now=now)
        if not retried:
            audit_review(decided, caller)
        if approve:
            await self.bus.send(decided.queue, task_message(decided))
        else:
            await self._send_for_callback(decided)
        return self._shown(decided, caller)

    async def requeue_orphans(self, queue: str) -> list[TaskRecord]:
        """Send another message for each task of ``queue`` (up to :data:`ORPHAN_SWEEP_LIMIT`) still queued
        :data:`ORPHANED_AFTER_SECONDS` after its last write; returns those tasks.

        Each is rewritten first (compare-and-set), so of the workers sweeping at once one sends it, and it
        is not sent again for another period; its new version gives the message an id that a bus that
        deduplicates has not seen. A sweep that dies between the write and the send leaves the task for the
        sweep a period later."""
        cutoff = time.time() - ORPHANED_AFTER_SECONDS
        requeued = []
        for candidate in await self.store.queued_before(queue, cutoff, ORPHAN_SWEEP_LIMIT):
            record = await self._touch_orphan(candidate.id, cutoff)
            if record is not None:
                await self.bus.send(record.queue, task_message(record))
                requeued.append(record)
        return requeued

    async def _touch_orphan(self, task_id: str, cutoff: float) -> TaskRecord | None:
        """Rewrite the task as it is (a new version and ``updated_at``) if it is still queued and unwritten
        since ``cutoff``; the record written, or ``None`` when another sweep or a worker got there first."""
        touched = False

        def touch(record: TaskRecord) -> TaskRecord:
            nonlocal touched
            touched = record.state is TaskState.QUEUED and record.updated_at < cutoff
            if not touched:
                raise Unchanged
            return record

        record = await update(self.store, task_id, touch, now=time.time())
        return record if touched else None

    async def sweep(self, queues: Sequence[str]) -> list[TaskRecord]:
        """One sweep, what every worker runs each minute for its queue and a serverless stage's timer for
        the queues its orchestrator sends to: re-send the messages of ``queues``' orphaned tasks
        (:meth:`requeue_orphans`), then expire lapsed approvals of every queue (:meth:`expire_approvals`);
        returns the tasks it re-sent or expired, each logged. Every job runs whatever another's fate; the
        first failure is raised once all are done (a worker logs it, a timer's invocation fails visibly)."""
        jobs: list[Callable[[], Awaitable[list[TaskRecord]]]] = [
            *(partial(self.requeue_orphans, queue) for queue in queues),
            self.expire_approvals,
        ]
        acted: list[TaskRecord] = []
        failures: list[Exception] = []
        for job in jobs:
            try:
                acted += await job()
            except Exception as error:  # noqa: BLE001 -- raised below, once every job has run
                failures.append(error)
        for record in acted:
            if record.state is TaskState.QUEUED:
                log.warning("task %s was queued with no message: sent it another", record.id)
            else:
                log.warning("task %s: no reviewer decided on its tool call in time: expired", record.id)
        if failures:
            raise failures[0]
        return acted

    async def expire_approvals(self) -> list[TaskRecord]:
        """Expire the parked tasks, of every tenant and queue, whose approval lapsed (up to
        :data:`APPROVAL_EXPIRY_LIMIT`, read as :data:`APPROVAL_EXPIRY_WINDOW` says); returns those expired.

        Each is failed by compare-and-set, so of a decision and the sweeps of several workers racing it one
        wins, and a task expires once. Its callback message goes to the task's own queue, whichever queue the
        sweeping worker consumes."""
        timeout = self._settings.approval_timeout_seconds
        now = time.time()
        window = APPROVAL_EXPIRY_LIMIT
        while True:
            parked = await self.store.awaiting_approval(window)
            lapsed = [record for record in parked if approval_lapsed(record, timeout, now)]
            # What lies behind the read was created after its last task: if that was within the timeout,
            # nothing behind it can have lapsed.
            more = len(parked) == window and parked[-1].created_at <= now - timeout
            if len(lapsed) >= APPROVAL_EXPIRY_LIMIT or not more or window >= APPROVAL_EXPIRY_WINDOW:
                break
            window = min(2 * window, APPROVAL_EXPIRY_WINDOW)
        outcomes = [await self._expire(record) for record in lapsed[:APPROVAL_EXPIRY_LIMIT]]
        return [record for record in outcomes if record is not None]

    async def _expire(self, parked: TaskRecord) -> TaskRecord | None:
        """Fail ``parked``'s task with ``approval_expired`` if its approval has lapsed, audited as the
        system's decision; the record expired, or ``None`` (not lapsed, or a decision or another sweep got
        there first).

        The message that delivers its callback is sent before the write, due a lease later, when the write
        has long landed: a sweep that dies, or a bus that fails, between the two leaves the task parked for
        the next sweep, never failed with no message to post its callback (no reviewer retries a sweep). A
        message finding the task still parked (the write lost or failed) is completed unused; one finding
        it queued (a decision won) is one more message of a task a worker's claim runs once."""
        timeout = self._settings.approval_timeout_seconds
        if not approval_lapsed(parked, timeout, time.time()):
            return None
        if parked.callback_url is not None:
            due = replace(
                task_message(parked),
                # Its own id: a bus that deduplicates keeps the next sweep's after this one's write failed.
                message_id=f"{parked.id}.expiry-{uuid.uuid4().hex[:12]}",
                delay_seconds=self._settings.task_lease_seconds,
            )
            await self.bus.send(parked.queue, due)
        lapsed = False

        def expire(record: TaskRecord) -> TaskRecord:
            nonlocal lapsed
            now = time.time()
            lapsed = approval_lapsed(record, timeout, now)
            if not lapsed:
                raise Unchanged
            return expired(record, timeout, now)

        record = await update(self.store, parked.id, expire, now=time.time())
        if not lapsed:
            return None
        audit_review(record)
        return record

    async def awaiting_review(self, caller: Caller, limit: int = 50) -> list[TaskRecord]:
        """The tasks parked for a decision that ``caller`` may review, oldest first: the reviewers' queue
        (reviewer role only; a reviewer outside the platform's tenant sees its own tenant's).

        The store reads the reviewer's own tenant's queue, not every tenant's to filter here: otherwise a
        reviewer with nothing to review would load every other tenant's parked records (checkpoints, tool
        arguments and all), and any caller could make it so by parking tasks in another tenant. Either
        queue is read ``limit`` tasks long, once."""
        role = self._settings.reviewer_role
        if role not in caller.roles:
            raise Forbidden(f"the review queue needs the '{role}' role")
        # Who reviews for every tenant, as Caller.acts_as decides it.
        everyone = caller.tenant == self._settings.platform_tenant
        parked = await self.store.awaiting_approval(limit, tenant=None if everyone else caller.tenant)
        # The access decision stays here, whatever a store returns.
        return [self._shown(record, caller) for record in parked if self._reviews(caller, record)]

    async def wait(self, task_ids: Sequence[str], deadline: float) -> list[TaskRecord]:
        """The records of ``task_ids`` (in that order) once all are finished, or as they are at
        ``deadline`` (on the event loop's clock, ``asyncio.get_running_loop().time()``, like a run's
        deadline). No access check: for the orchestrator, which waits on the children it submitted."""
        loop = asyncio.get_running_loop()
        pause = WAIT_FIRST_POLL_SECONDS
        while True:
            records = await asyncio.gather(*(self.store.get(task_id) for task_id in task_ids))
            missing = [task_id for task_id, record in zip(task_ids, records, strict=True) if record is None]
            if missing:
                raise TaskNotFound(f"no task '{missing[0]}'", field="task_ids")
            found = [record for record in records if record is not None]
            remaining = deadline - loop.time()
            if all(record.state.finished for record in found) or remaining <= 0:
                return found
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * WAIT_POLL_GROWTH, WAIT_MAX_POLL_SECONDS)

    async def close(self) -> None:
        await asyncio.gather(self.store.close(), self.bus.close())

    # -- helpers -------------------------------------------------------------------------------------

    def _may_read(self, record: TaskRecord, caller: Caller) -> bool:
        same_tenant = record.tenant is not None and record.tenant == caller.tenant
        return _created_by(record, caller) or same_tenant or self._reviews(caller, record)

    def _reviews(self, caller: Caller, record: TaskRecord) -> bool:
        """Whether ``caller`` is a reviewer for the tenant of ``record``."""
        return caller.acts_as(self._settings.reviewer_role, tenant_of(record), self._settings.platform_tenant)

    def _shown(self, record: TaskRecord, caller: Caller) -> TaskRecord:
        """``record`` as ``caller`` reads it: a reviewer of its tenant who did not create it is shown the real
        arguments of the parked call, so what is approved is what runs; everyone else the stored redacted
        copy (the creator included: the redacted copy is what callbacks and logs carry too)."""
        approval = record.approval
        if approval is None or _created_by(record, caller) or not self._reviews(caller, record):
            return record
        arguments = _parked_arguments(record)
        if arguments is None:
            return record
        return record.model_copy(update={"approval": approval.model_copy(update={"arguments": arguments})})

    async def _managed(self, task_id: str, caller: Caller) -> TaskRecord:
        """The task, if ``caller`` may change it (its creator or a reviewer)."""
        record = await self.get(task_id, caller)
        if not _created_by(record, caller) and self._settings.reviewer_role not in caller.roles:
            raise Forbidden("only the task's creator or a reviewer may cancel it")
        return record

    async def _send_new(self, record: TaskRecord) -> None:
        """Send a queued task's message. Without an idempotency key nobody could retry into the record,
        so a failed send fails the task rather than leaving it queued with no message."""
        try:
            await self.bus.send(record.queue, task_message(record))
        except BusError as error:
            if record.idempotency_key is None:
                message = f"the task could not be queued: {error.message}"
                await update(
                    self.store,
                    record.id,
                    lambda current: failed(current, "bus_unavailable", message, time.time()),
                    now=time.time(),
                )
                raise
            raise BusError(
                f"{error.message}; the task is recorded: retry with the same Idempotency-Key"
            ) from error

    async def _send_for_callback(self, record: TaskRecord) -> None:
        """A task finished outside a worker (rejected, cancelled) still owes its callback: a message makes
        a worker deliver it, the same way as for every other task."""
        if record.callback_url is not None:
            await self.bus.send(record.queue, task_message(record))


def _callback_owed(record: TaskRecord) -> bool:
    """The task has a callback that no worker has claimed yet."""
    return record.callback_url is not None and record.callback is None


def cancelled(record: TaskRecord, reason: str, now: float) -> TaskRecord:
    return record.model_copy(
        update={
            "state": TaskState.CANCELLED,
            "finished_at": now,
            "lease_until": None,
            "checkpoint": None,
            "error": {"code": "cancelled", "message": reason},
        }
    )


def failed(record: TaskRecord, code: str, message: str, now: float) -> TaskRecord:
    return record.model_copy(
        update={
            "state": TaskState.FAILED,
            "finished_at": now,
            "lease_until": None,
            "error": {"code": code, "message": message},
        }
    )


def expired(record: TaskRecord, timeout: float, now: float) -> TaskRecord:
    """``record``, whose approval lapsed undecided after ``timeout`` seconds, failed with
    ``approval_expired``: the approval reads as the system's decision (``expired``, no reviewer, decided
    when it lapsed) and the parked run's checkpoint is dropped, as on a rejection."""
    approval = record.approval
    assert approval is not None
    lapsed_at = approval.requested_at + timeout
    reason = (
        f"no reviewer decided on the call of tool '{approval.tool}' within {timeout:g} seconds "
        f"({env_name('approval_timeout_seconds')}): its approval expired at {_utc(lapsed_at)}"
    )
    return failed(record, APPROVAL_EXPIRED, reason, now).model_copy(
        update={
            "approval": approval.model_copy(update={"decision": EXPIRED, "decided_at": lapsed_at}),
            "checkpoint": None,
        }
    )


def audit_review(record: TaskRecord, reviewer: Caller | None = None) -> None:
    """One audit record per review event of ``record``'s parked call: ``tool_approval_requested`` when
    the run parks (operators alert reviewers on it), ``tool_approval`` with the decision and reviewer.
    An expiry is a decision the system made: ``tool_approval`` with decision ``expired``, no reviewer and
    ``decided_by: "system"``, so no person's id is ever put on it."""
    approval = record.approval
    assert approval is not None
    entry: dict[str, Any] = {
        "event": "tool_approval" if approval.decision else "tool_approval_requested",
        "task": record.id,
        "agent": record.agent,
        "requester": record.caller,
        "tool": approval.tool,
        "call_id": approval.call_id,
        # Of the call's real argument text, as its tool_call record has it (not of the redacted copy, which
        # two different calls may share).
        "args_sha256": approval.args_sha256,
    }
    if reviewer is not None:
        entry |= {"reviewer": reviewer.id, "decision": approval.decision}
    elif approval.decision:
        entry |= {"reviewer": None, "decided_by": "system", "decision": approval.decision}
    audit.audit_log.info(json.dumps(entry))


def _undecidable(record: TaskRecord) -> TaskStateConflict:
    """The refusal of a decision on ``record``, which waits for none; one whose approval expired says when."""
    approval = record.approval
    if approval is not None and approval.decision == EXPIRED and approval.decided_at is not None:
        message = (
            f"task '{record.id}' can no longer be decided: its approval expired at "
            f"{_utc(approval.decided_at)}, undecided for {env_name('approval_timeout_seconds')}, and the "
            f"task has failed ({APPROVAL_EXPIRED})"
        )
    else:
        message = f"task '{record.id}' is {record.state.value}, not awaiting_approval"
    return TaskStateConflict(message, field="task_id")


def _utc(at: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time, as error messages show it."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def _already_decided(record: TaskRecord, reviewer: Caller, decision: str) -> bool:
    """Whether ``record`` shows ``reviewer``'s ``decision`` and has not moved on since (not yet resumed)."""
    approval = record.approval
    after = TaskState.QUEUED if decision == "approved" else TaskState.FAILED
    return (
        record.state is after
        and approval is not None
        and (approval.decision, approval.reviewer) == (decision, reviewer.id)
    )


def _parked_arguments(record: TaskRecord) -> dict[str, Any] | None:
    """The real arguments of ``record``'s parked call, from the checkpoint that holds it until the run
    resumes past it (``None`` once it is gone, or for a call parked before its digest was recorded)."""
    approval = record.approval
    if approval is None or approval.args_sha256 is None or record.checkpoint is None:
        return None
    key = approval_key(approval.call_id, approval.tool, approval.args_sha256)
    try:
        calls = Checkpoint.model_validate(record.checkpoint).pending_calls()
    except ValidationError:  # written by another version: the reviewer reads the redacted copy meanwhile
        return None
    call = next((call for call in calls if approval_key_of(call) == key), None)
    return shown_arguments(call.arguments) if call is not None else None


def _created_by(record: TaskRecord, caller: Caller) -> bool:
    """Whether ``caller`` submitted the task: the same caller id *in the same tenant*."""
    return record.caller == caller.id and (record.tenant or DEFAULT_TENANT) == caller.tenant
