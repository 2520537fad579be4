"""Task messages pushed by a serverless platform: the Functions Service Bus trigger, Lambda's SQS source.

On these hosts the platform, not the worker, leases and settles each message: it completes (deletes) the
message when the invocation returns and redelivers it when the invocation raises, until the queue's
``maxDeliveryCount`` / ``maxReceiveCount`` moves it to the dead-letter queue. The worker's own settlement
calls are mapped onto that contract by :class:`PlatformSettledBus`:

- ``complete`` and ``renew`` do nothing (the platform completes on return and renews the lock itself);
- ``release`` raises :class:`Redeliver`: the task is owned by a live worker, so this delivery fails and
  the platform delivers the message again later;
- ``dead_letter`` raises :class:`PoisonMessage`: the Python trigger cannot dead-letter a message
  explicitly, so a poison message fails every delivery and lands in the dead-letter queue once the
  delivery count is spent — kept for an operator, never silently dropped;
- any other exception (the bus, the store or the runtime failing) fails the delivery the same way.

A task whose run fails (model error, budget, ...) is not a failed delivery: the worker records the failure
on the task and the message is completed.

No worker loop runs on these hosts, so nothing there sweeps a queue every minute as each worker does
(:mod:`agent_runtime.tasks.worker`): the platform calls :meth:`PushedTasks.sweep` on a timer instead (a
Functions timer trigger, an EventBridge schedule of the Lambda function), on the runtime that delegates
(:func:`swept_queues`) only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from agent_runtime.bus.base import (
    DEFAULT_VISIBILITY_SECONDS,
    DeadLetter,
    MessageBus,
    OutgoingMessage,
    ReceivedMessage,
)
from agent_runtime.services import Lifecycle
from agent_runtime.settings import Settings
from agent_runtime.tasks.model import TaskRecord
from agent_runtime.tasks.service import TaskService, worker_queue
from agent_runtime.tasks.worker import Worker

SWEEP_EVENT = {"agentstage": "sweep"}
"""The constant event an EventBridge schedule invokes a Lambda task consumer with, every minute, for one
:meth:`PushedTasks.sweep` (blueprints/aws_foundation.py builds the schedule with the same event)."""


def swept_queues(settings: Settings) -> list[str]:
    """The task queues a serverless host of this runtime sweeps: its own and every queue it delegates to
    (``agent_queues``), when it delegates; none otherwise.

    Tasks are written, and their messages sent, where they are submitted: the API, which the orchestrator
    serves, and the orchestrator's delegation, so its sweep covers every queue a lost message can leave a
    task on. One timer per stage, not one per agent: a timer is a Flex Consumption scaling group of its own
    (two always-ready instances on a zone-redundant plan), and a schedule that woke every agent's function
    each minute would keep a function that holds a database connection warm, and its database awake."""
    delegates = json.loads(settings.agent_queues or "{}")
    return list(dict.fromkeys([worker_queue(settings), *delegates.values()])) if delegates else []


class Redeliver(Exception):
    """The message must come back later (its task is running elsewhere); the platform redelivers it."""


class PoisonMessage(Exception):
    """The message can never be processed; failing every delivery sends it to the dead-letter queue."""


class PlatformSettledBus:
    """The process's bus for sending, with settlement left to the platform that pushed the message."""

    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus
        self.name = bus.name

    async def send(self, queue: str, message: OutgoingMessage) -> str:
        return await self._bus.send(queue, message)

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        wait_seconds: float = 5.0,
        visibility_seconds: float = DEFAULT_VISIBILITY_SECONDS,
    ) -> list[ReceivedMessage]:
        raise TypeError("a platform-triggered host is pushed its messages; it never receives")

    async def complete(self, message: ReceivedMessage) -> None:
        """The platform completes the message when the invocation returns."""

    async def release(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        raise Redeliver(
            f"message {message.message_id}: its task is running elsewhere; deliver it again later"
        )

    async def renew(self, message: ReceivedMessage, *, visibility_seconds: float) -> ReceivedMessage:
        """The platform renews the lock while the invocation runs (host.json maxAutoLockRenewalDuration)."""
        return message

    async def dead_letter(self, message: ReceivedMessage, *, reason: str) -> None:
        raise PoisonMessage(f"message {message.message_id}: {reason}")

    async def dead_letters(self, queue: str, *, max_messages: int = 100) -> list[DeadLetter]:
        return await self._bus.dead_letters(queue, max_messages=max_messages)

    async def close(self) -> None:
        """The wrapped bus belongs to the process's task service, which closes it."""


class PushedTasks:
    """Runs pushed task messages with the API's opened services; one per process, built at import."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
        self._worker: Worker | None = None
        self._lock = asyncio.Lock()

    async def handle(self, message: ReceivedMessage) -> None:
        """Run the message's task to an outcome, or raise so the platform delivers the message again."""
        worker = await self._get_worker()
        await worker.handle(message)

    async def sweep(self) -> list[TaskRecord]:
        """One sweep (:meth:`TaskService.sweep`) of the queues :func:`swept_queues` names, as each worker
        sweeps its own every ``SWEEP_SECONDS``: tasks queued with no message are sent one, lapsed approvals
        expire; returns those tasks. A failing store or bus raises: the invocation fails, visibly, and the
        next tick sweeps again."""
        services = await self._lifecycle.get()
        tasks = await services.tasks.get()  # sends on the process's own bus, not the platform-settled one
        return await tasks.sweep(swept_queues(services.settings))

    async def _get_worker(self) -> Worker:
        if self._worker is None:
            async with self._lock:
                if self._worker is None:
                    services = await self._lifecycle.get()
                    tasks = await services.tasks.get()
                    settled = TaskService(
                        tasks.store, PlatformSettledBus(tasks.bus), services.settings, services.catalog
                    )
                    self._worker = Worker(services.runner, services.catalog, settled, services.settings)
        return self._worker


async def handle_all(
    messages: Sequence[ReceivedMessage], handle: Callable[[ReceivedMessage], Awaitable[object]]
) -> list[Exception | None]:
    """Each message's failure (``None`` when handled), in order; they run concurrently."""
    outcomes: list[Any] = await asyncio.gather(*(handle(m) for m in messages), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome  # cancellation, KeyboardInterrupt: not a failed delivery
    return [outcome if isinstance(outcome, Exception) else None for outcome in outcomes]
