"""Benchmark: the runtime's hot path against the targets of its issue, measured side by side in one run.

The runtime runs as deployed: API-key auth, a tenant budget reserved and settled on the SQLite ledger,
injection screening and output redaction (their defaults: enforce, redact), OTLP tracing to a local sink
at the ratio the kit deploys OTLP with (the enterprise-k8s stack's ``trace_sample_ratio``; metrics count
every run), and conversation history on ``POST /v1/agents/bench/invoke``, where each request names a conversation of
its own (``wrk/invoke.lua``); before measuring, one of those conversations is read back through
``GET /v1/conversations/{id}``, so a route that stores nothing cannot pass unnoticed. (The audit log records
tool calls and deletions; the benchmark's agent has no tools, so these routes write no audit record.) Its
model is the in-repo scripted model server (``python -m agent_runtime.testing``), the comparison for every
latency.

* added latency: sequential requests, one ``http.client`` connection per side taking turns request by
  request (``load.Client`` says why not ``wrk -c1``), p50 and p99 through the runtime
  (``/v1/chat/completions`` and the invoke route) minus the same percentiles straight to the model
  server. Target <= 1 / 3 ms.
* time to first token: sequential streamed requests from one ``http.client`` connection per side,
  alternating sides, timed to the first SSE chunk carrying content; p50 through the runtime minus p50
  straight to the model server. Target <= 1 ms added.
* throughput: ``wrk`` with 50 connections, one runtime worker, both routes, 0 errors. Target >= 1,000
  req/s, and >= 10x LiteLLM's proxy (one worker, installed on first use into ``benchmarks/.venv-litellm``,
  routed to the same model server, same ``wrk`` script); when LiteLLM cannot be installed or run, the
  table says why and the rest is measured.
* two workers: the same load on two runtime workers against one, with the cores the runtime, the model
  server and ``wrk`` each used meanwhile (they share the machine's). Target >= 1.8x.
* start to ready: process spawn to the first 200 of ``/healthz``, median of alternating rounds against a
  bare FastAPI app that imports openai (``bare_app.py``, served alike). Target <= 1 s.
* idle memory: VmRSS of the runtime's processes after ready and a 2 s warm-up of each route at 50
  connections; the largest process is the per-worker figure. Target <= 120 MB.
* every run traced: the sequential and loaded chat figures again with ``trace_sample_ratio`` 1, to show
  what tracing each run costs (no target).

The model server, ``wrk`` and the runtime share the machine's cores, so throughput depends on the machine:
its load average is printed before and after. ``make bench-runtime`` installs ``wrk`` (Debian package) and
runs this. By hand: ``.venv/bin/python benchmarks/runtime_latency.py [--seconds 10] [--server granian]``;
``--runtime DIR`` measures another checkout's ``runtime/`` directory (a before/after comparison).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import litellm_proxy
import yaml
from harness import (
    APP_FACTORY,
    ROOT,
    RUNTIME,
    SERVERS,
    ServerExited,
    free_port,
    model_command,
    process,
    tree_cpu_seconds,
    tree_rss_mb,
    wait_for_200,
    wait_for_model,
)
from load import (
    CHAT_BODY,
    CHAT_SCRIPT,
    INVOKE_SCRIPT,
    Client,
    WrkResult,
    alternating,
    invoke_body,
    percentile,
    wrk,
)

KEY = "sk-bench-0123456789"
"""The runtime's API key and LiteLLM's master key (which must start with ``sk-``): one wrk script for both."""
BENCHMARKS = Path(__file__).resolve().parent
CONNECTIONS = 50
WARM_UP_SECONDS = 2
OTLP_STACK = ROOT / "stacks" / "Pulumi.enterprise-k8s.yaml"
"""The stack that deploys the runtime with OTLP tracing: the benchmark traces as it does."""


class _Sink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and drops them: the runtime pays for tracing, nobody stores it. HTTP/1.1,
    so the exporter keeps its connection as it does with a collector (HTTP/1.0 made it reconnect per batch)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def otlp_sink() -> Iterator[str]:
    """The URL of an OTLP/HTTP sink serving in a thread for the block."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sink.server_address[1]}"
    finally:
        sink.shutdown()


