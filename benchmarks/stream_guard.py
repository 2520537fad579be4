"""Benchmark: what the streaming leak guard costs, side by side with the guard off, in one run.

Two runtimes, one uvicorn worker each, identical but for ``AGENTSTAGE_OUTPUT_LEAKAGE`` (``redact`` and
``off``), stream the same answer from the scripted model server: about 1,400 characters of prose holding an
e-mail address, a card number and an API key, sent in 1-4 character pieces as real models stream tokens,
as fast as the model server can. Requests alternate between the two runtimes. Printed:

* first visible token: request to the first non-empty content chunk, p50 of each; and the delay the guard
  adds *beyond its held-back window*: the guarded stream's first chunk carries the first P characters,
  compared with the moment the unguarded stream had delivered those same P characters. Target <= 1 ms.
* whole stream: p50 duration of each, and the difference per model chunk.
* in process: the guard's own cost per fed chunk (mean, p50, p99) and redacting the whole answer at once.

Run: ``.venv/bin/python benchmarks/stream_guard.py [--requests 200]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness import RUNTIME, free_port, model_command, process, uvicorn_command, wait_for_200, wait_for_model

sys.path.insert(0, str(RUNTIME))
from agent_runtime.governance.redaction import Redactor
from agent_runtime.governance.stream_redaction import StreamingRedaction

KEY = "bench-key-0123456789"
SENTENCES = [
    "The quarterly report is ready and the figures look better than the forecast suggested.",
    "Revenue grew in every region, with the strongest gains in the north and the east.",
    "Please send any questions to ada.lovelace@example.com before Friday.",
    "The refund of 42.50 was charged back to the card 4111 1111 1111 1111 yesterday.",
    "Operations used the key sk-proj-Q7vN2mXk9LpR4tW8yZ1aB3cD5eF6gH for the nightly export.",
    "Next quarter we expect steady demand and a modest rise in costs for cloud services.",
]
ANSWER = " ".join(SENTENCES * 3)
_SIZES = random.Random(2026)
CHUNKS = tuple(_SIZES.randint(1, 4) for _ in range(97))


def runtime_env(model_url: str, state: Path, leakage: str) -> dict[str, str]:
    settings = {
        "LLM_ENDPOINT": model_url,
        "LLM_AUTH": "none",
        "API_KEY": KEY,
        "SQLITE_PATH": str(state / f"{leakage}.db"),
        "AGENTS": json.dumps([{"name": "bench", "instructions": "Be brief."}]),
        "OUTPUT_LEAKAGE": leakage,
    }
    return {**os.environ, **{f"AGENTSTAGE_{name}": value for name, value in settings.items()}}


def stream_once(client: httpx.Client, url: str) -> tuple[float, list[tuple[int, float]], float]:
    """Seconds to the first content, (characters so far, seconds) per content chunk, seconds to the end."""
    body = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "report"}]}
    arrivals: list[tuple[int, float]] = []
    received = 0
    started = time.perf_counter()
    with client.stream("POST", url, json=body, headers={"Authorization": f"Bearer {KEY}"}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            content = chunk["choices"][0]["delta"].get("content") if chunk.get("choices") else None
            if content:
                received += len(content)
                arrivals.append((received, time.perf_counter() - started))
    return arrivals[0][1], arrivals, time.perf_counter() - started


def reached(arrivals: list[tuple[int, float]], characters: int) -> float:
    """When a stream had delivered at least ``characters``."""
    return next(seconds for count, seconds in arrivals if count >= characters)


def in_process(rounds: int) -> tuple[float, float, float, float, int]:
    """The guard alone, µs per fed chunk (mean, p50, p99), µs to redact the whole answer, chunks per answer."""
    streaming = StreamingRedaction(Redactor())
    pieces, position = [], 0
    while position < len(ANSWER):
        size = CHUNKS[len(pieces) % len(CHUNKS)]
        pieces.append(ANSWER[position : position + size])
        position += size
    per_chunk: list[float] = []
    for _ in range(rounds):
        stream = streaming.stream()
        for piece in pieces:
            started = time.perf_counter()
            stream.feed(piece)
            per_chunk.append(time.perf_counter() - started)
        stream.finish()
    whole = []
    for _ in range(rounds):
        started = time.perf_counter()
        streaming.redactor.redact(ANSWER)
        whole.append(time.perf_counter() - started)
    cuts = statistics.quantiles(per_chunk, n=100)
    mean = statistics.fmean(per_chunk)
    return mean * 1e6, cuts[49] * 1e6, cuts[98] * 1e6, statistics.median(whole) * 1e6, len(pieces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="streamed requests per runtime")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        script = state / "script.json"
        script.write_text(json.dumps({"rules": [{"reply": ANSWER, "chunk_sizes": CHUNKS}]}))
        model_port = free_port()
        ports = {"redact": free_port(), "off": free_port()}
        model_url = f"http://127.0.0.1:{model_port}/v1"
        with process(model_command(model_port, script)):
            wait_for_model(f"{model_url}/chat/completions")
            command = {
                mode: uvicorn_command(port, 1, "agent_runtime.api:serve_app", True)
                for mode, port in ports.items()
            }
            with (
                process(command["redact"], runtime_env(model_url, state, "redact")),
                process(command["off"], runtime_env(model_url, state, "off")),
                httpx.Client(timeout=30) as client,
            ):
                urls = {mode: f"http://127.0.0.1:{port}/v1/chat/completions" for mode, port in ports.items()}
                for mode, port in ports.items():
                    wait_for_200(f"http://127.0.0.1:{port}/healthz")
                    for _ in range(10):  # warm up: connections, the stores, the first window
                        stream_once(client, urls[mode])
                runs: dict[str, list[tuple[float, list[tuple[int, float]], float]]] = {
                    "redact": [],
                    "off": [],
                }
                for _ in range(args.requests):  # alternating, so drifting machine load hits both alike
                    for mode in ("redact", "off"):
                        runs[mode].append(stream_once(client, urls[mode]))

    first = {mode: statistics.median(run[0] for run in runs[mode]) for mode in runs}
    total = {mode: statistics.median(run[2] for run in runs[mode]) for mode in runs}
    released_first = statistics.median(run[1][0][0] for run in runs["redact"])
    unguarded_same_text = statistics.median(reached(run[1], int(released_first)) for run in runs["off"])
    mean, p50, p99, whole, chunks = in_process(rounds=200)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}, Python {platform.python_version()}"
    )
    print(
        f"answer: {len(ANSWER)} characters in {chunks} model chunks of 1-4 characters; "
        f"{args.requests} streamed requests per runtime, alternating"
    )
    rows = [
        (
            "first visible token (p50)",
            f"guard on {first['redact'] * 1000:.2f} ms, off {first['off'] * 1000:.2f} ms",
            f"first chunk holds {released_first:.0f} characters",
        ),
        (
            "added beyond the held-back window (p50)",
            f"{(first['redact'] - unguarded_same_text) * 1000:.2f} ms",
            "vs. the unguarded stream reaching the same text (target <= 1 ms)",
        ),
        (
            "whole stream (p50)",
            f"guard on {total['redact'] * 1000:.2f} ms, off {total['off'] * 1000:.2f} ms",
            f"{(total['redact'] - total['off']) / chunks * 1e6:.1f} us added per model chunk",
        ),
        (
            "guard in process, per chunk",
            f"mean {mean:.1f} us, p50 {p50:.1f} us, p99 {p99:.1f} us",
            f"redacting the whole answer at once: {whole:.0f} us",
        ),
    ]
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)))


if __name__ == "__main__":
    main()
