"""A task never outlives its messages. A bus delivers a message at most ``bus_max_delivery_count`` times and
dead-letters it on the receive after, where no worker sees it (SQS and Service Bus may move it themselves):
a task whose workers keep dying must end (failed, with its callback), never stay ``running`` for ever.

Workers die here in-process, at chosen points: a worker handling a delivery is cancelled and hands nothing
back, which leaves the bus and the record as a SIGKILL there would (test_task_worker_deaths.py kills real
worker processes). Every worker is the real one; each bus that runs here is used (Service Bus has no
emulator: its deliveries are checked by the bus tests).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from bus.bus_helpers import sqs_client
from servers import AzuriteQueue, MotoServer, azurite_queue
from task_hooks import LOOPBACK_CALLBACKS, Hook, hook
from task_stack import Stack, called_back, close_stack, open_stack, task_settings

from agent_runtime.bus.base import MessageBus
from agent_runtime.bus.sqlite import SqliteBus
from agent_runtime.bus.sqs import SqsBus
from agent_runtime.bus.storage_queue import StorageQueueBus
from agent_runtime.caller import Caller
from agent_runtime.errors import Unavailable
from agent_runtime.tasks.model import TaskRecord, TaskState
from agent_runtime.tasks.service import TaskService
from agent_runtime.tasks.worker import Worker
from agent_runtime.testing import ScriptedModelServer

pytestmark = pytest.mark.anyio

DELIVERY_COUNT_EXCEEDED = "delivery_count_exceeded"
"""The error code of a task failed because its workers kept dying and its message's deliveries ran out."""

ALICE = Caller("alice", frozenset({"user"}))
MAX = 3
LEASE = 1.0
"""The task's lease and its message's: whole seconds, the shortest SQS and Storage Queues grant."""
LAPSED = LEASE + 0.4
"""After a worker dies, both its leases have passed: the next delivery takes the task over."""


class DyingWorker(Worker):
    """A worker that can be killed anywhere: cancelled mid-run it hands nothing back (a SIGKILL's effect)."""

    async def _hand_back(self, lease: object) -> None:
        return None


@dataclass
class Deliveries:
    """A task service on the bus under test, beside the in-process runtime that runs its tasks."""

    stack: Stack
    tasks: TaskService
    queue: str

    def worker(self, kind: type[Worker] = Worker) -> Worker:
        return kind(self.stack.services.runner, self.stack.services.catalog, self.tasks, self.stack.settings)

    async def record(self, task_id: str) -> TaskRecord:
        record = await self.tasks.store.get(task_id)
        assert record is not None
        return record

    async def die_handling(self, when: Callable[[], Awaitable[bool]]) -> bool:
        """A worker takes the next delivery and dies once ``when()`` holds (True), unless it is done with the
        delivery first (False); then both its leases pass."""
        [message] = await self.tasks.bus.receive(self.queue, wait_seconds=10, visibility_seconds=LEASE)
        handling = asyncio.create_task(self.worker(DyingWorker).handle(message))
        while not handling.done():
            if await when():
                handling.cancel()
                with suppress(asyncio.CancelledError):
                    await handling
                await asyncio.sleep(LAPSED)
                return True
            await asyncio.sleep(0.01)
        handling.result()
        return False

    async def die_running(self, task_id: str, attempt: int) -> bool:
        async def running() -> bool:
            record = await self.record(task_id)
            return record.state is TaskState.RUNNING and record.attempts == attempt

        return await self.die_handling(running)

    async def die_before_claiming(self) -> None:
        """A worker that took a delivery and died before its claim: the message comes back, the task queued."""
        await self.tasks.bus.receive(self.queue, wait_seconds=10, visibility_seconds=LEASE)
        await asyncio.sleep(LAPSED)

    async def run_until(self, task_id: str, reached: Callable[[TaskRecord], bool]) -> TaskRecord:
        """A healthy worker until the task reaches ``reached`` (or 15 s); the record then."""
        worker = self.worker()
        running = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(15):
                while not reached(record := await self.record(task_id)):
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pass
        finally:
            worker.stop()
            await running
        return record


@pytest.fixture(scope="module")
def azurite() -> Iterator[AzuriteQueue]:
    with azurite_queue() as server:
        yield server


