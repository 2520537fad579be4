"""The two clients of the runtime benchmark: ``wrk`` for request rates under load, and a plain
``http.client`` loop for sequential latency and time to first token.

``wrk`` (C, epoll) drives the load because a Python client saturates at 500-750 req/s here and would
measure itself. Sequential requests are timed by one ``http.client`` connection per side, the sides taking
turns request by request: slow, but it costs the same on both sides of a comparison, and time to first
token needs the arrival of one SSE chunk, which ``wrk`` cannot see.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPTS = Path(__file__).resolve().parent / "wrk"
CHAT_SCRIPT = WRK_SCRIPTS / "chat.lua"
INVOKE_SCRIPT = WRK_SCRIPTS / "invoke.lua"
STREAM_BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "hello from the benchmark"}], "stream": True}
).encode()
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    """Non-2xx/3xx responses plus socket errors (connect, read, write, timeout)."""


def wrk(url: str, script: Path, script_args: Sequence[str], connections: int, seconds: int) -> WrkResult:
    """``wrk`` against ``url`` for ``seconds``; a response slower than 10 s counts as an error."""
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    command += ["-s", str(script), url, "--", *script_args]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return WrkResult(
        rps=float(_find(r"Requests/sec:\s+([\d.]+)", out)[0]),
        p50_ms=_percentile_ms("50", out),
        p99_ms=_percentile_ms("99", out),
        requests=int(_find(r"(\d+) requests in", out)[0]),
        errors=_errors(out),
    )


def _percentile_ms(label: str, out: str) -> float:
    value, unit = _find(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", out)
    return float(value) * _UNIT_MS[unit]


def _errors(out: str) -> int:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)


def _find(pattern: str, text: str) -> tuple[str, ...]:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{text}")
    return match.groups()


CHAT_BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "hello from the benchmark"}]}
).encode()


def invoke_body(conversation_id: str) -> bytes:
    """The invoke route's body, in a conversation of its own (as ``wrk/invoke.lua`` sends it)."""
    return json.dumps({"input": "hello from the benchmark", "conversation_id": conversation_id}).encode()


class Client:
    """Requests one at a time over one keep-alive connection, each timed. The same code talks to the runtime
    and to the model server, so its own cost cancels out of their difference.

    Sequential latency is measured here rather than with ``wrk -c1``: ``wrk``'s percentiles at one
    connection carry stalls of its own (the bare model server, 0.12 ms at p50, read 1.5-35 ms at p99 from one
    run to the next), which would be charged to whichever side they happened to fall on."""

    def __init__(self, port: int, key: str) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self._headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def latency_ms(self, path: str, body: bytes) -> float:
        """From sending the request to the last byte of its (200) response."""
        started = time.perf_counter()
        self._connection.request("POST", path, body, self._headers)
        response = self._connection.getresponse()
        content = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path} answered {response.status}: {content[:300]!r}")
        return (time.perf_counter() - started) * 1000

    def time_to_first_token_ms(self) -> float:
        """From sending the request to the first ``data:`` chunk whose delta carries content; the rest of
        the stream is read too, so the connection is ready for the next request."""
        started = time.perf_counter()
        self._connection.request("POST", "/v1/chat/completions", STREAM_BODY, self._headers)
        response = self._connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"streamed request answered {response.status}: {response.read()[:300]!r}")
        first: float | None = None
        for line in iter(response.readline, b""):
            if first is None and _carries_content(line):
                first = time.perf_counter()
        if first is None:
            raise RuntimeError("the stream ended without a content chunk")
        return (first - started) * 1000

    def close(self) -> None:
        self._connection.close()


def _carries_content(line: bytes) -> bool:
    if not line.startswith(b"data:"):
        return False
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return False
    choices = json.loads(payload).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


def alternating(measures: Sequence[Callable[[], float]], count: int, warm_up: int = 20) -> list[list[float]]:
    """``count`` samples of each measure, taking turns so that drifting machine load hits every side alike;
    the first ``warm_up`` rounds are not kept."""
    samples: list[list[float]] = [[] for _ in measures]
    for round_number in range(warm_up + count):
        for measure, kept in zip(measures, samples, strict=True):
            value = measure()
            if round_number >= warm_up:
                kept.append(value)
    return samples


def percentile(samples: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]