def deployed_trace_sample_ratio() -> str:
    """``trace_sample_ratio`` as the OTLP stack deploys it."""
    settings = yaml.safe_load(OTLP_STACK.read_text())["config"]["agentstage:runtimeSettings"]
    return str(settings["trace_sample_ratio"])


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
        "TRACE_SAMPLE_RATIO": deployed_trace_sample_ratio(),
    }
    return {**os.environ, **{f"AGENTSTAGE_{name}": value for name, value in settings.items()}}


@dataclass(frozen=True)
class Setup:
    """What every phase shares: the runtime to measure, how to serve it, and the model server it calls."""

    runtime_dir: Path
    server: str
    env: dict[str, str]
    model_port: int
    model_pid: int
    seconds: int

    def runtime_command(self, port: int, workers: int) -> list[str]:
        return SERVERS[self.server](port, workers, APP_FACTORY, True)

    def one_worker_command(self, port: int) -> list[str]:
        return self.runtime_command(port, 1)

    def bare_command(self, port: int) -> list[str]:
        return SERVERS[self.server](port, 1, "bare_app:app", False)


@dataclass(frozen=True)
class Server:
    """A server under test on a loopback port, loaded by ``wrk`` on either route."""

    port: int

    def chat(self, connections: int, seconds: int) -> WrkResult:
        url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        return wrk(url, CHAT_SCRIPT, [KEY], connections, seconds)

    def invoke(self, connections: int, seconds: int, run: str) -> WrkResult:
        """The runtime's own route with history; ``run`` prefixes this run's conversation ids."""
        url = f"http://127.0.0.1:{self.port}/v1/agents/bench/invoke"
        return wrk(url, INVOKE_SCRIPT, [KEY, run], connections, seconds)

    def wait_ready(self, proc: subprocess.Popen[bytes], path: str = "/healthz", timeout: float = 30) -> None:
        wait_for_200(f"http://127.0.0.1:{self.port}{path}", timeout, server=proc)


@dataclass(frozen=True)
class OneWorker:
    """The figures of the one-worker phase."""

    sequential: dict[str, list[float]]
    """Milliseconds per request, one at a time: ``direct`` (the model server alone), ``chat`` and ``invoke``
    through the runtime."""
    loaded: dict[str, WrkResult]
    """The same three at ``CONNECTIONS`` connections."""
    ttft_ms: dict[str, list[float]]
    """``runtime`` and ``direct``."""
    rss_mb: list[float]
    history: str
    """Which conversation was read back, and how many messages it held."""


def measure_one_worker(setup: Setup, streams: int, requests: int) -> OneWorker:
    """Everything measured on one runtime worker; the model server's figures are taken in the same phase
    so both sides see the same machine."""
    runtime, direct = Server(free_port()), Server(setup.model_port)
    with process(setup.runtime_command(runtime.port, 1), setup.env, setup.runtime_dir) as proc:
        runtime.wait_ready(proc)
        warm_up(runtime, "warm")
        rss = tree_rss_mb(proc.pid)
        history = read_back_history(runtime.port, "warm")
        sequential = measure_sequential(runtime.port, direct.port, requests, invoke=True)
        ttft = measure_ttft(runtime.port, direct.port, streams)
        loaded = {
            "direct": direct.chat(CONNECTIONS, setup.seconds),
            "chat": runtime.chat(CONNECTIONS, setup.seconds),
            "invoke": runtime.invoke(CONNECTIONS, setup.seconds, run="load"),
        }
    return OneWorker(sequential, loaded, ttft, rss, history)


@dataclass(frozen=True)
class FullyTraced:
    """The chat route's figures with every run traced."""

    sequential: dict[str, list[float]]
    """``direct`` and ``chat``, as in :class:`OneWorker`."""
    loaded: WrkResult


