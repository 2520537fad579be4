"""The ``resolver`` fixture: host names that answer with the addresses a test gives, without the network.

It is the only way to make a name resolve to the cloud's metadata address, a private address, a rebinding
pair (public first, private next) or IPv6 first on loopback: what the outbound guard
(``agent_runtime.outbound.pinned_stream``) must refuse or step past. The guard asks the event loop's
``getaddrinfo``, which calls ``socket.getaddrinfo`` (looked up at each call) in a thread: that is what is
replaced, for this test only. Every name not given an answer still resolves as usual.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest


class Resolver:
    def __init__(self) -> None:
        self.asked: list[str] = []  # the lookups of the names given answers, in order
        self._answers: dict[str, list[tuple[str, ...]]] = {}
        self._resolve = socket.getaddrinfo

    def answer(self, host: str, *addresses: str) -> None:
        """``host``'s next lookup answers ``addresses`` in this order (none: the name does not resolve); each
        call gives the answer to one more lookup, and the last one given answers every later lookup."""
        self._answers.setdefault(host, []).append(addresses)

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in self._answers:
            return self._resolve(host, port, *args, **kwargs)
        answers = self._answers[host]
        addresses = answers[min(self.asked.count(host), len(answers) - 1)]
        self.asked.append(host)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))
            for address in addresses
        ]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    stub = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", stub.getaddrinfo)  # put back after the test
    return stub
