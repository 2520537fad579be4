"""AWS SQS (standard queues) through boto3, each call on a thread of the bus's own pool.

The body is the JSON text of the message body; headers travel as string message attributes, so other
AWS consumers see them too. SQS carries at most ten attributes and this adapter may need two for itself,
so a message takes at most eight headers. Queue URLs are resolved by name once and cached.

Dead letters use the queue's ``RedrivePolicy``: SQS itself moves a message received ``maxReceiveCount``
times to the dead-letter queue (this adapter reports it as ``max_delivery_count_exceeded``), and the
adapter moves one delivered more than its own ``max_delivery_count``, or explicitly dead-lettered, by
sending a copy there with the reason in an attribute and deleting the original. SQS moves a message on a
receive that returns nothing, so a delivery says the lower of the two limits as the most allowed (the
policy is read once per queue), and its receiver knows the last delivery it will see.

SQS accepts a stale receipt handle's delete (and may act on it), so the adapter keeps each lease's
deadline itself and refuses to settle a message whose lease has expired: :class:`LeaseLost`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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
from .common import check_headers, decode_object, encode_json

T = TypeVar("T")

MAX_HEADERS = 8
MAX_BATCH = 10  # SQS returns at most ten messages per receive
MAX_WAIT_SECONDS = 20  # SQS's longest long poll
DLQ_SUFFIX = "-dlq"  # the dead-letter queue's name when the adapter creates queues (the emulator)
_MESSAGE_ID = "agentstage.message_id"
_DEAD_LETTER = "agentstage.dead_letter"  # JSON: reason, message id and delivery count of a dead-lettered copy
_PEEK_HIDE_SECONDS = 30  # dead letters seen by a peek are hidden while it collects the rest, then shown again
_NON_EXISTENT = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


@dataclasses.dataclass(frozen=True)
class _Lease:
    receipt_handle: str
    expires: float  # time.monotonic() when the lease ends, counted from before the request (never late)


class SqsBus:
    """Queues of one AWS account and region, through ``client`` (a boto3 SQS client).

    Queues and their dead-letter queues are created by infrastructure; ``create_queues`` creates a queue
    and ``<queue>-dlq`` on first use instead, with a redrive policy of ``max_delivery_count`` (moto).
    ``max_workers`` bounds the calls in flight, long polls included.
    """

    name = "sqs"

    def __init__(
        self,
        client: Any,
        *,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        create_queues: bool = False,
        max_workers: int = 16,
    ) -> None:
        if max_delivery_count < 1:
            raise ValueError("max_delivery_count must be at least 1")
        self._client = client
        self._max_delivery_count = max_delivery_count
        self._create_queues = create_queues
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="agentstage-sqs")
        self._urls: dict[str, str] = {}
        self._dead_letter_urls: dict[str, tuple[str, int]] = {}
        self._limits: dict[str, int] = {}
        self._closed = False

    @classmethod
    def connect(
        cls,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        create_queues: bool = False,
        max_workers: int = 16,
    ) -> SqsBus:
        """A client from the environment's AWS credentials (the Lambda or pod role); ``endpoint_url`` for moto."""
        config = Config(
            max_pool_connections=max_workers,
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=MAX_WAIT_SECONDS + 10,  # longer than the longest long poll
        )
        client = boto3.client("sqs", region_name=region, endpoint_url=endpoint_url, config=config)
        return cls(
            client,
            max_delivery_count=max_delivery_count,
            create_queues=create_queues,
            max_workers=max_workers,
        )

    async def send(self, queue: str, message: OutgoingMessage) -> str:
        headers = check_headers(message.headers)
        if len(headers) > MAX_HEADERS:
            raise ValueError(f"SQS carries at most {MAX_HEADERS} headers per message, not {len(headers)}")
        reserved = [name for name in headers if name.startswith("agentstage.")]
        if reserved:
            raise ValueError(
                f"header names starting with 'agentstage.' are the adapter's: {', '.join(reserved)}"
            )
        attributes = _attributes(headers)
        if message.message_id:
            attributes[_MESSAGE_ID] = _string(message.message_id)
        body = encode_json(message.body)
        delay = min(900, math.ceil(max(message.delay_seconds, 0.0)))
        url = await self._url(queue)
        sent = await self._call(
            queue, "send to", self._client.send_message,
            QueueUrl=url, MessageBody=body, MessageAttributes=attributes, DelaySeconds=delay,
        )  # fmt: skip
        return message.message_id or sent["MessageId"]

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
        url = await self._url(queue)
        limit = await self._limit(queue, url)
        visibility = min(43_200, max(1, math.ceil(visibility_seconds)))
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        while True:
            started = time.monotonic()
            answer = await self._call(
                queue, "receive from", self._client.receive_message,
                QueueUrl=url,
                MaxNumberOfMessages=min(max_messages, MAX_BATCH),
                WaitTimeSeconds=min(MAX_WAIT_SECONDS, round(max(deadline - started, 0.0))),
                VisibilityTimeout=visibility,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                MessageAttributeNames=["All"],
            )  # fmt: skip
            leased = []
            for raw in answer.get("Messages", []):
                received = await self._accept(queue, raw, _Lease(raw["ReceiptHandle"], started + visibility))
                if received is not None:
                    leased.append(dataclasses.replace(received, max_delivery_count=limit))
            # Under half a second left: a long poll (whole seconds) would round to nothing or overshoot.
            if leased or time.monotonic() >= deadline - 0.5:
                return leased

    async def _accept(self, queue: str, raw: dict[str, Any], lease: _Lease) -> ReceivedMessage | None:
        """The received message, or None once a message that must not be delivered is dead-lettered."""
        attributes = raw.get("MessageAttributes", {})
        headers = {
            name: value["StringValue"]
            for name, value in attributes.items()
            if not name.startswith("agentstage.")
        }
        message_id = attributes.get(_MESSAGE_ID, {}).get("StringValue") or raw["MessageId"]
        count = int(raw["Attributes"]["ApproximateReceiveCount"])
        try:
            body = decode_object(raw["Body"])
        except ValueError as exc:
            body, reason = {"raw": raw["Body"]}, f"invalid_body: {exc}"
        else:
            reason = MAX_DELIVERY_COUNT_EXCEEDED if count > self._max_delivery_count else ""
        message = ReceivedMessage(
            queue=queue,
            message_id=message_id,
            body=body,
            headers=headers,
            delivery_count=count,
            enqueued_at=int(raw["Attributes"]["SentTimestamp"]) / 1000,
            lease=lease,
        )
        if reason:  # this receive does not deliver it: count only the deliveries before
            await self.dead_letter(dataclasses.replace(message, delivery_count=count - 1), reason=reason)
            return None
        return message

    async def complete(self, message: ReceivedMessage) -> None:
        lease = _live_lease(message)
        url = await self._url(message.queue)
        await self._call(
            message.queue, "complete a message of", self._client.delete_message,
            QueueUrl=url, ReceiptHandle=lease.receipt_handle, message=message,
        )  # fmt: skip

    async def release(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        await self._change_visibility(message, math.ceil(max(delay_seconds, 0.0)))

    async def renew(self, message: ReceivedMessage, *, visibility_seconds: float) -> ReceivedMessage:
        started = time.monotonic()
        visibility = max(1, math.ceil(visibility_seconds))
        await self._change_visibility(message, visibility)
        return dataclasses.replace(
            message, lease=_Lease(_live_lease(message).receipt_handle, started + visibility)
        )

    async def dead_letter(self, message: ReceivedMessage, *, reason: str) -> None:
        lease = _live_lease(message)
        dead_letter_url, _ = await self._dead_letter_queue(message.queue)
        attributes = _attributes(message.headers)
        note = {"reason": reason, "message_id": message.message_id, "delivery_count": message.delivery_count}
        attributes[_DEAD_LETTER] = _string(json.dumps(note))
        # Copy first, then delete: a failure in between leaves a duplicate dead letter, never a lost message.
        await self._call(
            message.queue, "dead-letter a message of", self._client.send_message,
            QueueUrl=dead_letter_url, MessageBody=encode_json(message.body), MessageAttributes=attributes,
        )  # fmt: skip
        url = await self._url(message.queue)
        await self._call(
            message.queue, "delete a dead-lettered message of", self._client.delete_message,
            QueueUrl=url, ReceiptHandle=lease.receipt_handle, message=message,
        )  # fmt: skip

    async def dead_letters(self, queue: str, *, max_messages: int = 100) -> list[DeadLetter]:
        """Peek at the dead-letter queue: messages are hidden while collected, then made visible again.

        SQS has no peek; a short poll samples the queue's servers, so a large queue may be seen in part.
        """
        url, max_receive_count = await self._dead_letter_queue(queue)
        seen: dict[str, DeadLetter] = {}
        handles: list[str] = []
        while len(seen) < max_messages:
            answer = await self._call(
                queue, "peek at the dead letters of", self._client.receive_message,
                QueueUrl=url,
                MaxNumberOfMessages=min(max_messages - len(seen), MAX_BATCH),
                VisibilityTimeout=_PEEK_HIDE_SECONDS,
                MessageAttributeNames=["All"],
            )  # fmt: skip
            batch = answer.get("Messages", [])
            if not batch:
                break
            for raw in batch:
                handles.append(raw["ReceiptHandle"])
                seen.setdefault(raw["MessageId"], _dead_letter(queue, raw, max_receive_count))
        for start in range(0, len(handles), MAX_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(handles[start : start + MAX_BATCH])
            ]
            await self._call(
                queue, "show again the dead letters of", self._client.change_message_visibility_batch,
                QueueUrl=url, Entries=entries,
            )  # fmt: skip
        return list(seen.values())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    async def _change_visibility(self, message: ReceivedMessage, visibility: int) -> None:
        lease = _live_lease(message)
        url = await self._url(message.queue)
        await self._call(
            message.queue, "change the visibility of a message of", self._client.change_message_visibility,
            QueueUrl=url, ReceiptHandle=lease.receipt_handle, VisibilityTimeout=visibility, message=message,
        )  # fmt: skip

    async def _url(self, queue: str) -> str:
        url = self._urls.get(queue)
        if url is None:
            url = await self._call(queue, "find", self._resolve, queue)
            self._urls[queue] = url
        return url

    def _resolve(self, queue: str) -> str:
        """Runs on a thread: the queue's URL, creating the queue and its dead-letter queue if allowed."""
        try:
            return str(self._client.get_queue_url(QueueName=queue)["QueueUrl"])
        except ClientError as exc:
            if not (self._create_queues and _code(exc) in _NON_EXISTENT):
                raise
        dead_letter_url = self._client.create_queue(QueueName=queue + DLQ_SUFFIX)["QueueUrl"]
        arn = self._client.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])
        policy = {
            "deadLetterTargetArn": arn["Attributes"]["QueueArn"],
            "maxReceiveCount": self._max_delivery_count,
        }
        created = self._client.create_queue(QueueName=queue, Attributes={"RedrivePolicy": json.dumps(policy)})
        return str(created["QueueUrl"])

    async def _limit(self, queue: str, url: str) -> int:
        """The most deliveries the queue allows a message: the adapter's own limit, or the redrive policy's
        ``maxReceiveCount`` when lower (read once per queue; a queue without a policy has only the former)."""
        limit = self._limits.get(queue)
        if limit is None:
            limit = await self._call(queue, "read the redrive policy of", self._resolve_limit, url)
            self._limits[queue] = limit
        return limit

    def _resolve_limit(self, url: str) -> int:
        attributes = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        policy = attributes.get("Attributes", {}).get("RedrivePolicy")
        redrive = int(json.loads(policy)["maxReceiveCount"]) if policy else self._max_delivery_count
        return min(self._max_delivery_count, redrive)

    async def _dead_letter_queue(self, queue: str) -> tuple[str, int]:
        """URL and ``maxReceiveCount`` of the queue's dead-letter queue, from its redrive policy."""
        found = self._dead_letter_urls.get(queue)
        if found is None:
            url = await self._url(queue)
            found = await self._call(
                queue, "find the dead-letter queue of", self._resolve_dead_letter, queue, url
            )
            self._dead_letter_urls[queue] = found
        return found

    def _resolve_dead_letter(self, queue: str, url: str) -> tuple[str, int]:
        attributes = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        policy = attributes.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            raise BusError(
                f"SQS queue '{queue}' has no dead-letter queue: infrastructure sets its RedrivePolicy"
            )
        redrive = json.loads(policy)
        _, _, _, _, account, name = redrive["deadLetterTargetArn"].split(":", 5)
        dead_letter_url = self._client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
            "QueueUrl"
        ]
        return str(dead_letter_url), int(redrive["maxReceiveCount"])

    async def _call(
        self,
        queue: str,
        action: str,
        fn: Callable[..., T],
        *args: Any,
        message: ReceivedMessage | None = None,
        **kwargs: Any,
    ) -> T:
        if self._closed:
            raise BusError("the SQS bus is closed")
        with self._errors(queue, action, message):
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(fn, *args, **kwargs)
            )

    @contextmanager
    def _errors(self, queue: str, action: str, message: ReceivedMessage | None) -> Iterator[None]:
        """Translate boto3's exceptions into the bus's, with what failed and what to do about it."""
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if message is not None and code == "ReceiptHandleIsInvalid":
                raise LeaseLost(_lease_lost(message, "its receipt handle is no longer valid")) from exc
            if code in _NON_EXISTENT:
                raise BusError(f"SQS queue '{queue}' does not exist; infrastructure creates it") from exc
            if code in {"AccessDenied", "AccessDeniedException", "InvalidClientTokenId"}:
                raise BusError(
                    f"not allowed to {action} SQS queue '{queue}': {code}; check the role's policy"
                ) from exc
            text = exc.response.get("Error", {}).get("Message", "")
            raise BusError(f"could not {action} SQS queue '{queue}': {code} {text}".rstrip()) from exc
        except BotoCoreError as exc:  # unreachable endpoint, no credentials, timeouts
            raise BusError(f"could not {action} SQS queue '{queue}': {exc}") from exc