def measure_fully_traced(setup: Setup, requests: int) -> FullyTraced:
    """The chat route, sequential and at ``CONNECTIONS`` connections, with every run traced."""
    runtime = Server(free_port())
    env = {**setup.env, "AGENTSTAGE_TRACE_SAMPLE_RATIO": "1"}
    with process(setup.runtime_command(runtime.port, 1), env, setup.runtime_dir) as proc:
        runtime.wait_ready(proc)
        warm_up(runtime, "traced")
        sequential = measure_sequential(runtime.port, setup.model_port, requests, invoke=False)
        return FullyTraced(sequential, runtime.chat(CONNECTIONS, setup.seconds))


@dataclass(frozen=True)
class TwoWorkers:
    """The two-worker phase: the load's result, the processes' RSS, and the cores each side used."""

    loaded: WrkResult
    rss_mb: list[float]
    cores: dict[str, float]
    """CPU seconds per second of the run: the runtime's workers, the model server, ``wrk``."""


def measure_two_workers(setup: Setup) -> TwoWorkers:
    """The chat route at ``CONNECTIONS`` connections on two workers, the processes' RSS after warm-up, and
    how the machine's cores were shared: the runtime, the model server and ``wrk`` run on the same ones."""
    runtime = Server(free_port())
    with process(setup.runtime_command(runtime.port, 2), setup.env, setup.runtime_dir) as proc:
        runtime.wait_ready(proc)
        warm_up(runtime, "warm2")
        rss = tree_rss_mb(proc.pid)
        before = (tree_cpu_seconds(proc.pid), tree_cpu_seconds(setup.model_pid), _children_cpu_seconds())
        started = time.perf_counter()
        loaded = runtime.chat(CONNECTIONS, setup.seconds)
        elapsed = time.perf_counter() - started
        after = (tree_cpu_seconds(proc.pid), tree_cpu_seconds(setup.model_pid), _children_cpu_seconds())
    used = [(end - start) / elapsed for start, end in zip(before, after, strict=True)]
    return TwoWorkers(loaded, rss, dict(zip(("runtime", "model server", "wrk"), used, strict=True)))


def _children_cpu_seconds() -> float:
    """CPU seconds of the benchmark's finished children (``wrk`` runs are waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def warm_up(runtime: Server, run: str) -> None:
    """Both routes at full load for a moment: connections, caches, the ledger's first window."""
    runtime.chat(CONNECTIONS, WARM_UP_SECONDS)
    runtime.invoke(CONNECTIONS, WARM_UP_SECONDS, run=run)


def read_back_history(port: int, run: str) -> str:
    """The latest stored conversation, read back through the conversations routes, as "id: N messages";
    exits unless it is one of ``run``'s and holds the benchmark's message, since then the invoke route
    measured a path without history. (The latest, not a computed id: wrk spends one request of its first
    thread checking the script, so which ids were sent is its business.)"""
    latest = _get_json(port, "/v1/conversations?limit=1")["conversations"]
    if not latest or not latest[0]["id"].startswith(f"{run}-"):
        sys.exit(f"no conversation of the run {run!r} was stored: the invoke route skips history")
    conversation_id = latest[0]["id"]
    messages = _get_json(port, f"/v1/conversations/{conversation_id}")["messages"]
    if not any(message.get("content") == "hello from the benchmark" for message in messages):
        sys.exit(f"conversation {conversation_id} lacks the request's message: history is not stored")
    return f"{conversation_id}: {len(messages)} messages"


def _get_json(port: int, path: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {KEY}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.load(response))


def measure_sequential(
    runtime_port: int, model_port: int, requests: int, invoke: bool
) -> dict[str, list[float]]:
    """``requests`` timed requests per side, one at a time, the sides taking turns: straight to the model
    server, the chat route through the runtime, and (``invoke``) the invoke route, each request in a
    conversation of its own."""
    direct, chat, through = Client(model_port, KEY), Client(runtime_port, KEY), Client(runtime_port, KEY)
    invoked = iter(range(10**9))
    measures = {
        "direct": lambda: direct.latency_ms("/v1/chat/completions", CHAT_BODY),
        "chat": lambda: chat.latency_ms("/v1/chat/completions", CHAT_BODY),
    }
    if invoke:
        path = "/v1/agents/bench/invoke"
        measures["invoke"] = lambda: through.latency_ms(path, invoke_body(f"seq-{next(invoked)}"))
    try:
        return dict(zip(measures, alternating(list(measures.values()), requests), strict=True))
    finally:
        for client in (direct, chat, through):
            client.close()


