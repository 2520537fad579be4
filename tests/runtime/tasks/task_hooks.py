"""A task callback receiver on loopback for the tests that check a finished task still calls back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Hook:
    """Records every POSTed task view (``posts``); the first ``stall`` POSTs are held ``stall_seconds``
    before their answer, so a test can kill the worker posting one. ``posted`` is set on the first POST."""

    def __init__(self, stall: int = 0, stall_seconds: float = 0.0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.posted = threading.Event()
        self._stall, self._stall_seconds = stall, stall_seconds
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append(json.loads(body))
                hook.posted.set()
                if len(hook.posts) <= hook._stall:
                    time.sleep(hook._stall_seconds)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def hook(stall: int = 0, stall_seconds: float = 0.0) -> Iterator[Hook]:
    receiver = Hook(stall, stall_seconds)
    try:
        yield receiver
    finally:
        receiver.close()


LOOPBACK_CALLBACKS = {"http_allowed_hosts": ["127.0.0.1"], "http_allow_loopback": True}
"""The settings that let a task call back a receiver on loopback."""
