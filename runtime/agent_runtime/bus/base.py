"""The message bus contract every queue adapter implements.

Tasks travel between the API, the orchestrator and the agents' workers as messages on named queues. The
contract is the intersection of what Azure Service Bus, Azure Storage Queues, AWS SQS and the embedded
SQLite queue all guarantee, so a worker written against it runs unchanged on each:

- at-least-once delivery: a received message stays invisible to other receivers for a visibility timeout
  (a *lease*); unless it is completed in time it is delivered again, with ``delivery_count`` incremented;
- a message delivered more than ``max_delivery_count`` times, or explicitly dead-lettered, lands in the
  queue's dead-letter queue with the reason, never silently dropped. The receive that moves it there returns
  nothing (on SQS and Service Bus the service itself may move it), so every delivery says how many the
  queue allows (``max_delivery_count``): a receiver acts on the last one it will see;
- headers travel with the body (the W3C ``traceparent`` among them), so one trace spans every hop.

Workers must therefore be idempotent per message: the task id, not the delivery, is the unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agent_runtime.errors import Unavailable

DEFAULT_VISIBILITY_SECONDS = 60.0
DEFAULT_MAX_DELIVERY_COUNT = 5
MAX_DELIVERY_COUNT_EXCEEDED = "max_delivery_count_exceeded"
"""The dead-letter reason of a message delivered ``max_delivery_count`` times without being completed."""


class BusError(Unavailable):
    """The bus could not be reached or refused an operation (after the adapter's own retries): 503."""

    code = "bus_unavailable"


class LeaseLost(BusError):
    """The message's lease expired or was taken by another receiver: its completion would be ignored."""

    code = "lease_lost"


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to send: a JSON object body plus string headers (``traceparent``, ``task_id``, ...).

    Keep headers few: SQS carries at most ten attributes per message and its adapter needs two, so at
    most eight headers travel everywhere. Storage Queues limit a whole message to 64 KiB, Service Bus
    Standard to 256 KiB: large inputs belong in storage, referenced from the body.
    """

    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None  # adapters that support it deduplicate on it (Service Bus, SQS FIFO)
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class ReceivedMessage:
    """A leased message. ``lease`` is the adapter's handle (lock token, receipt handle, pop receipt, ...)."""

    queue: str
    message_id: str
    body: Mapping[str, Any]
    headers: Mapping[str, str]
    delivery_count: int  # 1 on the first delivery
    enqueued_at: float  # epoch seconds
    lease: Any = field(repr=False, compare=False)
    max_delivery_count: int | None = None
    """The most deliveries the queue allows: the one whose ``delivery_count`` reaches it is the last any
    receiver sees. ``None`` when the receiver does not know it (a message a platform pushed)."""


@dataclass(frozen=True)
class DeadLetter:
    """A message in a dead-letter queue, with why it is there."""

    queue: str
    message_id: str
    body: Mapping[str, Any]
    headers: Mapping[str, str]
    reason: str
    delivery_count: int


@runtime_checkable
class MessageBus(Protocol):
    """Queues by name. Adapters create nothing in the cloud (infrastructure creates queues); the embedded
    SQLite queue and the emulators create a queue on first use."""

    name: str  # "sqlite", "servicebus", "storage_queue", "sqs": shown in traces and errors

    async def send(self, queue: str, message: OutgoingMessage) -> str:
        """Enqueue ``message``; returns its message id."""
        ...

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        wait_seconds: float = 5.0,
        visibility_seconds: float = DEFAULT_VISIBILITY_SECONDS,
    ) -> list[ReceivedMessage]:
        """Lease up to ``max_messages``, waiting up to ``wait_seconds`` for the first; [] when none came.

        Messages whose delivery count would exceed the queue's ``max_delivery_count`` are moved to the
        dead-letter queue (reason :data:`MAX_DELIVERY_COUNT_EXCEEDED`) instead of being returned.
        Storage Queues and SQS round ``visibility_seconds`` up to whole seconds; Service Bus ignores it
        and uses the queue's lock duration, set by infrastructure.
        """
        ...

    async def complete(self, message: ReceivedMessage) -> None:
        """Remove the message for good.

        Raises :class:`LeaseLost` when its lease is gone: the message was received again by someone else,
        or settled. Adapters whose service cannot tell a stale lease from a live one (SQS) also raise it
        once the lease has expired, rather than risk deleting a message another receiver now holds.
        """
        ...

    async def release(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        """Give the message back for another delivery (after ``delay_seconds``)."""
        ...

    async def renew(self, message: ReceivedMessage, *, visibility_seconds: float) -> ReceivedMessage:
        """Extend the lease of a message still being worked on; returns the message with its new lease."""
        ...

    async def dead_letter(self, message: ReceivedMessage, *, reason: str) -> None:
        """Move the message to the dead-letter queue with ``reason`` (poison input, permanent failure)."""
        ...

    async def dead_letters(self, queue: str, *, max_messages: int = 100) -> list[DeadLetter]:
        """Peek at the dead-letter queue of ``queue`` (operators and tests; nothing is removed)."""
        ...

    async def close(self) -> None: ...