def open_bus(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> MessageBus:
    if backend == "storage_queue":
        azurite: AzuriteQueue = request.getfixturevalue("azurite")
        return StorageQueueBus.from_connection_string(azurite.connection_string, max_delivery_count=MAX)
    if backend == "sqs":
        moto: MotoServer = request.getfixturevalue("moto")
        return SqsBus(sqs_client(moto.endpoint_url, moto.region), max_delivery_count=MAX, create_queues=True)
    return SqliteBus(tmp_path / "bus.db", max_delivery_count=MAX)


BUSES = [
    "sqlite",
    pytest.param("storage_queue", marks=pytest.mark.slow),
    pytest.param("sqs", marks=pytest.mark.slow),
]


@pytest.fixture
async def deliveries(
    request: pytest.FixtureRequest, task_model: ScriptedModelServer, tmp_path: Path
) -> AsyncIterator[Deliveries]:
    backend = getattr(request, "param", "sqlite")
    queue = f"t-{uuid.uuid4().hex[:16]}"
    settings = task_settings(
        task_model,
        tmp_path,
        task_queue=queue,
        bus_max_delivery_count=MAX,
        task_lease_seconds=LEASE,
        bus_visibility_seconds=LEASE,
        callback_timeout_seconds=1.0,
        callback_max_retries=0,
        **LOOPBACK_CALLBACKS,
    )
    stack = await open_stack(settings)
    bus = open_bus(backend, request, tmp_path)
    tasks = TaskService(stack.tasks.store, bus, settings, stack.services.catalog)
    yield Deliveries(stack, tasks, queue)
    await bus.close()
    await close_stack(stack)


async def submit(deliveries: Deliveries, text: str, callback: Hook | None = None) -> TaskRecord:
    record, _ = await deliveries.tasks.submit(
        "payer", [{"role": "user", "content": text}], ALICE, callback_url=callback.url if callback else None
    )
    return record


@pytest.mark.parametrize("deliveries", BUSES, indirect=True)
async def test_a_task_whose_worker_dies_on_every_run_fails_on_its_last_delivery_and_calls_back(
    deliveries: Deliveries, task_model: ScriptedModelServer
) -> None:
    with hook() as receiver:
        task = await submit(deliveries, "pay ref-1 0.6", receiver)
        for attempt in range(1, MAX):
            assert await deliveries.die_running(task.id, attempt)
        task_model.requests.clear()
        # The last delivery: its worker does not run the task again (it would die too, and the next
        # delivery is dead-lettered unseen), it fails it.
        assert not await deliveries.die_running(task.id, MAX)
        done = await deliveries.run_until(task.id, called_back)
        letters = await deliveries.tasks.bus.dead_letters(deliveries.queue)

    assert done.state is TaskState.FAILED, done
    assert done.error is not None and done.error["code"] == DELIVERY_COUNT_EXCEEDED
    assert f"attempt {MAX - 1}" in done.error["message"] and f"delivered {MAX} times" in done.error["message"]
    assert task_model.requests == []
    assert done.callback is not None and done.callback["status"] == "delivered"
    assert [(post["id"], post["state"]) for post in receiver.posts] == [(task.id, "failed")]
    assert letters == []


@pytest.mark.parametrize("deliveries", BUSES, indirect=True)
async def test_a_run_on_the_last_delivery_that_dies_is_taken_over_by_its_standby(
    deliveries: Deliveries,
) -> None:
    task = await submit(deliveries, "pay ref-2 0.6")
    for _ in range(1, MAX):
        await deliveries.die_before_claiming()
    assert await deliveries.die_running(task.id, 1)  # the last delivery of its message

    done = await deliveries.run_until(task.id, lambda record: record.state.finished)

    assert done.state is TaskState.SUCCEEDED, done
    assert done.result is not None and done.result["answer"] == "paid ref-2"
    assert done.attempts == 2


async def test_a_worker_dying_while_posting_the_failures_callback_is_replaced(deliveries: Deliveries) -> None:
    with hook(stall=1, stall_seconds=5.0) as receiver:
        task = await submit(deliveries, "pay ref-3 0.6", receiver)
        for attempt in range(1, MAX):
            assert await deliveries.die_running(task.id, attempt)

        async def posting() -> bool:
            return receiver.posted.is_set()

        assert await deliveries.die_handling(posting)  # the last delivery fails the task, then dies posting
        done = await deliveries.run_until(task.id, called_back)

    assert done.state is TaskState.FAILED and done.error is not None
    assert done.error["code"] == DELIVERY_COUNT_EXCEEDED
    assert done.callback is not None and done.callback["status"] == "delivered"
    assert [post["state"] for post in receiver.posts] == ["failed", "failed"]


async def test_a_message_whose_last_delivery_finds_the_owner_alive_is_replaced_not_lost(
    deliveries: Deliveries,
) -> None:
    """A message that comes back while the task's owner is alive (its own lease on the message lapsed) is
    handed back to look again later; on its last delivery it is replaced by a fresh one, or the owner's death
    afterwards would leave the task with no message at all."""
    task = await submit(deliveries, "pay ref-4 0.2")
    for _ in range(1, MAX):
        await deliveries.die_before_claiming()
    owned = task.model_copy(
        update={
            "state": TaskState.RUNNING,
            "attempts": 1,
            "lease_until": time.time() + 2 * LEASE,  # its owner renews no more: it dies after this delivery
            "worker": "owner:1",
        }
    )
    await deliveries.tasks.store.replace(owned, expected_version=task.version)

    async def never() -> bool:
        return False

    assert not await deliveries.die_handling(never)  # the last delivery: the owner is alive, look later
    done = await deliveries.run_until(
        task.id, lambda record: record.state.finished
    )  # the owner never returns

    assert done.state is TaskState.SUCCEEDED, done
    assert done.attempts == 2


async def test_a_store_failing_on_the_last_delivery_leaves_a_standby(deliveries: Deliveries) -> None:
    """The worker stops with the store's error; the message it held is dead-lettered on its next receive, so
    it first sends the standby that runs the task once the store is back."""
    task = await submit(deliveries, "pay ref-5 0")
    for _ in range(1, MAX):
        await deliveries.die_before_claiming()
    [last] = await deliveries.tasks.bus.receive(deliveries.queue, wait_seconds=10, visibility_seconds=LEASE)
    store = deliveries.tasks.store

    async def unavailable(task_id: str) -> TaskRecord | None:
        raise Unavailable("the task store is unavailable: database is locked")

    store.get = unavailable  # type: ignore[method-assign]
    try:
        with pytest.raises(Unavailable):
            await deliveries.worker().handle(last)
    finally:
        del store.get
    await asyncio.sleep(LAPSED)

    done = await deliveries.run_until(task.id, lambda record: record.state.finished)

    assert done.state is TaskState.SUCCEEDED, done
    assert done.result is not None and done.result["answer"] == "paid ref-5"