def measure_ttft(runtime_port: int, model_port: int, streams: int) -> dict[str, list[float]]:
    clients = [Client(runtime_port, KEY), Client(model_port, KEY)]
    try:
        through, direct = alternating([client.time_to_first_token_ms for client in clients], streams)
    finally:
        for client in clients:
            client.close()
    return {"runtime": through, "direct": direct}


def measure_litellm(setup: Setup, workdir: Path) -> WrkResult | str:
    """LiteLLM's proxy (one worker) under the chat load, or why it could not be measured."""
    try:
        executable = litellm_proxy.ensure_installed()
    except litellm_proxy.Unavailable as error:
        return f"not installed: {error}"
    proxy, log = Server(free_port()), workdir / "litellm.log"
    config = litellm_proxy.write_config(
        workdir / "litellm.yaml", f"http://127.0.0.1:{setup.model_port}/v1", KEY
    )
    env = {**os.environ, **litellm_proxy.ENV}
    with process(litellm_proxy.proxy_command(executable, config, proxy.port), env, workdir, log) as proc:
        try:
            proxy.wait_ready(proc, "/health/liveliness", timeout=120)
        except (OSError, ServerExited) as error:
            return f"did not serve ({error}); its log ends: {_last_line(log)}"
        proxy.chat(CONNECTIONS, WARM_UP_SECONDS)
        result = proxy.chat(CONNECTIONS, setup.seconds)
    if result.errors == result.requests:
        return f"failed all {result.requests} requests; its log ends: {_last_line(log)}"
    return result


def _last_line(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(empty)"


@dataclass(frozen=True)
class Readiness:
    """Start-to-ready rounds: the runtime's and the bare app's times, in seconds."""

    runtime_s: list[float]
    bare_s: list[float]
    bare_rss_mb: list[float]
    """The bare app's largest process, read right after its first 200."""


def measure_start_to_ready(setup: Setup, rounds: int) -> Readiness:
    """Alternating rounds, so drifting machine load hits the runtime and the bare app alike."""
    runtime_s, bare_s, bare_rss = [], [], []
    for _ in range(rounds):
        runtime_s.append(start_to_ready(setup.one_worker_command, setup.env, setup.runtime_dir)[0])
        seconds, rss = start_to_ready(setup.bare_command, None, BENCHMARKS)
        bare_s.append(seconds)
        bare_rss.append(rss)
    return Readiness(runtime_s, bare_s, bare_rss)


def start_to_ready(
    command_for: Callable[[int], list[str]], env: dict[str, str] | None, cwd: Path
) -> tuple[float, float]:
    """Seconds from spawn to the first 200 of ``/healthz``, and the largest process's RSS (MB) then."""
    port = free_port()
    command = command_for(port)
    started = time.perf_counter()
    with process(command, env, cwd) as proc:
        wait_for_200(f"http://127.0.0.1:{port}/healthz", server=proc)
        elapsed = time.perf_counter() - started
        return elapsed, tree_rss_mb(proc.pid)[0]


@dataclass(frozen=True)
class Row:
    """One line of the table; ``note`` (why a figure is missing) is printed below it, to keep it narrow."""

    metric: str
    runtime: str
    comparison: str
    relation: str
    target: str
    met: bool | None
    """None: not measured, or a figure with no target."""
    note: str = ""


def latency_rows(route: str, through: list[float], direct: list[float]) -> list[Row]:
    rows = []
    for label, share, limit in (("p50", 0.5, 1.0), ("p99", 0.99, 3.0)):
        through_ms, direct_ms = percentile(through, share), percentile(direct, share)
        added = through_ms - direct_ms
        rows.append(
            Row(
                f"latency {label}, {route}, {len(through):,} sequential",
                f"{through_ms:.2f} ms",
                f"model {direct_ms:.2f} ms",
                f"{added:+.2f} ms",
                f"<= +{limit:g} ms",
                added <= limit,
            )
        )
    return rows


def traced_rows(traced: FullyTraced, one: OneWorker, ratio: str) -> list[Row]:
    """What tracing every run costs, beside the figures at the deployed ratio (no target)."""
    loaded = traced.loaded
    p50, p99 = _p50_p99(traced.sequential["chat"])
    direct_p50, direct_p99 = _p50_p99(traced.sequential["direct"])
    deployed_p50, deployed_p99 = _p50_p99(one.sequential["chat"])
    return [
        Row(
            "latency p50/p99, chat, every run traced",
            f"{p50:.2f} / {p99:.2f} ms",
            f"1 in {1 / float(ratio):g} traced {deployed_p50:.2f} / {deployed_p99:.2f} ms",
            f"{p50 - direct_p50:+.2f} / {p99 - direct_p99:+.2f} ms",
            "-",
            None,
        ),
        Row(
            f"throughput, chat, {CONNECTIONS} conns, every run traced",
            f"{loaded.rps:,.0f} req/s{_errors(loaded, always=True)}",
            f"1 in {1 / float(ratio):g} traced {one.loaded['chat'].rps:,.0f} req/s",
            f"{loaded.rps / one.loaded['chat'].rps:.2f}x",
            "-",
            None,
        ),
    ]


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 0.5), percentile(samples, 0.99)


