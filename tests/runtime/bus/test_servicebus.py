"""The Service Bus adapter's mapping, against fakes of the SDK's client, sender and receiver.

There is no Service Bus emulator outside containers here, so this checks only what the adapter does with
the SDK: how messages, headers, delivery counts, settlements, dead-letter reasons and SDK exceptions map
to the contract. The fakes keep the shapes the SDK has on the wire (application property names and values
as bytes, a data body as a list of byte chunks, the AMQP delivery count of *prior* deliveries); the real
SDK's own messages are used for what the adapter sends.
"""

from __future__ import annotations

import datetime
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Self

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessagingEntityNotFoundError,
    ServiceBusAuthorizationError,
    ServiceBusConnectionError,
)

from agent_runtime.bus.base import MAX_DELIVERY_COUNT_EXCEEDED, BusError, LeaseLost, OutgoingMessage
from agent_runtime.bus.servicebus import ServiceBusBus

pytestmark = pytest.mark.anyio

QUEUE = "tasks"
_SEQUENCE = itertools.count(1)


@dataclass(eq=False)
class FakeReceived:
    """The attributes of ``ServiceBusReceivedMessage`` the adapter reads."""

    body: list[bytes]
    application_properties: dict[bytes, bytes]
    message_id: str
    delivery_count: int = 0  # AMQP: deliveries before this one
    enqueued_time_utc: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))
    body_type: AmqpMessageBodyType = AmqpMessageBodyType.DATA
    dead_letter_reason: str | None = None
    sequence_number: int = field(default_factory=lambda: next(_SEQUENCE))


def from_sent(message: ServiceBusMessage) -> FakeReceived:
    """What the service would deliver of a message the adapter sent (properties arrive as bytes)."""
    properties = {
        str(name).encode(): str(value).encode()
        for name, value in (message.application_properties or {}).items()
    }
    return FakeReceived([b"".join(message.body)], properties, str(message.message_id))


@dataclass
class FakeNamespace:
    active: list[FakeReceived] = field(default_factory=list)
    dead: list[FakeReceived] = field(default_factory=list)
    sent: list[ServiceBusMessage] = field(default_factory=list)
    scheduled: list[tuple[ServiceBusMessage, datetime.datetime]] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None  # raised by the next SDK call
    closed: list[str] = field(default_factory=list)

    def call(self, name: str, arg: Any = None) -> None:
        self.calls.append((name, arg))
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error


class FakeSender:
    def __init__(self, ns: FakeNamespace) -> None:
        self.ns = ns

    async def send_messages(self, message: ServiceBusMessage) -> None:
        self.ns.call("send_messages", message)
        self.ns.sent.append(message)
        self.ns.active.append(from_sent(message))

    async def schedule_messages(self, message: ServiceBusMessage, when: datetime.datetime) -> list[int]:
        self.ns.call("schedule_messages", message)
        self.ns.scheduled.append((message, when))
        return [1]

    async def close(self) -> None:
        self.ns.closed.append("sender")


class FakeReceiver:
    def __init__(self, ns: FakeNamespace, sub_queue: Any) -> None:
        self.ns = ns
        self.sub_queue = sub_queue
        self.locked: set[int] = set()

    async def receive_messages(self, max_message_count: int, max_wait_time: float) -> list[FakeReceived]:
        self.ns.call("receive_messages", max_wait_time)
        taken = [m for m in self.ns.active if m.sequence_number not in self.locked][:max_message_count]
        self.locked.update(m.sequence_number for m in taken)
        return taken

    def _settle(self, name: str, message: FakeReceived, recorded: Any = None) -> None:
        self.ns.call(name, recorded or message)
        if message.sequence_number not in self.locked:
            raise MessageLockLostError(message="lock lost")
        self.locked.discard(message.sequence_number)
        self.ns.active.remove(message)

    async def complete_message(self, message: FakeReceived) -> None:
        self._settle("complete_message", message)

    async def abandon_message(self, message: FakeReceived) -> None:
        self._settle("abandon_message", message)
        message.delivery_count += 1
        self.ns.active.append(message)

    async def dead_letter_message(self, message: FakeReceived, reason: str, error_description: str) -> None:
        self._settle("dead_letter_message", message, (reason, error_description))
        message.dead_letter_reason = reason
        self.ns.dead.append(message)

    async def renew_message_lock(self, message: FakeReceived) -> datetime.datetime:
        self.ns.call("renew_message_lock", message)
        if message.sequence_number not in self.locked:
            raise MessageLockLostError(message="lock lost")
        return datetime.datetime.now(datetime.UTC)

    async def peek_messages(self, max_message_count: int) -> list[FakeReceived]:
        self.ns.call("peek_messages", self.sub_queue)
        return self.ns.dead[:max_message_count]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self.ns.closed.append("receiver")


