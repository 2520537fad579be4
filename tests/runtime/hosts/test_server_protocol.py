"""The container's HTTP protocol: a request head too long is refused with 431, a head or a body too slow with
408, and ordinary requests - large bodies, pipelined requests, heads and bodies split across reads - are
served as before.

uvicorn serves a small ASGI app with the protocol on loopback, in a thread of the test process (so the
timeout can be shortened); the image's own command is tested with it in test_container_host.py.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from agent_runtime import server_protocol
from agent_runtime.server_protocol import BoundedHttpToolsProtocol
from tests.servers import free_port

SHORT_TIMEOUT = 0.5


async def _echo_length(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Answers the length of the body it read and the length of its headers."""
    if scope["type"] != "http":
        return
    length, more = 0, True
    while more:
        message = await receive()
        length += len(message.get("body", b""))
        more = message.get("more_body", False)
    headers = sum(len(name) + len(value) for name, value in scope["headers"])
    body = json.dumps({"body": length, "headers": headers}).encode()
    length_header = (b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": 200, "headers": [length_header]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    config = uvicorn.Config(
        _echo_length, host="127.0.0.1", port=free_port(), http=BoundedHttpToolsProtocol, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield config.port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_protocol, "HEAD_TIMEOUT_SECONDS", SHORT_TIMEOUT)
    monkeypatch.setattr(server_protocol, "BODY_TIMEOUT_SECONDS", SHORT_TIMEOUT)


def _connect(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def _read_answers(client: socket.socket, count: int = 1) -> list[tuple[int, dict, bytes]]:
    """``count`` answers: status, headers, body (by Content-Length)."""
    answers, buffer = [], b""
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = client.recv(65536)
            assert chunk, f"the connection closed after {len(answers)} answers: {buffer!r}"
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode().split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
        length = int(headers["content-length"])
        while len(buffer) < length:
            buffer += client.recv(65536)
        answers.append((int(status_line.split()[1]), headers, buffer[:length]))
        buffer = buffer[length:]
    return answers


def _closed(client: socket.socket) -> bool:
    client.settimeout(5)
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True


def _send_until_answered(client: socket.socket, start: bytes, piece: bytes, most: int) -> int:
    """Send ``start`` then ``piece`` after ``piece`` until an answer can be read; the bytes sent by then."""
    client.sendall(start)
    sent = len(start)
    while sent < most and not select.select([client], [], [], 0)[0]:
        client.sendall(piece)
        sent += len(piece)
    return sent


def test_a_head_within_the_limit_is_served(port: int) -> None:
    headers = "".join(f"X-Claim-{i}: {'v' * 900}\r\n" for i in range(60))  # ~55 KiB, one send
    with _connect(port) as client:
        client.sendall(f"GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        [(status, _, body)] = _read_answers(client)
    assert status == 200 and json.loads(body)["headers"] > 50 * 1024


def test_a_head_split_across_many_reads_within_the_limit_is_served(port: int) -> None:
    head = f"GET / HTTP/1.1\r\nHost: x\r\nX-Token: {'t' * 40_000}\r\n\r\n".encode()
    with _connect(port) as client:
        for offset in range(0, len(head), 1000):
            client.sendall(head[offset : offset + 1000])
            time.sleep(0.001)
        [(status, _, _)] = _read_answers(client)
    assert status == 200


@pytest.mark.parametrize("where", ["header", "url"])
def test_an_endless_head_is_refused_with_431_and_the_connection_closed(port: int, where: str) -> None:
    start = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " if where == "header" else b"GET /"
    with _connect(port) as client:
        began = time.monotonic()
        sent = _send_until_answered(client, start, b"a" * 16384, most=256 * 1024 * 1024)
        [(status, headers, body)] = _read_answers(client)
        assert _closed(client)
    assert status == 431 and headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "headers_too_large"
    assert "64 KiB" in json.loads(body)["error"]["message"]
    assert sent < 32 * 1024 * 1024, "refused while the head arrived (sent counts the sockets' buffers too)"
    assert time.monotonic() - began < 5


def test_a_large_body_in_the_same_read_as_its_head_is_not_counted_as_head(port: int) -> None:
    body = b"x" * (2 * 1024 * 1024)
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    with _connect(port) as client:
        client.sendall(request)
        [(status, _, answer)] = _read_answers(client)
    assert status == 200 and json.loads(answer)["body"] == len(body)


def test_pipelined_requests_with_bodies_are_each_served(port: int) -> None:
    body = b"y" * 300_000
    one = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    with _connect(port) as client:
        client.sendall(one * 4)
        answers = _read_answers(client, 4)
    assert [(status, json.loads(answer)["body"]) for status, _, answer in answers] == [(200, len(body))] * 4


@pytest.mark.usefixtures("short_timeout")
def test_a_head_that_stops_arriving_is_refused_with_408(port: int) -> None:
    with _connect(port) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.05)
        client.sendall(b"X-Slow: 1\r\n")  # a byte now and then does not keep it open
        [(status, headers, body)] = _read_answers(client)
        assert _closed(client)
    assert status == 408 and headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_timeout"


@pytest.mark.usefixtures("short_timeout")
def test_a_slow_head_that_completes_in_time_is_served_and_its_connection_kept(port: int) -> None:
    with _connect(port) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        time.sleep(SHORT_TIMEOUT / 5)
        client.sendall(b"\r\n")
        [(first, _, _)] = _read_answers(client)
        time.sleep(SHORT_TIMEOUT * 2)  # the head's timer was cancelled: nothing is written meanwhile
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        [(second, _, _)] = _read_answers(client)
    assert (first, second) == (200, 200)


POST_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"


@pytest.mark.usefixtures("short_timeout")
@pytest.mark.parametrize("sent", [b"", b"{", b"x" * 99])
def test_a_body_that_stops_arriving_is_refused_with_408(port: int, sent: bytes) -> None:
    with _connect(port) as client:
        client.sendall(POST_HEAD + sent)
        time.sleep(SHORT_TIMEOUT / 5)
        client.sendall(b"")  # nothing more
        began = time.monotonic()
        [(status, headers, body)] = _read_answers(client)
        assert _closed(client)
    assert status == 408 and headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert "body" in json.loads(body)["error"]["message"]
    assert time.monotonic() - began < SHORT_TIMEOUT * 3


@pytest.mark.usefixtures("short_timeout")
def test_a_body_arriving_a_byte_now_and_then_is_refused_at_its_deadline(port: int) -> None:
    with _connect(port) as client:
        client.sendall(POST_HEAD)
        began = time.monotonic()
        for _ in range(50):
            if select.select([client], [], [], SHORT_TIMEOUT / 10)[0]:
                break
            client.sendall(b"x")
        [(status, _, _)] = _read_answers(client)
    assert status == 408
    assert time.monotonic() - began < SHORT_TIMEOUT * 3


@pytest.mark.usefixtures("short_timeout")
def test_a_slow_body_that_completes_in_time_is_served_and_its_connection_kept(port: int) -> None:
    with _connect(port) as client:
        client.sendall(POST_HEAD + b"x" * 50)
        time.sleep(SHORT_TIMEOUT / 5)
        client.sendall(b"x" * 50)
        [(first, _, answer)] = _read_answers(client)
        time.sleep(SHORT_TIMEOUT * 2)  # the body's timer was cancelled: nothing is written meanwhile
        client.sendall(POST_HEAD + b"y" * 100)
        [(second, _, _)] = _read_answers(client)
    assert (first, json.loads(answer)["body"], second) == (200, 100, 200)