def ttft_row(ttft_ms: dict[str, list[float]]) -> Row:
    through, direct = statistics.median(ttft_ms["runtime"]), statistics.median(ttft_ms["direct"])
    return Row(
        f"time to first token p50, {len(ttft_ms['runtime'])} streams",
        f"{through:.2f} ms",
        f"model {direct:.2f} ms",
        f"{through - direct:+.2f} ms",
        "<= +1 ms",
        through - direct <= 1.0,
    )


def throughput_rows(loaded: dict[str, WrkResult]) -> list[Row]:
    direct = loaded["direct"]
    return [
        Row(
            f"throughput, {route}, {CONNECTIONS} conns, 1 worker",
            f"{loaded[route].rps:,.0f} req/s{_errors(loaded[route], always=True)}",
            f"model {direct.rps:,.0f} req/s",
            f"{loaded[route].rps / direct.rps:.2f}x",
            ">= 1,000 req/s, 0 errors",
            loaded[route].rps >= 1000 and loaded[route].errors == 0,
        )
        for route in ("chat", "invoke")
    ]


def litellm_row(chat: WrkResult, litellm: WrkResult | str) -> Row:
    metric = f"throughput vs LiteLLM {litellm_proxy.REQUIREMENT.split('==')[1]}, chat, 1 worker"
    if isinstance(litellm, str):
        note = f"LiteLLM not measured: {litellm}"
        return Row(metric, f"{chat.rps:,.0f} req/s", "LiteLLM not measured", "-", ">= 10x", None, note)
    ratio = chat.rps / litellm.rps
    return Row(
        metric,
        f"{chat.rps:,.0f} req/s",
        f"LiteLLM {litellm.rps:,.0f} req/s{_errors(litellm, always=True)}",
        f"{ratio:.1f}x",
        ">= 10x",
        ratio >= 10,
    )


def two_worker_rows(one: WrkResult, two: TwoWorkers) -> list[Row]:
    loaded = two.loaded
    ratio = loaded.rps / one.rps
    cores = ", ".join(f"{name} {used:.2f}" for name, used in two.cores.items())
    return [
        Row(
            f"throughput, chat, {CONNECTIONS} conns, 2 workers",
            f"{loaded.rps:,.0f} req/s{_errors(loaded, always=True)}",
            f"1 worker {one.rps:,.0f} req/s",
            f"{ratio:.2f}x",
            ">= 1.8x",
            ratio >= 1.8 and loaded.errors == 0,
            f"cores used during the 2-worker run (of {os.cpu_count()}): {cores}",
        ),
        memory_row("idle RSS per worker, 2 workers", two.rss_mb, "-"),
    ]