class FakeClient:
    def __init__(self, ns: FakeNamespace) -> None:
        self.ns = ns

    def get_queue_receiver(
        self, queue: str, *, sub_queue: Any = None, prefetch_count: int = 0
    ) -> FakeReceiver:
        self.ns.calls.append(("get_queue_receiver", (queue, sub_queue)))
        return FakeReceiver(self.ns, sub_queue)

    def get_queue_sender(self, queue: str) -> FakeSender:
        self.ns.calls.append(("get_queue_sender", queue))
        return FakeSender(self.ns)

    async def close(self) -> None:
        self.ns.closed.append("client")


@pytest.fixture
def ns() -> FakeNamespace:
    return FakeNamespace()


@pytest.fixture
async def bus(ns: FakeNamespace):
    bus = ServiceBusBus(FakeClient(ns), max_delivery_count=3)
    yield bus
    await bus.close()


async def test_send_maps_body_headers_id_and_delay_onto_the_sdk_message(
    bus: ServiceBusBus, ns: FakeNamespace
):
    before = datetime.datetime.now(datetime.UTC)
    message_id = await bus.send(
        QUEUE, OutgoingMessage({"task": "ü"}, {"traceparent": "tp"}, message_id="t-1", delay_seconds=30)
    )

    [sent] = ns.sent
    assert message_id == "t-1" == sent.message_id
    assert json.loads(b"".join(sent.body)) == {"task": "ü"}
    assert sent.content_type == "application/json"
    assert sent.application_properties == {"traceparent": "tp"}
    assert sent.scheduled_enqueue_time_utc is not None
    assert 29 <= (sent.scheduled_enqueue_time_utc - before).total_seconds() <= 31


async def test_receive_maps_back_and_counts_the_current_delivery(bus: ServiceBusBus, ns: FakeNamespace):
    await bus.send(QUEUE, OutgoingMessage({"n": 1}, {"traceparent": "tp"}))

    [received] = await bus.receive(QUEUE, wait_seconds=0)

    assert (received.body, received.headers, received.delivery_count) == ({"n": 1}, {"traceparent": "tp"}, 1)
    assert abs(received.enqueued_at - ns.active[0].enqueued_time_utc.timestamp()) < 1e-6
    assert ("receive_messages", 0.1) in ns.calls, "a zero wait must not become the SDK's wait-for-ever"


async def test_a_delivery_names_the_adapters_limit_so_its_last_is_known(
    bus: ServiceBusBus, ns: FakeNamespace
):
    """The queue's own MaxDeliveryCount is not readable with the runtime's roles: a delivery names the
    adapter's, which dead-letters a message past it whatever the queue allows."""
    await bus.send(QUEUE, OutgoingMessage({"n": 1}))
    ns.active[0].delivery_count = 2  # two prior deliveries: this is the third, the last of 3

    [last] = await bus.receive(QUEUE, wait_seconds=0)

    assert (last.delivery_count, last.max_delivery_count) == (3, 3)
    await bus.release(last)
    assert await bus.receive(QUEUE, wait_seconds=0) == []
    assert ns.dead[0].dead_letter_reason == MAX_DELIVERY_COUNT_EXCEEDED


async def test_settlements_use_the_receiver_that_received_the_message(bus: ServiceBusBus, ns: FakeNamespace):
    for n in range(3):
        await bus.send(QUEUE, OutgoingMessage({"n": n}))
    first, second, third = await bus.receive(QUEUE, max_messages=3, wait_seconds=0)

    await bus.complete(first)
    await bus.release(second)
    assert await bus.renew(third, visibility_seconds=60) is third
    await bus.dead_letter(third, reason="invalid input")

    [again] = await bus.receive(QUEUE, wait_seconds=0)
    assert (again.message_id, again.delivery_count) == (second.message_id, 2)
    assert (
        "dead_letter_message",
        ("invalid input", "dead-lettered by the agentstage runtime: invalid input"),
    ) in (ns.calls)
    receivers = [arg for name, arg in ns.calls if name == "get_queue_receiver"]
    assert receivers == [(QUEUE, None)], "one receiver link per queue, kept for settling"


async def test_a_lost_lock_or_a_settled_message_is_lease_lost(bus: ServiceBusBus, ns: FakeNamespace):
    await bus.send(QUEUE, OutgoingMessage({"n": 1}))
    [received] = await bus.receive(QUEUE, wait_seconds=0)
    await bus.complete(received)

    with pytest.raises(LeaseLost, match="no longer leased"):
        await bus.complete(received)
    ns.fail_with = MessageAlreadySettled(action="complete")
    with pytest.raises(LeaseLost):
        await bus.renew(received, visibility_seconds=60)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ServiceBusConnectionError(message="amqp connection refused"), "cannot reach Service Bus to send to"),
        (MessagingEntityNotFoundError(message="not found"), "queue 'tasks' does not exist"),
        (ServiceBusAuthorizationError(message="unauthorized"), "'Azure Service Bus Data Sender'"),
    ],
)
async def test_sdk_failures_become_bus_errors_that_say_what_to_do(
    bus: ServiceBusBus, ns: FakeNamespace, error: Exception, expected: str
):
    ns.fail_with = error
    with pytest.raises(BusError, match=expected) as raised:
        await bus.send(QUEUE, OutgoingMessage({"n": 1}))
    assert type(raised.value) is BusError


