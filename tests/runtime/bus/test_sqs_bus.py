"""What only the SQS adapter does, on moto: the attribute limit, foreign bodies, a lower adapter limit
than the queue's redrive policy, and a missing queue in the cloud (where the adapter creates nothing)."""

from __future__ import annotations

import asyncio

import pytest
from bus_helpers import sqs_client
from servers import MotoServer

from agent_runtime.bus.base import MAX_DELIVERY_COUNT_EXCEEDED, BusError, OutgoingMessage
from agent_runtime.bus.sqs import MAX_HEADERS, SqsBus

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
async def bus(moto: MotoServer):
    bus = SqsBus(sqs_client(moto.endpoint_url, moto.region), create_queues=True)
    yield bus
    await bus.close()


async def test_more_headers_than_sqs_carries_are_refused_before_sending(bus: SqsBus, queue: str):
    headers = {f"h{i}": "v" for i in range(MAX_HEADERS + 1)}
    with pytest.raises(ValueError, match=f"at most {MAX_HEADERS} headers"):
        await bus.send(queue, OutgoingMessage({"n": 1}, headers))
    with pytest.raises(ValueError, match="'agentstage.' are the adapter's"):
        await bus.send(queue, OutgoingMessage({"n": 1}, {"agentstage.message_id": "x"}))
    await bus.send(queue, OutgoingMessage({"n": 1}, {f"h{i}": "v" for i in range(MAX_HEADERS)}))
    assert len((await bus.receive(queue))[0].headers) == MAX_HEADERS


async def test_a_body_that_is_not_a_json_object_is_dead_lettered(bus: SqsBus, queue: str, moto: MotoServer):
    await bus.send(queue, OutgoingMessage({"n": 1}))
    client = sqs_client(moto.endpoint_url, moto.region)
    url = client.get_queue_url(QueueName=queue)["QueueUrl"]
    await asyncio.to_thread(client.send_message, QueueUrl=url, MessageBody="[1, 2]")

    received = await bus.receive(queue, max_messages=10, wait_seconds=1)
    received += await bus.receive(queue, max_messages=10, wait_seconds=0)
    assert [m.body for m in received] == [{"n": 1}]
    [letter] = await bus.dead_letters(queue)
    assert letter.reason == "invalid_body: a JSON list, not an object"
    assert (letter.body, letter.delivery_count) == ({"raw": "[1, 2]"}, 0)


async def test_the_adapters_own_limit_applies_when_lower_than_the_redrive_policy(
    bus: SqsBus, queue: str, moto: MotoServer
):
    message_id = await bus.send(queue, OutgoingMessage({"n": 1}))  # redrive policy: 5 receives
    strict = SqsBus(sqs_client(moto.endpoint_url, moto.region), max_delivery_count=1)
    try:
        assert len(await strict.receive(queue, visibility_seconds=1)) == 1
        await asyncio.sleep(1.3)
        assert await strict.receive(queue, wait_seconds=0) == []
        [letter] = await strict.dead_letters(queue)
        assert (letter.message_id, letter.reason, letter.delivery_count) == (
            message_id,
            MAX_DELIVERY_COUNT_EXCEEDED,
            1,
        )
    finally:
        await strict.close()


async def test_a_redrive_policy_lower_than_the_adapters_limit_is_the_limit_a_delivery_names(
    queue: str, moto: MotoServer
):
    """SQS moves a message received ``maxReceiveCount`` times itself, on a receive that returns nothing: a
    queue whose policy allows fewer deliveries than the adapter's setting must say so on each delivery, or its
    receiver would never know it holds the last one."""
    strict = SqsBus(sqs_client(moto.endpoint_url, moto.region), max_delivery_count=2, create_queues=True)
    lenient = SqsBus(sqs_client(moto.endpoint_url, moto.region), max_delivery_count=5)
    try:
        message_id = await strict.send(queue, OutgoingMessage({"n": 1}))  # created with maxReceiveCount 2
        deliveries = []
        for _ in range(2):
            [received] = await lenient.receive(queue, visibility_seconds=1)
            deliveries.append((received.delivery_count, received.max_delivery_count))
            await asyncio.sleep(1.3)
        assert deliveries == [(1, 2), (2, 2)]
        assert await lenient.receive(queue, wait_seconds=1) == []
        [letter] = await lenient.dead_letters(queue)
        assert (letter.message_id, letter.reason) == (message_id, MAX_DELIVERY_COUNT_EXCEEDED)
    finally:
        await strict.close()
        await lenient.close()


async def test_without_create_queues_a_missing_queue_is_a_clear_bus_error(moto: MotoServer, queue: str):
    bus = SqsBus(sqs_client(moto.endpoint_url, moto.region))
    try:
        with pytest.raises(BusError, match=f"SQS queue '{queue}' does not exist; infrastructure creates it"):
            await bus.send(queue, OutgoingMessage({"n": 1}))
    finally:
        await bus.close()


async def test_a_queue_without_a_redrive_policy_cannot_dead_letter(moto: MotoServer, queue: str):
    client = sqs_client(moto.endpoint_url, moto.region)
    client.create_queue(QueueName=queue)
    bus = SqsBus(client)
    try:
        await bus.send(queue, OutgoingMessage({"n": 1}))
        [message] = await bus.receive(queue)
        with pytest.raises(BusError, match="has no dead-letter queue: infrastructure sets its RedrivePolicy"):
            await bus.dead_letter(message, reason="bad")
    finally:
        await bus.close()
