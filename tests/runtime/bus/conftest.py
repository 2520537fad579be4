"""Every bus adapter that runs here, behind one fixture: SQLite on a temporary file, Storage Queues on
Azurite, SQS on the moto server. Each emulator starts once per session, and only when a test needs it; one
that cannot start FAILS those tests with the reason, it never skips them. Service Bus has no emulator
outside containers: its adapter is tested against fakes of the SDK in test_servicebus.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bus_helpers import BACKENDS, BusFactory, sqs_client
from servers import AzuriteQueue, MotoServer, ServerError, azurite_queue, moto_server

from agent_runtime.bus.base import MessageBus
from agent_runtime.bus.sqlite import SqliteBus
from agent_runtime.bus.sqs import SqsBus
from agent_runtime.bus.storage_queue import StorageQueueBus


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteQueue]:
    try:
        with azurite_queue() as server:
            yield server
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    try:
        with moto_server() as server:
            yield server
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def queue() -> str:
    """A fresh queue name per test (Storage Queues: 3-63 lowercase letters, digits and dashes)."""
    return f"test-{uuid.uuid4().hex[:16]}"


# The emulators' cases are "slow" (they start external servers); the embedded SQLite bus is not.
@pytest.fixture(params=[b if b == "sqlite" else pytest.param(b, marks=pytest.mark.slow) for b in BACKENDS])
async def open_bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusFactory]:
    """``await open_bus(max_delivery_count=...)``: a new bus of the backend under test (several may share
    the same queues, like separate worker processes); all are closed after the test."""
    backend = request.param
    server = {"storage_queue": "azurite", "sqs": "moto"}.get(backend)
    emulator = request.getfixturevalue(server) if server else None
    opened: list[MessageBus] = []

    async def open_one(max_delivery_count: int = 5) -> MessageBus:
        bus: MessageBus
        if isinstance(emulator, AzuriteQueue):
            bus = StorageQueueBus.from_connection_string(
                emulator.connection_string, max_delivery_count=max_delivery_count
            )
        elif isinstance(emulator, MotoServer):
            client = sqs_client(emulator.endpoint_url, emulator.region)
            bus = SqsBus(client, max_delivery_count=max_delivery_count, create_queues=True)
        else:
            bus = SqliteBus(tmp_path / "bus.db", max_delivery_count=max_delivery_count)
        opened.append(bus)
        return bus

    yield open_one
    for bus in opened:
        await bus.close()
