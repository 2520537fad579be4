"""Benchmark: the agent runtime against the scripted model server it calls, side by side, in one run.

Three measurements, printed as one table:

* added latency: ``POST /v1/chat/completions`` through the runtime (budgets on the SQLite ledger, injection
  screening, output redaction, OTLP tracing to a local sink, the SQLite stores open) against the same body
  sent straight to the model server; ``wrk`` with one connection, percentiles from its latency
  distribution. Target: p50 <= 1 ms and p99 <= 3 ms added.
* throughput: the runtime (uvicorn workers, uvloop + httptools) with the model server as the stub,
  ``wrk`` with 64 connections. Target >= 1,000 req/s. "Stubbed" means the in-repo scripted model server
  (``python -m agent_runtime.testing``: one uvicorn process, Starlette, a canned echo answer with usage), a
  real HTTP server on loopback that shares the two cores with the runtime and ``wrk``; its throughput alone
  is printed beside the runtime's.
* cold start: process spawn to the first 200 of ``/healthz``, the runtime against a bare FastAPI app that
  imports openai (``benchmarks/bare_app.py``), medians of alternating rounds. Target ratio <= 1.3.

``wrk`` (Debian package) drives load: a Python client saturates at 500-750 req/s here and would measure
itself; ``make bench-runtime`` installs it (``scripts/install-system-deps.sh bench``) and runs this. Run by
hand: ``.venv/bin/python benchmarks/runtime_latency.py [--seconds 10] [--workers 2] [--rounds 5]``;
``--runtime DIR`` measures another checkout's ``runtime/`` directory (a before/after comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness import (
    ROOT,
    RUNTIME,
    free_port,
    model_command,
    process,
    uvicorn_command,
    wait_for_200,
    wait_for_model,
)

KEY = "bench-key-0123456789"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello from the benchmark"}]}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


class _Sink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and drops them: the runtime pays for tracing, nobody stores it."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def runtime_env(model_url: str, sink_url: str, state: Path) -> dict[str, str]:
    settings = {
        "LLM_ENDPOINT": model_url,
        "LLM_AUTH": "none",
        "AUTH_MODE": "api_key",
        "API_KEY": KEY,
        "SQLITE_PATH": str(state / "state.db"),
        "AGENTS": json.dumps([{"name": "bench", "instructions": "Be brief."}]),
        "BUDGETS": json.dumps(
            [
                {
                    "name": "tenant",
                    "scope": "tenant",
                    "window_seconds": 3600,
                    "tokens": 10**12,
                    "requests": 10**9,
                }
            ]
        ),
        "MODEL_PRICES": json.dumps({"gpt-4o-mini": {"input": 0.15, "output": 0.6}}),
        "TELEMETRY_EXPORTER": "otlp",
        "OTLP_ENDPOINT": sink_url,
    }
    return {**os.environ, **{f"AGENTSTAGE_{name}": value for name, value in settings.items()}}


def wrk(url: str, connections: int, seconds: int, script: Path) -> dict[str, float]:
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {"rps": float(_find(r"Requests/sec:\s+([\d.]+)", out)[0])}
    for label in ("50", "99"):
        value, unit = _find(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        result[f"p{label}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    return result


def _find(pattern: str, text: str) -> tuple[str, ...]:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{text}")
    return match.groups()


def cold_start(command: list[str], port: int, env: dict[str, str] | None, cwd: Path = RUNTIME) -> float:
    started = time.perf_counter()
    with process(command, env, cwd):
        wait_for_200(f"http://127.0.0.1:{port}/healthz")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runtime", type=Path, default=RUNTIME, help="the runtime/ directory to measure")
    args = parser.parse_args()
    cwd = args.runtime.resolve()
    if shutil.which("wrk") is None:
        sys.exit(
            "wrk is not installed: make bench-runtime installs it (scripts/install-system-deps.sh bench)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        state, script = Path(tmp), Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=json.dumps(BODY), key=KEY))
        sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        model_port, runtime_port = free_port(), free_port()
        model_cmd = model_command(model_port)
        env = runtime_env(f"http://127.0.0.1:{model_port}/v1", sink_url, state)
        rows: list[tuple[str, str, str]] = []
        with process(model_cmd, cwd=cwd):
            wait_for_model(f"http://127.0.0.1:{model_port}/v1/chat/completions")
            direct_url = f"http://127.0.0.1:{model_port}/v1/chat/completions"
            runtime_url = f"http://127.0.0.1:{runtime_port}/v1/chat/completions"
            with process(uvicorn_command(runtime_port, 1, "agent_runtime.api:create_app", True), env, cwd):
                wait_for_200(f"http://127.0.0.1:{runtime_port}/healthz")
                wrk(runtime_url, 1, 2, script)  # warm up: connections, caches, the ledger's first window
                direct = wrk(direct_url, 1, args.seconds, script)
                through = wrk(runtime_url, 1, args.seconds, script)
            for label in ("p50", "p99"):
                rows.append(
                    (
                        f"latency {label} (1 conn)",
                        f"runtime {through[label]:.2f} ms, direct {direct[label]:.2f} ms",
                        f"added {through[label] - direct[label]:.2f} ms (target <= {1 if label == 'p50' else 3} ms)",
                    )
                )
            with process(
                uvicorn_command(runtime_port, args.workers, "agent_runtime.api:create_app", True), env, cwd
            ):
                wait_for_200(f"http://127.0.0.1:{runtime_port}/healthz")
                wrk(runtime_url, 64, 2, script)
                load = wrk(runtime_url, 64, args.seconds, script)
                stub = wrk(direct_url, 64, args.seconds, script)
            rows.append(
                (
                    f"throughput (64 conns, {args.workers} workers)",
                    f"runtime {load['rps']:.0f} req/s ({load['errors']:.0f} non-2xx), model stub alone {stub['rps']:.0f} req/s",
                    "target >= 1000 req/s",
                )
            )
        bare_port = free_port()
        bare_cmd = [
            *uvicorn_command(bare_port, 1, "bare_app:app", False),
            "--app-dir",
            str(ROOT / "benchmarks"),
        ]
        runtime_cmd = uvicorn_command(runtime_port, 1, "agent_runtime.api:create_app", True)
        runtime_times, bare_times = [], []
        for _ in range(args.rounds):  # alternating, so drifting machine load hits both alike
            runtime_times.append(cold_start(runtime_cmd, runtime_port, env, cwd))
            bare_times.append(cold_start(bare_cmd, bare_port, None))
        runtime_cold, bare_cold = statistics.median(runtime_times), statistics.median(bare_times)
        rows.append(
            (
                "cold start, spawn to first 200 (median)",
                f"runtime {runtime_cold * 1000:.0f} ms, bare FastAPI+openai {bare_cold * 1000:.0f} ms",
                f"ratio {runtime_cold / bare_cold:.2f}x (target <= 1.3x)",
            )
        )
        sink.shutdown()

    print(f"runtime: {cwd}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}, Python {platform.python_version()}"
    )
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)))


if __name__ == "__main__":
    main()
