"""An HTTP/1.1 client for the model endpoints: POST a body, read the answer whole or as it streams.

Every governed call makes one model call, so the client's own CPU is on every request's path. This one,
built on asyncio's transports and httptools' C parser (the one uvicorn serves with), does what those calls
need and nothing else: a governed call costs the runtime ~0.13 ms less CPU than through aiohttp's session,
which it replaces (the README's runtime figures).

What it does:

- ``POST`` of a body held in memory (``Content-Length``), over TCP or TLS (the given context, SNI);
- answers framed by ``Content-Length``, chunked or ended by the connection's close; 1xx interim answers
  skipped; a body compressed with gzip or deflate (the request offers them, as aiohttp and httpx do)
  decompressed as it arrives, each piece refused past :data:`MAX_EXPANSION`;
- streamed bodies read as they arrive, with back-pressure: reading from the socket pauses while
  :data:`BUFFERED_BYTES` wait unread;
- one pool of keep-alive connections per origin (and proxy), closed after ``keepalive`` seconds idle (swept
  every ``keepalive`` while any are idle);
  a connection goes back to the pool only after its answer was read whole and the server keeps it open;
- a proxy: a plain HTTP request is sent to it in absolute form; an HTTPS one goes through a ``CONNECT``
  tunnel, then TLS with the endpoint inside it;
- timeouts per connect (TCP, TLS and the tunnel together) and per read (each wait for more of the answer);
- failures as three kinds the caller can act on: :class:`ConnectFailed` (nothing was sent),
  :class:`Disconnected` (the connection closed before the answer began: a pooled connection the server
  was closing, or a server that hangs up), :class:`PayloadError` (the answer is cut short or not HTTP).

Left out on purpose: redirects (a model endpoint does not redirect a POST), cookies, HTTP/2, request bodies
streamed from elsewhere.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httptools

BUFFERED_BYTES = 256 * 1024
"""Unread body bytes at which reading from the connection pauses (it resumes once they are taken)."""

MAX_EXPANSION = 100
"""How far each piece of a compressed answer may expand (plus 64 KiB): JSON and event streams compress about
tenfold; a body that expands further is refused, not decompressed into memory (a decompression bomb)."""

_CONNECT_REPLY_LIMIT = 64 * 1024
"""The most a proxy's answer to ``CONNECT`` may hold before its blank line."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SKIPPED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_DEFAULT_HEADERS = (("User-Agent", "agentstage-runtime"), ("Accept-Encoding", "gzip, deflate"))
_LINE_BREAK = re.compile(r"[\r\n\0]")


class HttpError(Exception):
    """A request failed below HTTP's own answers (those are :class:`Response` statuses)."""


class ConnectFailed(HttpError):
    """The endpoint (or the proxy before it) could not be reached: nothing was sent."""


class Disconnected(HttpError):
    """The connection closed before the answer began."""


class PayloadError(HttpError):
    """The answer is cut short, or is not HTTP/1.1."""


@dataclass(frozen=True)
class Proxy:
    """The proxy a request goes through, and the headers only the proxy reads: ``tunnel_headers`` on the
    ``CONNECT`` of an HTTPS request, ``request_headers`` on a plain HTTP request (which the proxy forwards)."""

    url: str
    tunnel_headers: Mapping[str, str] = field(default_factory=dict)
    request_headers: Mapping[str, str] = field(default_factory=dict)


class Headers(dict[str, str]):
    """An answer's headers by lower-case name (repeated ones joined with ``, ``); ``get`` takes any case."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


@dataclass(frozen=True)
class _Target:
    """Where a request's connection goes, and what its first line names."""

    scheme: str
    host: str
    port: int
    path: str  # what the request line names: the path and query, or the whole URL through a plain proxy
    authority: str  # the Host header
    pool_key: tuple[str, ...]
    proxy: Proxy | None


def _target(url: str, proxy: Proxy | None) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    authority = _authority(host, port) if port != _DEFAULT_PORTS[parts.scheme] else _authority(host)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if proxy is not None and parts.scheme == "http":
        path = f"http://{authority}{path}"
    key = (parts.scheme, host, str(port), proxy.url if proxy else "")
    return _Target(parts.scheme, host, port, path, authority, key, proxy)