def _live_lease(message: ReceivedMessage) -> _Lease:
    lease = message.lease
    if not isinstance(lease, _Lease):
        raise TypeError("this message was not received from an SqsBus")
    if time.monotonic() >= lease.expires:
        raise LeaseLost(_lease_lost(message, "its lease expired, so another receiver may hold it now"))
    return lease


def _lease_lost(message: ReceivedMessage, why: str) -> str:
    return f"message {message.message_id} of SQS queue '{message.queue}' is no longer leased by this receiver: {why}"


def _dead_letter(queue: str, raw: dict[str, Any], max_receive_count: int) -> DeadLetter:
    attributes = raw.get("MessageAttributes", {})
    note = json.loads(attributes.get(_DEAD_LETTER, {}).get("StringValue", "{}"))
    headers = {
        name: value["StringValue"] for name, value in attributes.items() if not name.startswith("agentstage.")
    }
    try:
        body = decode_object(raw["Body"])
    except ValueError:
        body = {"raw": raw["Body"]}
    return DeadLetter(
        queue=queue,
        message_id=note.get("message_id")
        or attributes.get(_MESSAGE_ID, {}).get("StringValue")
        or raw["MessageId"],
        body=body,
        headers=headers,
        # No note: SQS moved it itself after maxReceiveCount receives.
        reason=note.get("reason", MAX_DELIVERY_COUNT_EXCEEDED),
        delivery_count=int(note.get("delivery_count", max_receive_count)),
    )


def _attributes(headers: dict[str, str] | Any) -> dict[str, dict[str, str]]:
    return {name: _string(value) for name, value in headers.items()}


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
