"""Callback delivery against receivers that misbehave: each attempt is bounded as a whole, the body is never
read, and a task's callback is POSTed once however many deliveries of its message there are."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from dns_helpers import Resolver
from task_stack import called_back, close_stack, open_stack, parked, run_worker_until, task_settings

from agent_runtime.bus.base import BusError, OutgoingMessage
from agent_runtime.caller import Caller
from agent_runtime.settings import Settings
from agent_runtime.tasks.callbacks import deliver
from agent_runtime.tasks.model import TaskState
from agent_runtime.tasks.service import task_message
from agent_runtime.testing import ScriptedModelServer

pytestmark = pytest.mark.anyio

HUGE = 200 * 1024 * 1024


class Receiver:
    """A raw HTTP receiver on loopback: ``answer(conn)`` per request, after the request head is read."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.posts = 0
        self._answer = answer
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            self.posts += 1
            try:
                self._answer(conn)
            except OSError:  # the client went away: what the tests expect of a receiver it gave up on
                pass

    def close(self) -> None:
        self._sock.close()


OpenReceiver = Callable[[Callable[[socket.socket], None]], Receiver]


@pytest.fixture
def receiver() -> Iterator[OpenReceiver]:
    opened: list[Receiver] = []

    def open_receiver(answer: Callable[[socket.socket], None]) -> Receiver:
        opened.append(Receiver(answer))
        return opened[-1]

    yield open_receiver
    for server in opened:
        server.close()


def loopback(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "http_allowed_hosts": ["127.0.0.1"],
        "http_allow_loopback": True,
        "callback_timeout_seconds": 1.0,
        "callback_max_retries": 0,
    }
    return Settings(**(values | overrides))


def drip_head(conn: socket.socket) -> None:
    """The status line, a byte every 0.3 s: each read succeeds well within httpx's per-read timeout."""
    for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"y" * 1000:
        conn.sendall(bytes([byte]))
        time.sleep(0.3)


def drip_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(100):
        conn.sendall(b"1\r\nx\r\n")
        time.sleep(0.3)


async def test_an_attempt_is_bounded_as_a_whole_and_the_body_is_not_awaited(receiver: OpenReceiver) -> None:
    async with httpx.AsyncClient() as http:
        for answer, status in ((drip_head, "failed"), (drip_body, "delivered")):
            server = receiver(answer)
            started = time.monotonic()
            async with asyncio.timeout(5):
                outcome = await deliver(http, server.url, {"id": "t"}, loopback())
            assert outcome["status"] == status, outcome
            assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.7", "127.0.0.1"])
async def test_a_callback_host_resolving_to_a_non_public_address_is_refused_unsent(
    address: str, resolver: Resolver
) -> None:
    """The allow-list names a host; what it resolves to when the callback is sent is what is checked (the
    cloud's metadata service, a private address, loopback without http_allow_loopback)."""
    resolver.answer("hooks.example.com", address)
    settings = Settings(
        http_allowed_hosts=["hooks.example.com"], callback_timeout_seconds=1.0, callback_max_retries=0
    )
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as http:
        outcome = await deliver(http, "https://hooks.example.com/cb", {"id": "t"}, settings)
    assert outcome["status"] == "failed" and address in outcome["detail"], outcome
    assert sent == []


async def test_a_huge_answer_is_not_read(receiver: OpenReceiver) -> None:
    sent = 0

    def huge(conn: socket.socket) -> None:
        nonlocal sent
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUGE)
        chunk = b"x" * (1 << 20)
        while sent < HUGE:
            conn.sendall(chunk)
            sent += len(chunk)

    server = receiver(huge)
    async with httpx.AsyncClient() as http:
        outcome = await deliver(http, server.url, {"id": "t"}, loopback(callback_timeout_seconds=10.0))
    assert outcome["status"] == "delivered"
    await asyncio.sleep(0.2)
    assert sent < HUGE // 4  # the connection was closed after the status, not read to its end


async def test_a_callback_is_posted_once_however_often_its_message_arrives(
    task_model: ScriptedModelServer, tmp_path: Path, receiver: OpenReceiver
) -> None:
    def slow_ok(conn: socket.socket) -> None:
        time.sleep(2.5)  # the message's lease lapses meanwhile: it is delivered again
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    server = receiver(slow_ok)
    settings = task_settings(
        task_model,
        tmp_path,
        http_allowed_hosts=["127.0.0.1"],
        http_allow_loopback=True,
        callback_timeout_seconds=5.0,
        task_lease_seconds=1,
        bus_visibility_seconds=1,
        worker_concurrency=2,
    )
    stack = await open_stack(settings)
    alice = Caller("alice", frozenset({"user"}))
    record, _ = await stack.tasks.submit(
        "payer", [{"role": "user", "content": "pay r 0"}], alice, callback_url=server.url
    )
    await stack.bus.send(record.queue, task_message(record))  # and a duplicate message arrives too
    worker = stack.worker()
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(15):
            while (current := await stack.tasks.store.get(record.id)) is not None and (
                current.callback is None or current.callback["status"] == "sending"
            ):
                await asyncio.sleep(0.05)
        await asyncio.sleep(3)  # a second POST, if any, would have arrived
    finally:
        worker.stop()
        await running
        await close_stack(stack)
    assert current is not None and current.callback is not None
    assert current.callback["status"] == "delivered"
    assert server.posts == 1


async def test_a_repeated_cancel_resends_the_callback_message_its_first_send_lost(
    task_model: ScriptedModelServer, tmp_path: Path, receiver: OpenReceiver
) -> None:
    """A parked task cancelled while the bus fails: the record says cancelled, its callback's message was
    never sent. The caller's retry of the cancel sends it, and the callback is posted once."""
    server = receiver(lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    settings = task_settings(task_model, tmp_path, http_allowed_hosts=["127.0.0.1"], http_allow_loopback=True)
    stack = await open_stack(settings)
    alice = Caller("alice", frozenset({"user"}))
    try:
        record, _ = await stack.tasks.submit(
            "payer", [{"role": "user", "content": "transfer 9"}], alice, callback_url=server.url
        )
        await run_worker_until(stack, record.id, parked)
        working = stack.tasks.bus.send

        async def lose_once(queue: str, message: OutgoingMessage) -> str:
            stack.tasks.bus.send = working  # type: ignore[method-assign]
            raise BusError("simulated bus failure")

        stack.tasks.bus.send = lose_once  # type: ignore[method-assign]
        with pytest.raises(BusError):
            await stack.tasks.cancel(record.id, alice)
        assert (await stack.tasks.cancel(record.id, alice)).state is TaskState.CANCELLED
        done = await run_worker_until(stack, record.id, called_back)
    finally:
        await close_stack(stack)
    assert done.callback is not None and done.callback["status"] == "delivered"
    assert server.posts == 1