async def test_a_message_past_the_adapters_limit_is_dead_lettered_not_returned(
    bus: ServiceBusBus, ns: FakeNamespace
):
    await bus.send(QUEUE, OutgoingMessage({"n": 1}))
    ns.active[0].delivery_count = 3  # three prior deliveries: this would be the fourth, max is 3

    assert await bus.receive(QUEUE, wait_seconds=0) == []
    assert ns.dead[0].dead_letter_reason == MAX_DELIVERY_COUNT_EXCEEDED


async def test_a_body_that_is_not_a_json_object_is_dead_lettered(bus: ServiceBusBus, ns: FakeNamespace):
    ns.active.append(FakeReceived([b"not json"], {}, "foreign"))
    ns.active.append(FakeReceived([], {}, "amqp-value", body_type=AmqpMessageBodyType.VALUE))

    assert await bus.receive(QUEUE, max_messages=5, wait_seconds=0) == []
    reasons = [m.dead_letter_reason or "" for m in ns.dead]
    assert reasons[0].startswith("invalid_body: not JSON")
    assert reasons[1].startswith("invalid_body: not a data body")


async def test_dead_letters_peek_the_sub_queue_and_name_native_reasons_like_the_contract(
    bus: ServiceBusBus, ns: FakeNamespace
):
    native = FakeReceived([b'{"n": 1}'], {b"traceparent": b"tp"}, "m-1", delivery_count=4)
    native.dead_letter_reason = "MaxDeliveryCountExceeded"
    ns.dead.append(native)
    await bus.send(QUEUE, OutgoingMessage({"n": 2}))
    [received] = await bus.receive(QUEUE, wait_seconds=0)
    await bus.dead_letter(received, reason="invalid input")

    first, second = await bus.dead_letters(QUEUE)

    assert (first.message_id, first.reason, first.headers) == (
        "m-1",
        MAX_DELIVERY_COUNT_EXCEEDED,
        {"traceparent": "tp"},
    )
    assert (second.body, second.reason) == ({"n": 2}, "invalid input")
    assert ("peek_messages", ServiceBusSubQueue.DEAD_LETTER) in ns.calls


async def test_release_with_a_delay_schedules_a_copy_that_keeps_the_delivery_count(
    bus: ServiceBusBus, ns: FakeNamespace
):
    await bus.send(QUEUE, OutgoingMessage({"n": 1}, {"traceparent": "tp"}, message_id="t-1"))
    [received] = await bus.receive(QUEUE, wait_seconds=0)
    before = datetime.datetime.now(datetime.UTC)

    await bus.release(received, delay_seconds=20)

    [(copy, when)] = ns.scheduled
    assert 19 <= (when - before).total_seconds() <= 21
    assert copy.message_id == "t-1"
    assert ns.active == [], "the original must be completed once the copy is scheduled"
    ns.active.append(from_sent(copy))  # the service enqueues the copy when it is due
    [again] = await bus.receive(QUEUE, wait_seconds=0)
    assert (again.body, again.headers, again.delivery_count) == ({"n": 1}, {"traceparent": "tp"}, 2)


async def test_a_stale_holder_releasing_with_a_delay_schedules_nothing(bus: ServiceBusBus, ns: FakeNamespace):
    await bus.send(QUEUE, OutgoingMessage({"n": 1}))
    [received] = await bus.receive(QUEUE, wait_seconds=0)
    await bus.complete(received)

    with pytest.raises(LeaseLost):
        await bus.release(received, delay_seconds=5)
    assert ns.scheduled == []


async def test_close_closes_links_client_and_credential(ns: FakeNamespace):
    class Credential:
        closed = False

        async def close(self) -> None:
            self.closed = True

    credential = Credential()
    bus = ServiceBusBus(FakeClient(ns), credential=credential)
    await bus.send(QUEUE, OutgoingMessage({"n": 1}))
    await bus.receive(QUEUE, wait_seconds=0)
    await bus.close()
    assert sorted(ns.closed) == ["client", "receiver", "sender"]
    assert credential.closed


async def test_from_namespace_builds_an_sdk_client_for_the_namespace_and_credential():
    class Credential:
        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise AssertionError("nothing may be contacted when the bus is built")

        async def close(self) -> None:
            pass

    bus = ServiceBusBus.from_namespace("agents.servicebus.windows.net", Credential())
    try:
        assert bus._client.fully_qualified_namespace == "agents.servicebus.windows.net"
    finally:
        await bus.close()
