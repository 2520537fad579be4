"""Azure Storage Queues: the cheapest Azure bus, reached with the managed identity.

Storage Queues have no dead-letter queue and no long polling, so this adapter adds both the way the Azure
Functions queue trigger does: a message dequeued more than ``max_delivery_count`` times is moved to
``<queue>-poison``, and an empty receive polls again after a pause that grows to one second (each poll
is a billed transaction). A message is base64 text of a JSON envelope carrying the body, the headers and
the message id; a dead-lettered copy adds the reason. Base64 JSON objects written by another service (Event
Grid's blob events) are delivered as they are, with the queue's message id and no headers, as the SQS
adapter delivers any JSON object body. A message that is neither (plain text, a JSON array) is moved to
the poison queue, instead of failing every receive.

The lease is the service's pop receipt, which changes whenever the message is received or updated, so a
stale holder's ``complete`` is refused by the service itself.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

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
from .common import check_headers, decode_object, encode_json, long_poll, new_message_id

POISON_SUFFIX = "-poison"
MAX_PEEK = 32  # the service returns at most 32 messages per peek or receive
MAX_POLL_SECONDS = 1.0
# A message being moved to the poison queue is hidden this long while it is copied, then deleted.
_MOVE_SECONDS = 30
_STALE_LEASE_CODES = {"MessageNotFound", "PopReceiptMismatch"}


@dataclasses.dataclass(frozen=True)
class _Receipt:
    id: str  # the service's id of the message, not the envelope's message id
    pop_receipt: str


class StorageQueueBus:
    """Queues of one storage account.

    ``service`` carries the endpoint, the credential and the retry policy; :meth:`from_account_url`
    (managed identity, the cloud) and :meth:`from_connection_string` (Azurite) build one. Queues, poison
    queues included, are created by infrastructure; ``create_queues`` creates them on first use instead
    (the emulator). ``credential`` is closed with the bus.
    """

    name = "storage_queue"

    def __init__(
        self,
        service: QueueServiceClient,
        *,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        create_queues: bool = False,
        credential: Any = None,
    ) -> None:
        if max_delivery_count < 1:
            raise ValueError("max_delivery_count must be at least 1")
        self._service = service
        self._max_delivery_count = max_delivery_count
        self._create_queues = create_queues
        self._credential = credential
        self._queues: dict[str, QueueClient] = {}

    @classmethod
    def from_account_url(
        cls, account_url: str, credential: Any, *, max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT
    ) -> StorageQueueBus:
        """The cloud: ``https://<account>.queue.core.windows.net`` and an Entra ID token credential."""
        service = QueueServiceClient(account_url, credential=credential)
        return cls(service, max_delivery_count=max_delivery_count, credential=credential)

    @classmethod
    def from_connection_string(
        cls,
        connection_string: str,
        *,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        create_queues: bool = True,
        **client_options: Any,
    ) -> StorageQueueBus:
        """The emulator (Azurite): a shared-key connection string; ``client_options`` go to the SDK client
        (``retry_total=0`` in tests that expect failures)."""
        service = QueueServiceClient.from_connection_string(connection_string, **client_options)
        return cls(service, max_delivery_count=max_delivery_count, create_queues=create_queues)

    async def send(self, queue: str, message: OutgoingMessage) -> str:
        message_id = message.message_id or new_message_id()
        envelope = {
            "message_id": message_id,
            "body": dict(message.body),
            "headers": check_headers(message.headers),
        }
        content = _encode(envelope)
        client = await self._queue(queue)
        async with self._errors(queue, "send to"):
            await client.send_message(
                content, visibility_timeout=_seconds(message.delay_seconds), time_to_live=-1
            )  # -1: never expires; a task must not vanish after the default seven days
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
        client = await self._queue(queue)
        visibility = max(1, _seconds(visibility_seconds))

        async def attempt() -> list[ReceivedMessage]:
            leased: list[ReceivedMessage] = []
            async with self._errors(queue, "receive from"):
                pages = client.receive_messages(
                    max_messages=max_messages,
                    messages_per_page=min(max_messages, MAX_PEEK),
                    visibility_timeout=visibility,
                )
                async for raw in pages:
                    received = await self._accept(queue, raw)
                    if received is not None:
                        leased.append(received)
            return leased

        return await long_poll(attempt, wait_seconds, max_pause=MAX_POLL_SECONDS)

    async def _accept(self, queue: str, raw: QueueMessage) -> ReceivedMessage | None:
        """The received message, or None once a message that must not be delivered is in the poison queue."""
        receipt = _Receipt(raw.id, raw.pop_receipt or "")
        delivered = raw.dequeue_count - 1  # the deliveries before this receive, which will not deliver it
        try:
            envelope = _decode(raw.content, raw.id)
        except ValueError as exc:
            envelope = {"message_id": raw.id, "body": {"raw": str(raw.content)}, "headers": {}}
            await self._move_to_poison(queue, receipt, envelope, f"invalid_envelope: {exc}", delivered)
            return None
        if raw.dequeue_count > self._max_delivery_count:
            await self._move_to_poison(queue, receipt, envelope, MAX_DELIVERY_COUNT_EXCEEDED, delivered)
            return None
        return ReceivedMessage(
            queue=queue,
            message_id=envelope["message_id"],
            body=envelope["body"],
            headers=envelope["headers"],
            delivery_count=raw.dequeue_count,
            enqueued_at=raw.inserted_on.timestamp() if raw.inserted_on else 0.0,
            lease=receipt,
            max_delivery_count=self._max_delivery_count,
        )

    async def complete(self, message: ReceivedMessage) -> None:
        receipt = _receipt(message)
        client = await self._queue(message.queue)
        async with self._errors(message.queue, "complete a message of", message):
            await client.delete_message(receipt.id, receipt.pop_receipt)

    async def release(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        await self._update(message, _seconds(delay_seconds))

    async def renew(self, message: ReceivedMessage, *, visibility_seconds: float) -> ReceivedMessage:
        receipt = await self._update(message, max(1, _seconds(visibility_seconds)))
        return dataclasses.replace(message, lease=receipt)

    async def dead_letter(self, message: ReceivedMessage, *, reason: str) -> None:
        # Prove the lease first (its pop receipt is replaced), so a stale holder copies nothing.
        receipt = await self._update(message, _MOVE_SECONDS)
        envelope = {
            "message_id": message.message_id,
            "body": dict(message.body),
            "headers": dict(message.headers),
        }
        await self._move_to_poison(message.queue, receipt, envelope, reason, message.delivery_count)

    async def dead_letters(self, queue: str, *, max_messages: int = 100) -> list[DeadLetter]:
        """Peek at ``<queue>-poison``: at most 32 messages, the service's limit of one peek."""
        client = await self._queue(queue + POISON_SUFFIX)
        async with self._errors(queue + POISON_SUFFIX, "peek at"):
            try:
                peeked = await client.peek_messages(max_messages=min(max_messages, MAX_PEEK))
            except ResourceNotFoundError:
                return []
        letters = []
        for raw in peeked:
            try:
                envelope = _decode(raw.content, raw.id)
            except ValueError as exc:  # put there by something else (an Azure Functions trigger, a person)
                envelope = {"message_id": raw.id, "body": {"raw": str(raw.content)}, "headers": {}}
                envelope["reason"] = f"invalid_envelope: {exc}"
            letters.append(
                DeadLetter(
                    queue=queue,
                    message_id=envelope["message_id"],
                    body=envelope["body"],
                    headers=envelope["headers"],
                    reason=str(envelope.get("reason", "unknown")),
                    delivery_count=int(envelope.get("delivery_count", raw.dequeue_count)),
                )
            )
        return letters

    async def close(self) -> None:
        for client in self._queues.values():
            await client.close()
        self._queues.clear()
        await self._service.close()
        if self._credential is not None and hasattr(self._credential, "close"):
            await self._credential.close()

    async def _update(self, message: ReceivedMessage, visibility: int) -> _Receipt:
        receipt = _receipt(message)
        client = await self._queue(message.queue)
        async with self._errors(message.queue, "update a message of", message):
            updated = await client.update_message(
                receipt.id, receipt.pop_receipt, visibility_timeout=visibility
            )
        return _Receipt(receipt.id, updated.pop_receipt or "")

    async def _move_to_poison(
        self, queue: str, receipt: _Receipt, envelope: dict[str, Any], reason: str, delivery_count: int
    ) -> None:
        """Copy to ``<queue>-poison`` with the reason, then delete: a crash in between leaves a duplicate in
        the poison queue (and the message is received again), never a lost message."""
        poison = await self._queue(queue + POISON_SUFFIX)
        content = _encode(envelope | {"reason": reason, "delivery_count": delivery_count})
        async with self._errors(queue + POISON_SUFFIX, "send to"):
            await poison.send_message(content, time_to_live=-1)
        client = await self._queue(queue)
        async with self._errors(queue, "delete a dead-lettered message of"):
            await client.delete_message(receipt.id, receipt.pop_receipt)

    async def _queue(self, name: str) -> QueueClient:
        client = self._queues.get(name)
        if client is None:
            client = self._service.get_queue_client(name)
            if self._create_queues:
                async with self._errors(name, "create"):
                    try:
                        await client.create_queue()
                    except ResourceExistsError:
                        pass
            self._queues[name] = client
        return client

    @asynccontextmanager
    async def _errors(
        self, queue: str, action: str, message: ReceivedMessage | None = None
    ) -> AsyncIterator[None]:
        """Translate the SDK's exceptions into the bus's, with what failed and what to do about it."""
        where = f"queue '{queue}' of {self._service.url}"
        try:
            yield
        except HttpResponseError as exc:
            code = str(getattr(exc.error_code, "value", exc.error_code) or "")
            if message is not None and code in _STALE_LEASE_CODES:
                raise LeaseLost(
                    f"message {message.message_id} of queue '{queue}' is no longer leased by this receiver "
                    f"({code}: it was received again after its lease expired, or settled)"
                ) from exc
            if code == "QueueNotFound":
                raise BusError(
                    f"{where} does not exist; infrastructure creates it (and '{queue}-poison')"
                ) from exc
            if isinstance(exc, ClientAuthenticationError) or exc.status_code == 403:
                raise BusError(
                    f"not allowed to {action} {where}: the identity needs the 'Storage Queue Data Message "
                    f"Processor' and 'Sender' roles ({code or exc.status_code})"
                ) from exc
            raise BusError(
                f"could not {action} {where}: {code or exc.status_code} {_first_line(exc)}"
            ) from exc
        except ServiceRequestError as exc:
            raise BusError(f"cannot reach Storage Queues at {self._service.url}: {_first_line(exc)}") from exc
        except AzureError as exc:
            raise BusError(f"could not {action} {where}: {_first_line(exc)}") from exc


def _receipt(message: ReceivedMessage) -> _Receipt:
    if not isinstance(message.lease, _Receipt):
        raise TypeError("this message was not received from a StorageQueueBus")
    return message.lease


def _seconds(value: float) -> int:
    """Whole seconds, rounded up: the service takes integers, and a lease must never be shorter than asked."""
    return max(0, math.ceil(value))


def _encode(envelope: dict[str, Any]) -> str:
    return base64.b64encode(encode_json(envelope).encode()).decode("ascii")


def _decode(content: object, queue_message_id: str) -> dict[str, Any]:
    """The envelope of a message's content (a foreign JSON object wrapped in one); ValueError says what is
    wrong with it."""
    try:
        decoded = decode_object(base64.b64decode(str(content), validate=True))
    except binascii.Error as exc:
        raise ValueError(f"not base64 ({exc})") from exc
    if (
        isinstance(decoded.get("message_id"), str)
        and isinstance(decoded.get("body"), dict)
        and isinstance(decoded.get("headers"), dict)
    ):
        return decoded
    return {"message_id": queue_message_id, "body": decoded, "headers": {}}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
