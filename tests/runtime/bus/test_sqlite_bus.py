"""What only the embedded SQLite bus promises: worker processes sharing one file, and durability."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from agent_runtime.bus.base import BusError, OutgoingMessage
from agent_runtime.bus.sqlite import SqliteBus

QUEUE = "tasks"


def _worker(path: str, out: str, start: multiprocessing.synchronize.Event) -> None:
    """A worker process: leases and completes until the queue stays empty, writing what it got to ``out``."""

    async def drain() -> list[str]:
        bus = SqliteBus(path)
        got: list[str] = []
        try:
            while batch := await bus.receive(QUEUE, max_messages=3, wait_seconds=0.5, visibility_seconds=60):
                for message in batch:
                    got.append(message.message_id)
                    await bus.complete(message)
        finally:
            await bus.close()
        return got

    start.wait()
    Path(out).write_text("\n".join(asyncio.run(drain())))


def test_worker_processes_sharing_the_file_each_get_every_message_exactly_once(tmp_path: Path):
    path = tmp_path / "bus.db"

    async def fill() -> set[str]:
        bus = SqliteBus(path)
        try:
            return {await bus.send(QUEUE, OutgoingMessage({"n": n})) for n in range(300)}
        finally:
            await bus.close()

    sent = asyncio.run(fill())
    context = multiprocessing.get_context("fork")
    start = context.Event()
    outputs = [tmp_path / f"worker-{i}.txt" for i in range(3)]
    workers = [context.Process(target=_worker, args=(str(path), str(out), start)) for out in outputs]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0, f"a worker process failed with exit code {worker.exitcode}"

    per_worker = [out.read_text().split() for out in outputs]
    delivered = Counter(mid for got in per_worker for mid in got)
    assert set(delivered) == sent
    assert [mid for mid, count in delivered.items() if count > 1] == []
    assert sum(1 for got in per_worker if got) >= 2, "one process did all the work: no concurrency was tested"


@pytest.mark.anyio
async def test_messages_and_leases_outlive_the_process_that_wrote_them(tmp_path: Path):
    path = tmp_path / "bus.db"
    crashed = SqliteBus(path)
    await crashed.send(QUEUE, OutgoingMessage({"n": 1}, {"traceparent": "tp"}))
    await crashed.send(QUEUE, OutgoingMessage({"n": 2}))
    [taken] = await crashed.receive(QUEUE, visibility_seconds=1)
    await crashed.close()  # the worker dies holding a lease

    restarted = SqliteBus(path)
    try:
        [waiting] = await restarted.receive(QUEUE, wait_seconds=0)
        assert waiting.body == {"n": 2}
        [again] = await restarted.receive(QUEUE, wait_seconds=3)
        assert (again.message_id, again.body, again.headers) == (
            taken.message_id,
            {"n": 1},
            {"traceparent": "tp"},
        )
        assert again.delivery_count == 2
    finally:
        await restarted.close()


@pytest.mark.anyio
async def test_a_closed_bus_says_so(tmp_path: Path):
    bus = SqliteBus(tmp_path / "bus.db")
    await bus.close()
    with pytest.raises(BusError, match="closed"):
        await bus.send(QUEUE, OutgoingMessage({"n": 1}))


@pytest.mark.anyio
async def test_the_bus_file_is_in_wal_mode_so_readers_never_block_the_lease(tmp_path: Path):
    bus = SqliteBus(tmp_path / "bus.db")
    await bus.send(QUEUE, OutgoingMessage({"n": 1}))
    await bus.close()
    with sqlite3.connect(tmp_path / "bus.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.anyio
async def test_bodies_and_headers_that_are_not_json_are_refused_before_anything_is_written(tmp_path: Path):
    bus = SqliteBus(tmp_path / "bus.db")
    try:
        with pytest.raises(ValueError, match="JSON object"):
            await bus.send(QUEUE, OutgoingMessage({"when": object()}))
        with pytest.raises(ValueError, match="headers must be strings"):
            await bus.send(QUEUE, OutgoingMessage({"n": 1}, {"attempt": 2}))  # type: ignore[dict-item]
        assert await bus.receive(QUEUE, wait_seconds=0) == []
    finally:
        await bus.close()
