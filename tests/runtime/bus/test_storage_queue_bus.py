"""What only the Storage Queue adapter does, on Azurite: foreign JSON objects delivered, the poison queue for
other foreign messages, and a missing queue in the cloud (where the adapter creates nothing)."""

from __future__ import annotations

import base64
import json

import pytest
from azure.storage.queue.aio import QueueClient
from servers import AzuriteQueue

from agent_runtime.bus.base import BusError, OutgoingMessage
from agent_runtime.bus.storage_queue import StorageQueueBus

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_message_that_is_not_an_envelope_goes_to_the_poison_queue(azurite: AzuriteQueue, queue: str):
    bus = StorageQueueBus.from_connection_string(azurite.connection_string)
    try:
        await bus.send(queue, OutgoingMessage({"n": 1}))  # creates the queue
        async with QueueClient.from_connection_string(azurite.connection_string, queue) as raw:
            await raw.send_message("plain text from another tool")

        [good] = await bus.receive(queue, max_messages=5, wait_seconds=1)
        assert good.body == {"n": 1}
        assert await bus.receive(queue, wait_seconds=0) == []
        [letter] = await bus.dead_letters(queue)
        assert letter.reason.startswith("invalid_envelope: not base64")
        assert letter.body == {"raw": "plain text from another tool"}
    finally:
        await bus.close()


async def test_a_foreign_base64_json_object_is_delivered_as_its_body(azurite: AzuriteQueue, queue: str):
    """What Event Grid writes to a Storage queue: base64 of the event's JSON, no envelope of ours."""
    event = {
        "eventType": "Microsoft.Storage.BlobCreated",
        "subject": "/blobServices/default/containers/c/blobs/a",
    }
    bus = StorageQueueBus.from_connection_string(azurite.connection_string)
    try:
        await bus.send(queue, OutgoingMessage({"n": 1}))  # creates the queue
        async with QueueClient.from_connection_string(azurite.connection_string, queue) as raw:
            sent = await raw.send_message(base64.b64encode(json.dumps(event).encode()).decode())
        messages = await bus.receive(queue, max_messages=5, wait_seconds=1)
        foreign = next(message for message in messages if message.body == event)
        assert (foreign.message_id, foreign.headers) == (sent.id, {})
        for message in messages:
            await bus.complete(message)
        assert await bus.dead_letters(queue) == []
    finally:
        await bus.close()


async def test_without_create_queues_a_missing_queue_is_a_clear_bus_error(azurite: AzuriteQueue, queue: str):
    bus = StorageQueueBus.from_connection_string(azurite.connection_string, create_queues=False)
    try:
        with pytest.raises(BusError, match=f"queue '{queue}' .* does not exist; infrastructure creates it"):
            await bus.send(queue, OutgoingMessage({"n": 1}))
        assert await bus.dead_letters(queue) == []
    finally:
        await bus.close()
