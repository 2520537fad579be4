"""open_bus: the adapter the settings name, configured from the environment, or an error naming the
environment variable to set."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from servers import AzuriteQueue, MotoServer

from agent_runtime.bus.base import MAX_DELIVERY_COUNT_EXCEEDED, MessageBus, OutgoingMessage
from agent_runtime.bus.factory import open_bus
from agent_runtime.bus.servicebus import ServiceBusBus
from agent_runtime.bus.sqlite import SqliteBus
from agent_runtime.bus.storage_queue import StorageQueueBus
from agent_runtime.errors import ConfigurationError
from agent_runtime.settings import Settings

pytestmark = pytest.mark.anyio


async def round_trip(bus: MessageBus, queue: str) -> None:
    try:
        await bus.send(queue, OutgoingMessage({"n": 1}, {"traceparent": "tp"}))
        [received] = await bus.receive(queue, wait_seconds=2)
        assert (received.body, received.headers) == ({"n": 1}, {"traceparent": "tp"})
        await bus.complete(received)
    finally:
        await bus.close()


async def test_the_default_is_the_embedded_bus_in_its_own_file_with_the_configured_limit(tmp_path: Path):
    path = tmp_path / "queues" / "bus.db"
    bus = open_bus(Settings(bus_sqlite_path=str(path), bus_max_delivery_count=1))
    try:
        assert isinstance(bus, SqliteBus)
        await bus.send("tasks", OutgoingMessage({"n": 1}))
        assert len(await bus.receive("tasks", visibility_seconds=0.2)) == 1
        await asyncio.sleep(0.3)
        assert await bus.receive("tasks", wait_seconds=0) == []
        assert [d.reason for d in await bus.dead_letters("tasks")] == [MAX_DELIVERY_COUNT_EXCEEDED]
        assert path.exists()
    finally:
        await bus.close()


@pytest.mark.parametrize(
    ("backend", "variable"),
    [
        ("servicebus", "AGENTSTAGE_SERVICEBUS_NAMESPACE"),
        ("storage_queue", "AGENTSTAGE_STORAGE_QUEUE_ACCOUNT_URL"),
    ],
)
def test_a_missing_setting_names_its_environment_variable(backend: str, variable: str):
    with pytest.raises(ConfigurationError, match=f"bus_backend '{backend}' needs {variable}") as raised:
        open_bus(Settings(bus_backend=backend))
    assert raised.value.field == variable


def test_sqs_without_a_region_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    with pytest.raises(ConfigurationError, match="needs a region: set AGENTSTAGE_AWS_REGION"):
        open_bus(Settings(bus_backend="sqs"))


async def test_azure_backends_are_built_for_the_managed_identity_without_contacting_anything():
    identity = {"identity_client_id": "00000000-0000-0000-0000-000000000001"}
    servicebus = open_bus(
        Settings(bus_backend="servicebus", servicebus_namespace="agents.servicebus.windows.net", **identity)
    )
    storage = open_bus(
        Settings(
            bus_backend="storage_queue",
            storage_queue_account_url="https://agents.queue.core.windows.net",
            **identity,
        )
    )
    try:
        assert isinstance(servicebus, ServiceBusBus)
        assert isinstance(storage, StorageQueueBus)
    finally:
        await servicebus.close()
        await storage.close()


@pytest.mark.slow
async def test_storage_queues_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, azurite: AzuriteQueue, queue
):
    monkeypatch.setenv("AGENTSTAGE_BUS_BACKEND", "storage_queue")
    monkeypatch.setenv("AGENTSTAGE_STORAGE_QUEUE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("AGENTSTAGE_BUS_CREATE_QUEUES", "true")
    await round_trip(open_bus(Settings()), queue)


@pytest.mark.slow
async def test_sqs_from_the_environment(monkeypatch: pytest.MonkeyPatch, moto: MotoServer, queue):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret_access_key)
    monkeypatch.setenv("AGENTSTAGE_BUS_BACKEND", "sqs")
    monkeypatch.setenv("AGENTSTAGE_SQS_ENDPOINT_URL", moto.endpoint_url)
    monkeypatch.setenv("AGENTSTAGE_AWS_REGION", moto.region)
    monkeypatch.setenv("AGENTSTAGE_BUS_CREATE_QUEUES", "true")
    await round_trip(open_bus(Settings()), queue)