def memory_row(metric: str, rss_mb: list[float], comparison: str) -> Row:
    worker = rss_mb[0]
    return Row(
        metric,
        f"{worker:.0f} MB ({_processes(len(rss_mb))}, {sum(rss_mb):.0f} MB in all)",
        comparison,
        "-",
        "<= 120 MB",
        worker <= 120,
    )


def readiness_rows(ready: Readiness, one_worker_rss: list[float]) -> list[Row]:
    runtime, bare = statistics.median(ready.runtime_s), statistics.median(ready.bare_s)
    bare_rss = statistics.median(ready.bare_rss_mb)
    return [
        Row(
            f"start to ready, median of {len(ready.runtime_s)}",
            f"{runtime * 1000:,.0f} ms",
            f"bare FastAPI+openai {bare * 1000:,.0f} ms",
            f"{runtime / bare:.2f}x",
            "<= 1,000 ms",
            runtime <= 1.0,
        ),
        memory_row("idle RSS per worker, 1 worker", one_worker_rss, f"bare FastAPI+openai {bare_rss:.0f} MB"),
    ]


def _processes(count: int) -> str:
    return "1 process" if count == 1 else f"{count} processes"


def _errors(result: WrkResult, always: bool = False) -> str:
    return f", {result.errors} errors" if always or result.errors else ""


def print_table(rows: list[Row]) -> None:
    header = ("metric", "runtime", "comparison", "ratio/added", "target", "met")
    cells = [header] + [
        (r.metric, r.runtime, r.comparison, r.relation, r.target, _verdict(r.met)) for r in rows
    ]
    width = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)).rstrip())
    for note in (r.note for r in rows if r.note):
        print(note)


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "-"}[met]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured wrk run")
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per side")
    parser.add_argument("--streams", type=int, default=300, help="streamed requests per side for TTFT")
    parser.add_argument("--rounds", type=int, default=5, help="start-to-ready rounds")
    parser.add_argument(
        "--server",
        choices=sorted(SERVERS),
        default="uvicorn",
        help="the ASGI server (granian: pip install it first)",
    )
    parser.add_argument("--runtime", type=Path, default=RUNTIME, help="the runtime/ directory to measure")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit(
            "wrk is not installed: make bench-runtime installs it (scripts/install-system-deps.sh bench)"
        )
    if importlib.util.find_spec(args.server) is None:
        sys.exit(f"{args.server} is not installed here: {sys.executable} -m pip install {args.server}")
    load_before = os.getloadavg()[0]
    runtime_dir = args.runtime.resolve()
    with tempfile.TemporaryDirectory() as tmp, otlp_sink() as sink_url:
        model_port = free_port()
        env = runtime_env(f"http://127.0.0.1:{model_port}/v1", sink_url, Path(tmp))
        with process(model_command(model_port), cwd=runtime_dir) as model:
            setup = Setup(runtime_dir, args.server, env, model_port, model.pid, args.seconds)
            wait_for_model(f"http://127.0.0.1:{model_port}/v1/chat/completions")
            one = measure_one_worker(setup, args.streams, args.requests)
            traced = measure_fully_traced(setup, args.requests)
            two = measure_two_workers(setup)
            litellm = measure_litellm(setup, Path(tmp))
        ready = measure_start_to_ready(setup, args.rounds)

    ratio = env["AGENTSTAGE_TRACE_SAMPLE_RATIO"]
    print(
        f"runtime: {runtime_dir}, served by {args.server}; runs traced: {ratio} (as {OTLP_STACK.name}); "
        f"history check: {one.history}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average (1 min) {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (the benchmark's own included)"
    )
    print_table(
        [
            *latency_rows("chat", one.sequential["chat"], one.sequential["direct"]),
            *latency_rows("invoke+history", one.sequential["invoke"], one.sequential["direct"]),
            ttft_row(one.ttft_ms),
            *throughput_rows(one.loaded),
            litellm_row(one.loaded["chat"], litellm),
            *two_worker_rows(one.loaded["chat"], two),
            *readiness_rows(ready, one.rss_mb),
            *traced_rows(traced, one, ratio),
        ]
    )


if __name__ == "__main__":
    main()
