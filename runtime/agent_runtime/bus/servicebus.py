"""Azure Service Bus queues, reached with the managed identity (never a connection string).

Service Bus does natively what the contract asks: peek-lock leases, a delivery count, a dead-letter
sub-queue with reason and description, lock renewal. The mapping:

- the body is JSON text (content type ``application/json``); headers are application properties;
- a lease lasts the queue's *lock duration*, set by infrastructure: Service Bus has no per-receive lock
  length, so ``visibility_seconds`` of :meth:`receive` is not used; long work calls :meth:`renew`;
- the AMQP header counts *prior* deliveries (0 on the first), so ``delivery_count`` is that plus one;
- the queue's ``MaxDeliveryCount`` dead-letters natively (reason ``MaxDeliveryCountExceeded``, reported as
  ``max_delivery_count_exceeded``); the adapter dead-letters with that reason too when its own
  ``max_delivery_count`` is lower. A message says the adapter's limit as the most deliveries allowed: the
  queue's own is not readable with the data-plane roles the runtime holds, so infrastructure must not set it
  lower (the default of both is 5);
- a release with a delay, which Service Bus's abandon cannot do, schedules a copy (same message id,
  prior deliveries carried in a property) and completes the original.

One receiver link per queue is opened on first use and kept: a lock token can only be settled through the
link that received it. Receives on one queue are serialised within a process (the SDK's receiver is not
meant for concurrent receive calls); scale out with more processes.

Verified against fakes of the SDK's client, sender and receiver only: there is no Service Bus emulator
outside containers here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
)

from .base import (
    DEFAULT_MAX_DELIVERY_COUNT,
    DEFAULT_VISIBILITY_SECONDS,
    MAX_DELIVERY_COUNT_EXCEEDED,
    BusError,
    DeadLetter,
    LeaseLost,
    OutgoingMessage,
    ReceivedMessage,
)
from .common import check_headers, decode_object, encode_json, new_message_id

MIN_WAIT_SECONDS = 0.1  # the SDK waits for ever on max_wait_time=None; an empty receive must return
_PRIOR_DELIVERIES = "agentstage.prior_deliveries"
_NATIVE_REASONS = {"MaxDeliveryCountExceeded": MAX_DELIVERY_COUNT_EXCEEDED}


class ServiceBusBus:
    """Queues of one Service Bus namespace, through ``client`` (an ``azure.servicebus.aio.ServiceBusClient``).

    :meth:`from_namespace` builds the client from the fully qualified namespace and a token credential.
    ``credential`` is closed with the bus.
    """

    name = "servicebus"

    def __init__(
        self, client: Any, *, max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT, credential: Any = None
    ) -> None:
        if max_delivery_count < 1:
            raise ValueError("max_delivery_count must be at least 1")
        self._client = client
        self._max_delivery_count = max_delivery_count
        self._credential = credential
        self._receivers: dict[str, Any] = {}
        self._receive_locks: dict[str, asyncio.Lock] = {}
        self._senders: dict[str, Any] = {}

    @classmethod
    def from_namespace(
        cls, namespace: str, credential: Any, *, max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT
    ) -> ServiceBusBus:
        """``<name>.servicebus.windows.net`` and an Entra ID token credential (the managed identity)."""
        client = ServiceBusClient(namespace, credential)
        return cls(client, max_delivery_count=max_delivery_count, credential=credential)

    async def send(self, queue: str, message: OutgoingMessage) -> str:
        message_id = message.message_id or new_message_id()
        outgoing = _outgoing(encode_json(message.body), check_headers(message.headers), message_id)
        if message.delay_seconds > 0:
            outgoing.scheduled_enqueue_time_utc = _utc_in(message.delay_seconds)
        async with self._errors(queue, "send to"):
            await self._sender(queue).send_messages(outgoing)
        return message_id

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        wait_seconds: float = 5.0,
        visibility_seconds: float = DEFAULT_VISIBILITY_SECONDS,
    ) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        receiver = self._receiver(queue)
        lock = self._receive_locks.setdefault(queue, asyncio.Lock())
        async with lock, self._errors(queue, "receive from"):
            raws = await receiver.receive_messages(
                max_message_count=max_messages, max_wait_time=max(wait_seconds, MIN_WAIT_SECONDS)
            )
        leased = []
        for raw in raws:
            try:
                received = _received(queue, raw, _body(raw))
            except ValueError as exc:  # sent by something else: dead-letter it rather than fail every receive
                received = _received(queue, raw, {})
                await self.dead_letter(received, reason=f"invalid_body: {exc}")
                continue
            if received.delivery_count > self._max_delivery_count:
                await self.dead_letter(received, reason=MAX_DELIVERY_COUNT_EXCEEDED)
            else:
                leased.append(dataclasses.replace(received, max_delivery_count=self._max_delivery_count))
        return leased

    async def complete(self, message: ReceivedMessage) -> None:
        async with self._errors(message.queue, "complete a message of", message):
            await self._receiver(message.queue).complete_message(message.lease)

    async def release(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        receiver = self._receiver(message.queue)
        if delay_seconds <= 0:
            async with self._errors(message.queue, "release a message of", message):
                await receiver.abandon_message(message.lease)
            return
        # Renew first, proving the lock is still ours, so a stale holder schedules no copy.
        async with self._errors(message.queue, "release a message of", message):
            await receiver.renew_message_lock(message.lease)
        headers = dict(message.headers) | {_PRIOR_DELIVERIES: str(message.delivery_count)}
        copy = _outgoing(encode_json(message.body), headers, message.message_id)
        async with self._errors(message.queue, "schedule the release of a message of"):
            await self._sender(message.queue).schedule_messages(copy, _utc_in(delay_seconds))
        await self.complete(message)

    async def renew(self, message: ReceivedMessage, *, visibility_seconds: float) -> ReceivedMessage:
        """Renew the lock for another lock duration of the queue (``visibility_seconds`` cannot change it)."""
        async with self._errors(message.queue, "renew the lock of a message of", message):
            await self._receiver(message.queue).renew_message_lock(message.lease)
        return message

    async def dead_letter(self, message: ReceivedMessage, *, reason: str) -> None:
        async with self._errors(message.queue, "dead-letter a message of", message):
            await self._receiver(message.queue).dead_letter_message(
                message.lease,
                reason=reason,
                error_description=f"dead-lettered by the agentstage runtime: {reason}",
            )

    async def dead_letters(self, queue: str, *, max_messages: int = 100) -> list[DeadLetter]:
        async with self._errors(queue, "peek at the dead letters of"):
            receiver = self._client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER)
            async with receiver:
                raws = await receiver.peek_messages(max_message_count=max_messages)
        letters = []
        for raw in raws:
            try:
                body = _body(raw)
            except ValueError:
                body = {"raw": _text(b"".join(raw.body)) if _is_data(raw) else str(raw.body)}
            received = _received(queue, raw, body)
            reason = raw.dead_letter_reason or "unknown"
            letters.append(
                DeadLetter(
                    queue=queue,
                    message_id=received.message_id,
                    body=received.body,
                    headers=received.headers,
                    reason=_NATIVE_REASONS.get(reason, reason),
                    delivery_count=received.delivery_count,
                )
            )
        return letters

    async def close(self) -> None:
        handlers = [*self._receivers.values(), *self._senders.values()]
        self._receivers.clear()
        self._senders.clear()
        for handler in handlers:
            await handler.close()
        await self._client.close()
        if self._credential is not None and hasattr(self._credential, "close"):
            await self._credential.close()

    def _receiver(self, queue: str) -> Any:
        receiver = self._receivers.get(queue)
        if receiver is None:
            receiver = self._receivers[queue] = self._client.get_queue_receiver(queue, prefetch_count=0)
        return receiver

    def _sender(self, queue: str) -> Any:
        sender = self._senders.get(queue)
        if sender is None:
            sender = self._senders[queue] = self._client.get_queue_sender(queue)
        return sender

    @asynccontextmanager
    async def _errors(
        self, queue: str, action: str, message: ReceivedMessage | None = None
    ) -> AsyncIterator[None]:
        """Translate the SDK's exceptions into the bus's, with what failed and what to do about it."""
        where = f"Service Bus queue '{queue}'"
        try:
            yield
        except (MessageLockLostError, MessageAlreadySettled) as exc:
            if message is None:
                raise BusError(f"could not {action} {where}: {exc}") from exc
            raise LeaseLost(
                f"message {message.message_id} of {where} is no longer leased by this receiver (its lock "
                f"expired or it was settled): {type(exc).__name__}"
            ) from exc
        except MessagingEntityNotFoundError as exc:
            raise BusError(f"{where} does not exist; infrastructure creates it") from exc
        except (
            ServiceBusAuthenticationError,
            ServiceBusAuthorizationError,
            ClientAuthenticationError,
        ) as exc:
            raise BusError(
                f"not allowed to {action} {where}: the identity needs the 'Azure Service Bus Data Sender' and "
                f"'Receiver' roles ({type(exc).__name__})"
            ) from exc
        except (ServiceBusConnectionError, ServiceBusCommunicationError) as exc:
            raise BusError(f"cannot reach Service Bus to {action} {where}: {exc}") from exc
        except AzureError as exc:
            raise BusError(f"could not {action} {where}: {type(exc).__name__}: {exc}") from exc


def _outgoing(body: str, headers: Mapping[str, str], message_id: str) -> ServiceBusMessage:
    return ServiceBusMessage(
        body,
        application_properties=dict(headers),
        message_id=message_id,
        content_type="application/json",
    )


def _received(queue: str, raw: Any, body: dict[str, Any]) -> ReceivedMessage:
    """The contract's message of an SDK message (received or peeked); the lease is the SDK message."""
    properties = {_text(name): _text(value) for name, value in (raw.application_properties or {}).items()}
    prior = int(properties.pop(_PRIOR_DELIVERIES, "0"))
    headers = {name: value for name, value in properties.items() if not name.startswith("agentstage.")}
    enqueued = raw.enqueued_time_utc
    return ReceivedMessage(
        queue=queue,
        message_id=str(raw.message_id),
        body=body,
        headers=headers,
        delivery_count=prior + (raw.delivery_count or 0) + 1,
        enqueued_at=enqueued.timestamp() if enqueued else 0.0,
        lease=raw,
    )


def _body(raw: Any) -> dict[str, Any]:
    """The JSON object of a message body; ValueError when it is something else."""
    if not _is_data(raw):
        raise ValueError("not a data body (an AMQP value or sequence sent by another client)")
    return decode_object(b"".join(raw.body))


def _is_data(raw: Any) -> bool:
    return bool(raw.body_type == AmqpMessageBodyType.DATA)


def _text(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _utc_in(seconds: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