def _authority(host: str, port: int | None = None) -> str:
    """``host[:port]`` as a request names it (an IPv6 address in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


class Response:
    """An answer: ``status`` and ``headers`` at once, the body as it arrives (:meth:`iter_any`) or whole
    (:meth:`read`). Leaving its ``async with`` returns the connection to the pool when the body was read
    whole, else closes it."""

    def __init__(self, connection: _Connection, read_timeout: float) -> None:
        self.status = 0
        self.headers = Headers()
        self._connection = connection
        self._read_timeout = read_timeout
        self._head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._error: HttpError | None = None
        self._decoder: Any = None
        self._released = False

    async def read(self) -> bytes:
        """The whole body; taken at once when all of it has arrived (a model's answer mostly has, with its
        head), without an iteration to set up and drive."""
        if not (self._complete and self._error is None):
            return b"".join([chunk async for chunk in self.iter_any()])
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._connection.resume_reading()
        return body

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, in pieces of whatever size the network gave."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered < BUFFERED_BYTES:
                    self._connection.resume_reading()
                yield chunk
            elif self._error is not None:
                raise self._error
            elif self._complete:
                return
            else:
                self._waiter = asyncio.get_running_loop().create_future()
                async with asyncio.timeout(self._read_timeout):
                    await self._waiter

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    def release(self) -> None:
        """Give the connection back (its answer read whole, the server keeping it open) or close it."""
        if not self._released:
            self._released = True
            self._connection.finished(self, reusable=self._complete and not self._chunks)

    # --- fed by the connection ---------------------------------------------------------------------

    async def _wait_head(self) -> None:
        async with asyncio.timeout(self._read_timeout):
            await self._head

    def _headers_complete(self, status: int, headers: Headers) -> None:
        self.status, self.headers = status, headers
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = _Deflate()
        elif encoding != "identity":
            self._fail(PayloadError(f"the answer is encoded with {encoding!r}, which was not offered"))
            return
        if not self._head.done():
            self._head.set_result(None)

    def _body(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data, MAX_EXPANSION * len(data) + 65536)
            except zlib.error as error:
                self._fail(PayloadError(f"the answer's compressed body is corrupt: {error}"))
                return
            if self._decoder.unconsumed_tail:
                self._fail(
                    PayloadError(f"the answer's compressed body expands more than {MAX_EXPANSION}-fold")
                )
                return
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered >= BUFFERED_BYTES:
                self._connection.pause_reading()
            self._wake()

    def _finish(self) -> None:
        if self._decoder is not None:
            try:
                tail = self._decoder.flush()
            except zlib.error as error:
                self._fail(PayloadError(f"the answer's compressed body is corrupt: {error}"))
                return
            if tail:
                self._chunks.append(tail)
        self._complete = True
        self._wake()

    def _fail(self, error: HttpError) -> None:
        if self._complete or self._error is not None:
            return
        self._error = error
        if not self._head.done():
            self._head.set_exception(error)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped, or (against the RFC, but common) raw."""

    def __init__(self) -> None:
        self._inner: Any = None
        self._head = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            wrapped = (self._head[0] & 0x0F) == 8 and int.from_bytes(self._head[:2], "big") % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            data, self._head = self._head, b""
        return bytes(self._inner.decompress(data, max_length))

    @property
    def unconsumed_tail(self) -> bytes:
        return bytes(self._inner.unconsumed_tail) if self._inner is not None else b""

    def flush(self) -> bytes:
        return bytes(self._inner.flush()) if self._inner is not None else b""


