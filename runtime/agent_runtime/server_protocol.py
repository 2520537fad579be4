"""The HTTP/1.1 protocol the container serves the runtime with: uvicorn's httptools protocol, with the request
head (request line and headers) bounded in size and in time, and the body in time.

uvicorn bounds neither when it parses with httptools (its h11 protocol bounds the size only). Measured with
uvicorn 0.55: one client sending a 200 MB header held the worker's event loop for 40 s of CPU (the parser's
buffer grows by copying), and every other request of that worker waited; a client sending a header byte now
and then keeps its connection for ever (uvicorn's keep-alive timer stops at the first byte). The serverless
hosts' front doors bound both (API Gateway, the Functions host), but a cluster's Service can be reached
without a proxy in front.

:class:`BoundedHttpToolsProtocol` answers a head longer than :data:`MAX_HEAD_BYTES` with 431 and one still
incomplete :data:`HEAD_TIMEOUT_SECONDS` after its first byte with 408, in the API's error format, and closes
the connection. The body is bounded in size by the API (413), but not in time by uvicorn either: a request
declaring ``Content-Length: 100`` and sending one byte held its connection, a file descriptor and a task for
ever, before anyone was authenticated (1,000 such connections took a worker from 29 to 1,029 descriptors;
past its descriptor limit every other caller's request failed). A body not complete
:data:`BODY_TIMEOUT_SECONDS` after its head is answered 408 the same way, or the connection is closed if a
response has begun. A request that arrives in one read - every ordinary request - costs a few attribute
writes and tests; a timer is armed only for a head or body a read left incomplete. A connection that sends
nothing at all is left to the platform (its ingress or load balancer closes idle connections).

    uvicorn agent_runtime.api:serve_app --factory --http agent_runtime.server_protocol:BoundedHttpToolsProtocol
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
"""A request line and headers longer than this are refused (431): nginx allows 32 KiB of headers by default,
Envoy 60 KiB, Node.js 16 KiB; a bearer token with many claims is a few KiB. A head is measured from the read
after the one it began in, so up to one read (256 KiB) more can pass before the refusal."""

HEAD_TIMEOUT_SECONDS = 30.0
"""A head not complete this long after its first byte is refused (408)."""

BODY_TIMEOUT_SECONDS = 30.0
"""A body not complete this long after its head is refused (408): the largest body the API takes
(``AGENTSTAGE_MAX_REQUEST_BYTES``, 1 MiB by default) arrives within it at 35 KB/s."""

LINGER_SECONDS = 2.0
"""After a refusal, how long what the client still sends is read and dropped before the connection closes.
Closed at once, the kernel would answer the unread bytes with a reset, which may discard the refusal before
the client reads it (nginx's lingering close, for the same reason)."""

SERVER_PROTOCOL = f"{__name__}:BoundedHttpToolsProtocol"
"""uvicorn's ``--http`` value for this protocol."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head too long or too slow, and a body too slow (see
    the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = False  # a request began and its headers are not complete yet
        self._head_began_in_read = False  # ... and it began in the read being parsed
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_open = False  # the head is complete, the body is not
        self._body_timer: asyncio.TimerHandle | None = None
        self._lingering = False

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a refused request, dropped unparsed
        self._head_began_in_read = False
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._body_open and self._body_timer is None:
            self._body_timer = self.loop.call_later(BODY_TIMEOUT_SECONDS, self._body_timed_out)
        if not self._head_open:
            return
        # Where a head began within the read is not known: it is counted from the next read on.
        if not self._head_began_in_read:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(
                    431,
                    "headers_too_large",
                    f"the request line and headers exceed {MAX_HEAD_BYTES // 1024} KiB; send less in them "
                    "(large values belong in the body)",
                )
                return
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = self._head_began_in_read = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._body_open = True
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_open = False
        self._cancel_body_timer()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head_open and not self.transport.is_closing():
            self._refuse(
                408,
                "request_timeout",
                f"the request line and headers did not arrive within {HEAD_TIMEOUT_SECONDS:g} s",
            )

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if not self._body_open or self.transport.is_closing():
            return
        self._body_open = False
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # no answer can be written into a response under way
            return
        # The app waits on the body's next part, which never comes: the refusal is the only writer, and
        # the app sees the client gone when the connection closes.
        self._refuse(
            408, "request_timeout", f"the request body did not arrive within {BODY_TIMEOUT_SECONDS:g} s"
        )

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` in the API's error format and close the connection, lingering (see
        :data:`LINGER_SECONDS`); the rest of the request is never parsed."""
        self._head_open = self._body_open = False
        self._cancel_head_timer()
        self._cancel_body_timer()
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"content-type: application/json\r\nconnection: close\r\n")
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        if not self.transport.can_write_eof():  # TLS: no half-close
            self.transport.close()
            return
        self.transport.write_eof()
        self._lingering = True
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
