"""The MessageBus contract, run against every adapter that runs here (see conftest.BACKENDS).

Lease lengths are whole seconds: Storage Queues and SQS take nothing shorter than one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from bus_helpers import BACKENDS, BusFactory, sqs_client
from servers import AzuriteQueue, free_port

from agent_runtime.bus.base import (
    MAX_DELIVERY_COUNT_EXCEEDED,
    BusError,
    LeaseLost,
    MessageBus,
    OutgoingMessage,
    ReceivedMessage,
)
from agent_runtime.bus.sqlite import SqliteBus
from agent_runtime.bus.sqs import SqsBus
from agent_runtime.bus.storage_queue import StorageQueueBus

pytestmark = pytest.mark.anyio

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
LEASE = 1.0  # seconds: the shortest lease every adapter grants
AFTER_LEASE = LEASE + 0.3


async def one(bus: MessageBus, queue: str, *, wait: float = 5.0, visibility: float = 30.0) -> ReceivedMessage:
    received = await bus.receive(queue, wait_seconds=wait, visibility_seconds=visibility)
    assert len(received) == 1, f"expected one message, got {received}"
    return received[0]


async def test_a_message_round_trips_with_its_headers_and_is_hidden_while_leased(open_bus: BusFactory, queue):
    bus = await open_bus()
    assert isinstance(bus, MessageBus)
    body = {"task_id": "t-1", "input": "Grüße 👋", "items": [1, 2.5, None, {"deep": True}]}
    headers = {"traceparent": TRACEPARENT, "task_id": "t-1"}
    before = time.time()

    message_id = await bus.send(queue, OutgoingMessage(body, headers))
    received = await one(bus, queue)

    assert (received.queue, received.message_id) == (queue, message_id)
    assert received.body == body
    assert received.headers == headers
    assert received.delivery_count == 1
    assert before - 2 <= received.enqueued_at <= time.time() + 2
    assert await bus.receive(queue, wait_seconds=0) == [], "a leased message was delivered twice"
    await bus.complete(received)


async def test_a_given_message_id_is_kept(open_bus: BusFactory, queue):
    bus = await open_bus()
    assert await bus.send(queue, OutgoingMessage({"n": 1}, message_id="task-42")) == "task-42"
    assert (await one(bus, queue)).message_id == "task-42"


async def test_a_message_not_completed_within_its_lease_is_delivered_again(open_bus: BusFactory, queue):
    bus = await open_bus()
    message_id = await bus.send(queue, OutgoingMessage({"n": 1}))

    first = await one(bus, queue, visibility=LEASE)
    await asyncio.sleep(AFTER_LEASE)
    again = await one(bus, queue, visibility=30)

    assert again.message_id == first.message_id == message_id
    assert again.body == {"n": 1}
    assert (first.delivery_count, again.delivery_count) == (1, 2)


async def test_complete_removes_the_message_for_good(open_bus: BusFactory, queue):
    bus = await open_bus()
    await bus.send(queue, OutgoingMessage({"n": 1}))
    await bus.complete(await one(bus, queue, visibility=LEASE))
    await asyncio.sleep(AFTER_LEASE)
    assert await bus.receive(queue, wait_seconds=0.5) == []


async def test_completing_with_a_lease_that_passed_to_another_receiver_raises_lease_lost(
    open_bus: BusFactory, queue
):
    bus, other = await open_bus(), await open_bus()
    await bus.send(queue, OutgoingMessage({"n": 1}))
    stale = await one(bus, queue, visibility=LEASE)
    await asyncio.sleep(AFTER_LEASE)
    current = await one(other, queue, visibility=30)

    with pytest.raises(LeaseLost, match="no longer leased"):
        await bus.complete(stale)
    with pytest.raises(LeaseLost):
        await bus.dead_letter(stale, reason="too late")
    await other.complete(current)
    assert await bus.dead_letters(queue) == []


async def test_release_gives_the_message_back_after_its_delay(open_bus: BusFactory, queue):
    bus = await open_bus()
    await bus.send(queue, OutgoingMessage({"n": 1}))

    await bus.release(await one(bus, queue), delay_seconds=LEASE)
    released_at = time.monotonic()
    assert await bus.receive(queue, wait_seconds=0) == [], "released before its delay"
    again = await one(bus, queue, wait=5)
    assert time.monotonic() - released_at >= LEASE - 0.3
    assert again.delivery_count == 2

    await bus.release(again)
    assert (await one(bus, queue, wait=2)).delivery_count == 3


async def test_renew_keeps_the_message_hidden_past_its_first_lease(open_bus: BusFactory, queue):
    bus = await open_bus()
    await bus.send(queue, OutgoingMessage({"n": 1}))
    received = await one(bus, queue, visibility=LEASE)

    renewed = await bus.renew(received, visibility_seconds=5)
    await asyncio.sleep(AFTER_LEASE)

    assert await bus.receive(queue, wait_seconds=0) == [], "renewed message delivered again"
    await bus.complete(renewed)


async def test_dead_letter_moves_the_message_with_its_reason(open_bus: BusFactory, queue):
    bus = await open_bus()
    headers = {"traceparent": TRACEPARENT}
    message_id = await bus.send(queue, OutgoingMessage({"input": "unparseable"}, headers))

    await bus.dead_letter(await one(bus, queue), reason="invalid input: no task_id")

    [letter] = await bus.dead_letters(queue)
    assert (letter.queue, letter.message_id, letter.reason) == (
        queue,
        message_id,
        "invalid input: no task_id",
    )
    assert (letter.body, letter.headers, letter.delivery_count) == ({"input": "unparseable"}, headers, 1)
    assert await bus.receive(queue, wait_seconds=0) == []
    assert len(await bus.dead_letters(queue)) == 1, "peeking at the dead letters removed them"


async def test_a_message_delivered_max_delivery_count_times_is_dead_lettered(open_bus: BusFactory, queue):
    bus = await open_bus(max_delivery_count=2)
    message_id = await bus.send(queue, OutgoingMessage({"n": 1}, {"traceparent": TRACEPARENT}))

    for expected in (1, 2):
        assert (await one(bus, queue, visibility=LEASE)).delivery_count == expected
        await asyncio.sleep(AFTER_LEASE)

    assert await bus.receive(queue, wait_seconds=0.5) == []
    [letter] = await bus.dead_letters(queue)
    assert (letter.message_id, letter.reason) == (message_id, MAX_DELIVERY_COUNT_EXCEEDED)
    assert (letter.body, letter.headers, letter.delivery_count) == ({"n": 1}, {"traceparent": TRACEPARENT}, 2)


async def test_every_delivery_names_the_queues_limit_so_its_last_is_known(open_bus: BusFactory, queue):
    """The receive after a message's last delivery dead-letters it unseen (on SQS and Service Bus the service
    itself may), so a receiver must act on the last one it gets (the task worker fails a task whose worker
    kept dying there): each delivery names the limit, counted across releases and lapsed leases alike."""
    bus = await open_bus(max_delivery_count=3)
    await bus.send(queue, OutgoingMessage({"n": 1}))

    first = await one(bus, queue)
    await bus.release(first)
    second = await one(bus, queue, visibility=LEASE)
    await asyncio.sleep(AFTER_LEASE)
    last = await one(bus, queue)
    await bus.release(last)

    deliveries = [(m.delivery_count, m.max_delivery_count) for m in (first, second, last)]
    assert deliveries == [(1, 3), (2, 3), (3, 3)]
    assert await bus.receive(queue, wait_seconds=0.5) == []
    [letter] = await bus.dead_letters(queue)
    assert (letter.reason, letter.delivery_count) == (MAX_DELIVERY_COUNT_EXCEEDED, 3)


async def test_concurrent_receivers_each_get_every_message_exactly_once(open_bus: BusFactory, queue):
    sender = await open_bus()
    receivers = [await open_bus() for _ in range(4)]
    sent = set(await asyncio.gather(*(sender.send(queue, OutgoingMessage({"n": n})) for n in range(200))))
    delivered: Counter[str] = Counter()

    async def drain(bus: MessageBus) -> None:
        while len(delivered) < len(sent):
            batch = await bus.receive(queue, max_messages=5, wait_seconds=1, visibility_seconds=60)
            for message in batch:
                delivered[message.message_id] += 1
                await bus.complete(message)

    await asyncio.wait_for(asyncio.gather(*(drain(bus) for bus in receivers)), timeout=120)

    assert set(delivered) == sent
    assert [mid for mid, count in delivered.items() if count > 1] == []


async def test_an_empty_receive_returns_nothing_after_waiting(open_bus: BusFactory, queue):
    bus = await open_bus()
    started = time.monotonic()
    assert await bus.receive(queue, wait_seconds=1) == []
    assert 0.9 <= time.monotonic() - started < 2.5


async def test_a_message_sent_during_a_wait_is_received_before_the_wait_ends(open_bus: BusFactory, queue):
    bus, sender = await open_bus(), await open_bus()
    waiting = asyncio.create_task(bus.receive(queue, wait_seconds=10))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await sender.send(queue, OutgoingMessage({"n": 1}))
    [received] = await waiting
    assert received.body == {"n": 1}
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_unreachable_bus_raises_bus_error_with_a_clear_message(backend, tmp_path: Path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    port = free_port()  # nothing listens on it
    bus: MessageBus
    if backend == "sqlite":
        bus = SqliteBus(not_a_directory / "bus.db")
    elif backend == "storage_queue":
        bus = StorageQueueBus.from_connection_string(AzuriteQueue(port).connection_string, retry_total=0)
    else:
        client = sqs_client(f"http://127.0.0.1:{port}", retries={"max_attempts": 1}, connect_timeout=2)
        bus = SqsBus(client)
    try:
        with pytest.raises(BusError) as raised:
            await bus.send("unreachable", OutgoingMessage({"n": 1}))
    finally:
        await bus.close()
    message = raised.value.message
    assert raised.type is BusError and raised.value.status == 503
    assert "\n" not in message and len(message) < 400, message
    assert str(port) in message or "bus.db" in message, message