class _Connection(asyncio.Protocol):
    """One connection: answers parsed as they arrive and handed to the :class:`Response` being read."""

    def __init__(self, pool: Client, key: tuple[str, ...]) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._response: Response | None = None
        self._header_names: list[bytes] = []
        self._header_values: list[bytes] = []
        self._keep_alive = False
        self._paused = False
        self._tunnel: asyncio.Future[bytes] | None = None
        self._tunnel_reply = b""

    # --- asyncio's side ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel_data(data)
            return
        if self._response is None:  # nothing asked: a server speaking out of turn
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._response._fail(PayloadError(f"the answer is not valid HTTP/1.1: {error}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close: a half-closed connection is of no further use

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel.set_exception(ConnectFailed("the proxy closed the connection during CONNECT"))
        response = self._response
        if response is None or response._complete:
            return
        if not response._head.done():
            response._fail(Disconnected("the connection closed before the answer began"))
        elif self._ends_with_close(response.headers):
            response._finish()
        else:
            response._fail(PayloadError("the connection closed before the answer's end"))

    # --- httptools' side -----------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_names.append(name)
        self._header_values.append(value)

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self._header_names.clear()
            self._header_values.clear()
            return
        headers = Headers()
        for raw_name, raw_value in zip(self._header_names, self._header_values, strict=True):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{dict.__getitem__(headers, name)}, {value}" if name in headers else value
        self._header_names.clear()
        self._header_values.clear()
        assert self._response is not None
        self._response._headers_complete(status, headers)

    def on_body(self, body: bytes) -> None:
        assert self._response is not None
        self._response._body(body)

    def on_message_complete(self) -> None:
        response = self._response
        assert response is not None
        if not response._head.done():  # the end of an interim answer
            return
        self._keep_alive = self._parser.should_keep_alive()
        response._finish()

    # --- the client's side ---------------------------------------------------------------------------

    def send(self, head: bytes, body: bytes, read_timeout: float) -> Response:
        """Write a request; its :class:`Response` is returned at once (its head arrives later)."""
        assert self.transport is not None
        response = self._response = Response(self, read_timeout)
        self._keep_alive = False
        self.transport.write(head + body)
        return response

    async def tunnel(self, authority: str, headers: Mapping[str, str]) -> None:
        """Ask the proxy for a tunnel to ``authority`` (``CONNECT``); :class:`ConnectFailed` unless it says
        2xx."""
        assert self.transport is not None
        self._tunnel = asyncio.get_running_loop().create_future()
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            reply = await self._tunnel
        finally:
            self._tunnel, self._tunnel_reply = None, b""
        head, _, rest = reply.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].startswith("2"):
            raise ConnectFailed(f"the proxy refused the tunnel to {authority}: {status_line[:200]!r}")
        if rest:  # the endpoint speaks second in TLS: bytes before it began are not a tunnel's
            raise ConnectFailed(f"the proxy's tunnel to {authority} sent data before TLS began")

    def _tunnel_data(self, data: bytes) -> None:
        assert self._tunnel is not None
        if self._tunnel.done():
            return
        self._tunnel_reply += data
        if b"\r\n\r\n" in self._tunnel_reply:
            self._tunnel.set_result(self._tunnel_reply)
        elif len(self._tunnel_reply) > _CONNECT_REPLY_LIMIT:
            self._tunnel.set_exception(ConnectFailed("the proxy's answer to CONNECT has no end"))

    def finished(self, response: Response, *, reusable: bool) -> None:
        """The caller is done with ``response``: pool the connection if it can carry another request."""
        if response is not self._response:
            return
        self._response = None
        self._pool._slots.release()
        if reusable and self._keep_alive and not self.closed:
            self.resume_reading()
            self._pool._put_back(self)
        else:
            self.close()

    def abandon(self) -> None:
        """The request failed before its answer was handed out: close, and give its slot back."""
        if self._response is not None:
            self._response._released = True
            self._response = None
        self._pool._slots.release()
        self.close()

    def pause_reading(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    @staticmethod
    def _ends_with_close(headers: Headers) -> bool:
        """Whether the answer's body is framed by the connection's close (no length, not chunked)."""
        return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")


class Client:
    """Pooled connections to the endpoints of one event loop (see the module docstring)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        connect_timeout: float,
        read_timeout: float,
        keepalive: float,
        limit: int = 1000,
    ) -> None:
        self._ssl = ssl_context
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keepalive = keepalive
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[tuple[str, ...], collections.deque[_Connection]] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self.closed = False

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], proxy: Proxy | None = None
    ) -> Response:
        """Send ``body`` to ``url``; the answer once its head arrived. Read it inside ``async with``.

        ``ValueError`` for a URL that is not http(s); the :class:`HttpError` kinds or ``TimeoutError`` for
        the request's failures. At most ``limit`` requests are in flight at once; the others wait."""
        if self.closed:
            raise RuntimeError("the HTTP client is closed")
        target = _target(url, proxy)
        head = _request_head(target, headers, len(body))
        await self._slots.acquire()  # given back when the answer is released (_Connection.finished)
        connection: _Connection | None = None
        try:
            connection = self._pooled(target.pool_key) or await self._connect(target)
            response = connection.send(head, body, self._read_timeout)
            await response._wait_head()
        except BaseException:
            if connection is None:
                self._slots.release()
            else:
                connection.abandon()
            raise
        return response

    async def close(self) -> None:
        self.closed = True
        if self._sweep is not None:
            self._sweep.cancel()
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _pooled(self, key: tuple[str, ...]) -> _Connection | None:
        """The most recently used idle connection to ``key`` still open and fresh; older ones are closed."""
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self._keepalive:
                return connection
            connection.close()
        return None

    def _put_back(self, connection: _Connection) -> None:
        """Pool ``connection``, and close the idle ones past the keep-alive at the other end of its stack
        (requests take the freshest, so after a burst the oldest would otherwise wait there)."""
        if self.closed:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle = self._idle.setdefault(connection.key, collections.deque())
        self._close_expired(idle)
        idle.append(connection)
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self._keepalive, self._swept)

    def _close_expired(self, idle: collections.deque[_Connection]) -> None:
        """Close the connections at the old end of ``idle`` that are closed or past the keep-alive."""
        now = time.monotonic()
        while idle and (idle[0].closed or now - idle[0].idle_since >= self._keepalive):
            idle.popleft().close()

    def _swept(self) -> None:
        """Every keep-alive while connections are idle: close the expired ones, though no request comes (a
        process gone quiet would otherwise hold its last burst's connections until the servers close them)."""
        self._sweep = None
        for idle in self._idle.values():
            self._close_expired(idle)
        if any(self._idle.values()):
            self._sweep = asyncio.get_running_loop().call_later(self._keepalive, self._swept)

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        proxy = urlsplit(target.proxy.url) if target.proxy else None
        host, port, tls = (
            (target.host, target.port, target.scheme == "https")
            if proxy is None
            else (
                proxy.hostname or "",
                proxy.port or _DEFAULT_PORTS.get(proxy.scheme, 80),
                proxy.scheme == "https",
            )
        )
        connection = _Connection(self, target.pool_key)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(
                    lambda: connection,
                    host,
                    port,
                    ssl=self._ssl if tls else None,
                    server_hostname=host if tls else None,
                )
                if proxy is not None and target.scheme == "https":
                    assert target.proxy is not None
                    await connection.tunnel(_authority(target.host, target.port), target.proxy.tunnel_headers)
                    assert connection.transport is not None
                    connection.transport = await loop.start_tls(  # type: ignore[assignment]
                        connection.transport, connection, self._ssl, server_hostname=target.host
                    )
        except OSError as error:  # refused, unresolvable, TLS refused or unverified
            connection.close()
            where = f"the proxy {proxy.hostname}:{port}" if proxy else f"{host}:{port}"
            raise ConnectFailed(f"cannot connect to {where}: {error}") from error
        except BaseException:
            connection.close()
            raise
        return connection


def _request_head(target: _Target, headers: Mapping[str, str], length: int) -> bytes:
    """The request line and headers; ``ValueError`` for a header that would end the line it is on (a line
    break in a credential read from a file would otherwise let its rest pass as headers of its own)."""
    fields = [(name, value) for name, value in headers.items() if name.lower() not in _SKIPPED_HEADERS]
    if target.proxy is not None and target.scheme == "http":
        fields += target.proxy.request_headers.items()
    given = {name.lower() for name, _ in fields}
    fields += [(name, value) for name, value in _DEFAULT_HEADERS if name.lower() not in given]
    for name, value in fields:
        if _LINE_BREAK.search(name) or _LINE_BREAK.search(value):
            raise ValueError(
                f"the request header {name.strip()!r} holds a line break or NUL: remove it from its setting"
            )
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.authority}"]
    lines += [f"{name}: {value}" for name, value in fields]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
