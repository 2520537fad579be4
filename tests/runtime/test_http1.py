"""The model endpoints' HTTP/1.1 client against servers on loopback that write exact bytes: answers framed
every way HTTP/1.1 allows and cut at every place, token-sized writes, compression, keep-alive and its
limits, back-pressure, timeouts, cancellation and a proxy that refuses. (TLS, proxies that accept and the
resend of a dropped pooled request run through the model client in test_llm.py.)"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tls_helpers import tls_files

from agent_runtime import http1

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body, as the server read them."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    return head + await reader.readexactly(length)


class _Server:
    """A server on loopback running ``handler`` per connection, counting connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self._listener = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._listener.sockets[0].getsockname()[1]}/v1/chat"

    async def __aexit__(self, *exc: object) -> None:
        self._listener.close()


def _client(**options: Any) -> http1.Client:
    settings: dict[str, Any] = {"connect_timeout": 5.0, "read_timeout": 5.0, "keepalive": 4.0}
    return http1.Client(ssl_context=ssl.create_default_context(), **{**settings, **options})


def _answering(*answers: bytes, pieces: int = 0, close: bool = False) -> Handler:
    """A handler that answers each request with the next of ``answers`` (in ``pieces``-byte writes when
    given), then closes if ``close``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await _request(reader)
            for start in range(0, len(answer), pieces or len(answer)):
                writer.write(answer[start : start + (pieces or len(answer))])
                await writer.drain()
                if pieces:
                    await asyncio.sleep(0)
        if close:
            return
        await reader.read()  # until the client closes

    return handle


def _fixed(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "".join(f"{header}\r\n" for header in headers)
    return f"HTTP/1.1 {status}\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _chunked(*parts: bytes) -> bytes:
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


async def _post(client: http1.Client, url: str, **headers: str) -> tuple[int, bytes, http1.Headers]:
    response = await client.post(url, b'{"q": 1}', {"Content-Type": "application/json", **headers})
    async with response:
        return response.status, await response.read(), response.headers


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def _exchange(handler: Handler, **options: Any) -> tuple[int, bytes, http1.Headers]:
    """One POST to a server running ``handler``, its answer read whole, by a client with ``options``."""

    async def scenario() -> tuple[int, bytes, http1.Headers]:
        async with _Server(handler) as url:
            client = _client(**options)
            try:
                return await _post(client, url)
            finally:
                await client.close()

    return run(scenario())


# --- framing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pieces", [0, 1, 3])
def test_a_chunked_answer_arrives_whole_however_the_network_splits_it(pieces: int) -> None:
    words = [b"data: token-%d\n\n" % n for n in range(40)]

    async def scenario() -> list[bytes]:
        async with _Server(_answering(_chunked(*words), pieces=pieces)) as url:
            client = _client()
            response = await client.post(url, b"{}", {})
            async with response:
                received = [piece async for piece in response.iter_any()]
            await client.close()
            return received

    received = run(scenario())
    assert b"".join(received) == b"".join(words)
    if pieces:
        assert len(received) > len(words) // 2, "delivered as it arrived, not held until the end"


def test_an_answer_ended_by_the_close_is_whole_and_its_connection_not_reused() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nno length, ends with the connection"

    async def scenario() -> tuple[bytes, bytes, int]:
        server = _Server(_answering(answer, close=True))
        async with server as url:
            client = _client()
            first, second = (await _post(client, url))[1], (await _post(client, url))[1]
            await client.close()
            return first, second, server.connections

    first, second, connections = run(scenario())
    assert first == second == b"no length, ends with the connection"
    assert connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        _fixed(b'{"partial": tr', "Content-Type: application/json")[:-3],  # fewer bytes than announced
        _chunked(b"data: one\n\n", b"data: two\n\n")[:-7],  # the last chunk missing
    ],
    ids=["content-length", "chunked"],
)
def test_an_answer_cut_short_is_a_payload_error(answer: bytes) -> None:
    with pytest.raises(http1.PayloadError, match="before the answer's end"):
        _exchange(_answering(answer, close=True))


def test_an_answer_that_is_not_http_is_a_payload_error() -> None:
    with pytest.raises(http1.PayloadError, match="not valid HTTP"):
        _exchange(_answering(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))


def test_an_interim_answer_is_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + _fixed(b"final", "X-Kind: real")
    status, body, headers = _exchange(_answering(answer))
    assert (status, body, headers.get("x-kind")) == (200, b"final", "real")


def test_headers_are_read_in_any_case_and_repeated_ones_joined() -> None:
    answer = _fixed(b"{}", "Retry-After: 3", "X-Trace: a", "x-trace: b")
    headers = _exchange(_answering(answer))[2]
    assert headers.get("retry-after") == headers.get("RETRY-AFTER") == headers["Retry-After"] == "3"
    assert headers.get("X-Trace") == "a, b" and "x-TRACE" in headers


# --- compression ---------------------------------------------------------------------------------------

TEXT = b"a long answer, " * 400


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)[2:-4]),  # raw deflate, as some servers send it
    ],
    ids=["gzip", "deflate", "raw-deflate"],
)
def test_a_compressed_answer_is_decompressed_as_it_arrives(encoding: str, encoded: bytes) -> None:
    answer = _fixed(encoded, f"Content-Encoding: {encoding}")
    assert _exchange(_answering(answer, pieces=7))[1] == TEXT


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_answer_that_expands_without_bound_is_refused(encoding: str) -> None:
    """20 MB of zeros in ~20 KB: refused piece by piece, never decompressed into memory."""
    bomb = gzip.compress(bytes(20_000_000)) if encoding == "gzip" else zlib.compress(bytes(20_000_000), 9)
    with pytest.raises(http1.PayloadError, match="expands more than 100-fold"):
        _exchange(_answering(_fixed(bomb, f"Content-Encoding: {encoding}")))


def test_an_encoding_not_offered_is_a_payload_error() -> None:
    with pytest.raises(http1.PayloadError, match="'br', which was not offered"):
        _exchange(_answering(_fixed(b"\x1b\x00", "Content-Encoding: br")))


# --- the request -----------------------------------------------------------------------------------------


def test_the_request_names_the_path_host_length_and_offered_encodings() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _request(reader))
        writer.write(_fixed(b"{}"))
        await writer.drain()

    async def scenario() -> None:
        async with _Server(handle) as url:
            client = _client()
            response = await client.post(
                f"{url}?api-version=1", b'{"q": 1}', {"Api-Key": "k", "Host": "evil"}
            )
            async with response:
                await response.read()
            await client.close()

    run(scenario())
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat?api-version=1 HTTP/1.1"
    assert lines[1].startswith("Host: 127.0.0.1:") and "Host: evil" not in lines
    assert {
        "Api-Key: k",
        "Accept-Encoding: gzip, deflate",
        "Content-Length: 8",
        "User-Agent: agentstage-runtime",
    } <= set(lines)
    assert body == b'{"q": 1}'


@pytest.mark.parametrize("value", ["key\r\nX-Injected: 1", "key\nX", "key\x00"])
def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(value: str) -> None:
    server = _Server(_answering(_fixed(b"{}")))

    async def scenario() -> None:
        async with server as url:
            client = _client()
            try:
                await client.post(url, b"{}", {"Api-Key": value})
            finally:
                await client.close()

    with pytest.raises(ValueError, match="'Api-Key' holds a line break"):
        run(scenario())
    assert server.connections == 0


# --- the pool --------------------------------------------------------------------------------------------


def test_sequential_requests_share_one_connection_until_the_server_closes_it() -> None:
    answers = [_fixed(b"1"), _fixed(b"2"), _fixed(b"3", "Connection: close")]

    async def scenario() -> tuple[list[bytes], int]:
        server = _Server(_answering(*answers, close=True))
        async with server as url:
            client = _client()
            bodies = [(await _post(client, url))[1] for _ in range(3)]
            server.handler = _answering(_fixed(b"4"))
            bodies.append((await _post(client, url))[1])
            await client.close()
            return bodies, server.connections

    bodies, connections = run(scenario())
    assert bodies == [b"1", b"2", b"3", b"4"]
    assert connections == 2, "three answers on the first connection; its close sent the fourth to a new one"


def test_an_idle_connection_is_dropped_after_the_keepalive() -> None:
    async def scenario() -> int:
        server = _Server(_answering(_fixed(b"1"), _fixed(b"2")))
        async with server as url:
            client = _client(keepalive=0.05)
            await _post(client, url)
            await asyncio.sleep(0.1)
            server.handler = _answering(_fixed(b"2"))
            await _post(client, url)
            await client.close()
            return server.connections

    assert run(scenario()) == 2


def test_after_a_burst_the_connections_left_idle_are_closed_while_one_serves() -> None:
    closed = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal closed
        try:
            while True:
                await _request(reader)
                writer.write(_fixed(b"ok"))
                await writer.drain()
        except asyncio.IncompleteReadError:  # the client closed the connection
            closed += 1

    async def scenario() -> tuple[int, int]:
        server = _Server(handle)
        async with server as url:
            client = _client(keepalive=0.3)
            await asyncio.gather(*(_post(client, url) for _ in range(5)))
            for _ in range(7):  # one connection kept busy, the other four idle past the keep-alive
                await _post(client, url)
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.05)
            seen = closed
            await client.close()
            return server.connections, seen

    assert run(scenario()) == (5, 4)


def test_connections_left_idle_are_closed_though_no_request_comes() -> None:
    closed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(_fixed(b"ok"))
        await writer.drain()
        await reader.read()  # until the client closes the connection
        closed.set()

    async def scenario() -> bool:
        async with _Server(handle) as url:
            client = _client(keepalive=0.1)
            await _post(client, url)
            try:
                await asyncio.wait_for(closed.wait(), 2)
            finally:
                await client.close()
            return closed.is_set()

    assert run(scenario())


def test_an_answer_left_before_its_end_closes_its_connection() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nfirst half")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(b"second....")  # would be read as the next answer's start on a reused connection
        await writer.drain()
        await reader.read()

    async def scenario() -> tuple[bytes, bytes, int]:
        server = _Server(slow)
        async with server as url:
            client = _client()
            response = await client.post(url, b"{}", {})
            async with response:
                async for first in response.iter_any():
                    break  # the caller stops early
            server.handler = _answering(_fixed(b"next"))
            body = (await _post(client, url))[1]
            await client.close()
            return first, body, server.connections

    assert run(scenario()) == (b"first half", b"next", 2)


def test_requests_beyond_the_limit_wait_for_a_slot() -> None:
    open_now, most = 0, 0
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            while True:
                await _request(reader)
                await release.wait()
                writer.write(_fixed(b"ok"))
                await writer.drain()
        finally:
            open_now -= 1

    async def scenario() -> list[bytes]:
        async with _Server(handle) as url:
            client = _client(limit=2)
            calls = [asyncio.create_task(_post(client, url)) for _ in range(5)]
            await asyncio.sleep(0.2)
            release.set()
            bodies = [(await call)[1] for call in calls]
            await client.close()
            return bodies

    assert run(scenario()) == [b"ok"] * 5
    assert most == 2


# --- back-pressure, timeouts, cancellation --------------------------------------------------------------


def test_reading_pauses_while_the_caller_does_not_take_the_body() -> None:
    size = 16 * 1024 * 1024
    drained = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()
        drained.set()
        await reader.read()

    async def scenario() -> tuple[bool, int, int]:
        async with _Server(handle) as url:
            client = _client()
            response = await client.post(url, b"{}", {})
            async with response:
                await asyncio.sleep(0.3)
                held_back = not drained.is_set()
                buffered = response._buffered
                total = len(await response.read())
            await client.close()
            return held_back, buffered, total

    held_back, buffered, total = run(scenario())
    assert held_back, "the server could write 16 MB the caller never asked for"
    assert buffered < http1.BUFFERED_BYTES + 1024 * 1024
    assert total == size


def test_an_answer_that_stalls_times_out_per_read() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        _exchange(handle, read_timeout=0.2)


def test_an_answer_that_never_begins_times_out() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        _exchange(handle, read_timeout=0.2)


def test_a_cancelled_request_gives_its_slot_and_connection_back() -> None:
    async def scenario() -> tuple[bytes, int]:
        answered = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _request(reader)
            if not answered.is_set():  # the first request is never answered
                await asyncio.sleep(10)
            writer.write(_fixed(b"ok"))
            await writer.drain()

        server = _Server(handle)
        async with server as url:
            client = _client(limit=1)
            waiting = asyncio.create_task(_post(client, url))
            await asyncio.sleep(0.1)
            waiting.cancel()
            answered.set()
            body = (await asyncio.wait_for(_post(client, url), 2))[1]
            await client.close()
            return body, server.connections

    assert run(scenario()) == (b"ok", 2)


# --- connecting -------------------------------------------------------------------------------------------


def test_a_server_that_hangs_up_before_answering_is_disconnected() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)

    with pytest.raises(http1.Disconnected):
        _exchange(handle)


def test_a_refused_connection_is_a_connect_failure() -> None:
    async def scenario() -> None:
        listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        listener.close()
        await listener.wait_closed()
        client = _client()
        try:
            await client.post(f"http://127.0.0.1:{port}/v1", b"{}", {})
        finally:
            await client.close()

    with pytest.raises(http1.ConnectFailed, match="cannot connect to 127.0.0.1"):
        run(scenario())


@pytest.mark.parametrize("trusted", [True, False])
def test_tls_reaches_an_endpoint_whose_certificate_is_trusted_and_no_other(
    trusted: bool, tmp_path: Path
) -> None:
    ca_file, server_tls = tls_files(tmp_path, "localhost")
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await _request(reader)
        served += 1
        writer.write(_fixed(b"over tls"))
        await writer.drain()

    async def scenario() -> bytes:
        listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
        port = listener.sockets[0].getsockname()[1]
        context = ssl.create_default_context(cafile=str(ca_file) if trusted else None)
        client = http1.Client(ssl_context=context, connect_timeout=5, read_timeout=5, keepalive=4)
        try:
            return (await _post(client, f"https://localhost:{port}/v1"))[1]
        finally:
            await client.close()
            listener.close()

    if trusted:
        assert run(scenario()) == b"over tls"
    else:
        with pytest.raises(http1.ConnectFailed, match="certificate verify failed"):
            run(scenario())
        assert served == 0, "nothing is sent to an endpoint that could not prove who it is"


def test_a_proxy_that_refuses_the_tunnel_is_a_connect_failure() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        page = b"<html><body>Proxy authentication required</body></html>"
        writer.write(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: %d\r\n\r\n" % len(page) + page
        )
        await writer.drain()

    async def scenario() -> None:
        async with _Server(handle) as proxy_url:
            client = _client()
            proxy = http1.Proxy(proxy_url.removesuffix("/v1/chat"))
            try:
                await client.post("https://models.example.invalid/v1", b"{}", {}, proxy)
            finally:
                await client.close()

    with pytest.raises(http1.ConnectFailed, match="refused the tunnel to models.example.invalid:443.*407"):
        run(scenario())
