"""Benchmark: task throughput per bus, and the latency the orchestrator hop adds, side by side in one run.

Two measurements, printed as one table:

* throughput: ``--tasks`` tasks submitted at once through :class:`TaskService`, run by one in-process
  :class:`Worker` (``--concurrency`` runs at a time), timed from the first submit until every task is
  ``succeeded``; per-task latency is the record's ``finished_at - created_at``. Once on the embedded SQLite
  queue, once on Azure Storage queues (Azurite, started here), with the ratio between them.
* orchestrator hop: ``--rounds`` sequential runs of one agent invoked directly against the same request
  through an orchestrator that delegates it to that agent (a sub-task over the bus, a worker run, the wait),
  on each bus; the added milliseconds and the ratio of the medians.

The model is the scripted model server (echo) over loopback HTTP, so the figures are the runtime's and the
bus's, not a model's. Everything runs in one process and one event loop: submitter, worker and orchestrator
share the CPU, as they do in a single-instance deployment.

Run: ``.venv/bin/python benchmarks/tasks_throughput.py [--tasks 200] [--concurrency 8] [--rounds 30]``.
Azurite comes from ``scripts/install-azurite.sh``; without it the Azurite rows are skipped, with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "runtime"), str(ROOT / "tests")]

from servers import ServerError, azurite_queue

from agent_runtime.caller import Caller
from agent_runtime.governance.setup import build_redactor
from agent_runtime.memory.factory import open_stores
from agent_runtime.runner import Runner, RunOptions
from agent_runtime.services import Assembly, Services
from agent_runtime.settings import Settings
from agent_runtime.tasks.model import TaskState
from agent_runtime.tasks.service import TaskService
from agent_runtime.tasks.worker import Worker
from agent_runtime.telemetry import Telemetry
from agent_runtime.testing import ScriptedModelServer
from agent_runtime.tools import ToolRegistry

CALLER = Caller("bench", frozenset({"user"}))
AGENTS = [
    {"name": "echo", "memory": {"persist": False, "history_window": 0}},
    {
        "name": "lead",
        "kind": "orchestrator",
        "memory": {"persist": False, "history_window": 0},
        "orchestration": {"delegates": ["echo"], "subtask_deadline_seconds": 30},
    },
]
MESSAGES = [{"role": "user", "content": "hello from the benchmark"}]


@dataclass
class Stack:
    runner: Runner
    tasks: TaskService
    services: Services


@asynccontextmanager
async def open_stack(
    model: ScriptedModelServer, state: Path, bus: dict[str, Any], concurrency: int
) -> AsyncIterator[Stack]:
    """The runtime, a task service on the bus ``bus`` configures and a worker consuming it, in this loop."""
    settings = Settings(
        llm_endpoint=model.base_url,
        llm_auth="none",
        sqlite_path=str(state / "state.db"),
        bus_sqlite_path=str(state / "bus.db"),
        agents=json.dumps(AGENTS),
        task_queue=f"bench-{int(time.time() * 1000)}",
        worker_concurrency=concurrency,
        worker_shutdown_grace_seconds=0,
        **bus,
    )
    telemetry = Telemetry(settings, build_redactor(settings))
    assembly = Assembly.from_settings(settings, ToolRegistry(), open_stores, telemetry)
    services = await Services.open(assembly)
    tasks = await services.tasks.get()
    worker = Worker(services.runner, assembly.catalog, tasks, settings)
    consuming = asyncio.create_task(worker.run())
    try:
        yield Stack(services.runner, tasks, services)
    finally:
        worker.stop()
        await consuming
        await services.close()
        await assembly.close()


async def throughput(stack: Stack, count: int) -> dict[str, float]:
    """Tasks per second from the first submit to the last success, and per-task latency percentiles."""
    started = time.perf_counter()
    submitted = await asyncio.gather(*(stack.tasks.submit("echo", MESSAGES, CALLER) for _ in range(count)))
    loop = asyncio.get_running_loop()
    records = await stack.tasks.wait([record.id for record, _ in submitted], loop.time() + 300)
    elapsed = time.perf_counter() - started
    failed = [r for r in records if r.state is not TaskState.SUCCEEDED]
    if failed:
        raise RuntimeError(f"{len(failed)} tasks did not succeed, e.g. {failed[0].state}: {failed[0].error}")
    latencies = sorted(((r.finished_at or 0) - r.created_at) * 1000 for r in records)
    return {
        "per_second": count / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
    }


async def hop(stack: Stack, rounds: int) -> dict[str, float]:
    """Median and p95 of the agent invoked directly and through the orchestrator, alternating."""
    catalog = stack.services.catalog
    direct, orchestrated = catalog.get("echo"), catalog.get("lead")
    timings: dict[str, list[float]] = {"direct": [], "orchestrated": []}
    for _ in range(3):  # warm both paths (connections, statements, the worker's first poll)
        await stack.runner.run(direct, MESSAGES, RunOptions(caller=CALLER))
        await stack.runner.run(orchestrated, MESSAGES, RunOptions(caller=CALLER))
    for _ in range(rounds):
        for name, agent in (("direct", direct), ("orchestrated", orchestrated)):
            started = time.perf_counter()
            await stack.runner.run(agent, MESSAGES, RunOptions(caller=CALLER))
            timings[name].append((time.perf_counter() - started) * 1000)
    direct_ms, hop_ms = sorted(timings["direct"]), sorted(timings["orchestrated"])
    return {
        "direct_p50": percentile(direct_ms, 50),
        "direct_p95": percentile(direct_ms, 95),
        "hop_p50": percentile(hop_ms, 50),
        "hop_p95": percentile(hop_ms, 95),
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[int(pct) - 1]


async def measure(
    name: str, bus: dict[str, Any], model: ScriptedModelServer, args: argparse.Namespace
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as state:
        async with open_stack(model, Path(state), bus, args.concurrency) as stack:
            figures = await throughput(stack, args.tasks)
            figures |= await hop(stack, args.rounds)
    print(f"  {name}: done", file=sys.stderr)
    return figures


def table(results: dict[str, dict[str, float]], skipped: dict[str, str]) -> str:
    rows = [
        ("tasks/s (submit -> succeeded)", "per_second", "{:,.0f}"),
        ("task latency p50 (ms)", "p50_ms", "{:,.1f}"),
        ("task latency p95 (ms)", "p95_ms", "{:,.1f}"),
        ("agent direct p50 (ms)", "direct_p50", "{:,.2f}"),
        ("via orchestrator p50 (ms)", "hop_p50", "{:,.2f}"),
        ("via orchestrator p95 (ms)", "hop_p95", "{:,.2f}"),
    ]
    names = list(results)
    lines = [
        f"{'':32}" + "".join(f"{n:>16}" for n in names) + ("   azurite/sqlite" if len(names) == 2 else "")
    ]
    for label, key, fmt in rows:
        cells = "".join(f"{fmt.format(results[n][key]):>16}" for n in names)
        ratio = f"{results[names[1]][key] / results[names[0]][key]:>17.2f}" if len(names) == 2 else ""
        lines.append(f"{label:32}{cells}{ratio}")
    for name in names:
        figures = results[name]
        added = figures["hop_p50"] - figures["direct_p50"]
        lines.append(
            f"orchestrator hop on {name}: +{added:,.2f} ms at p50 "
            f"({figures['hop_p50'] / figures['direct_p50']:.2f}x the direct run)"
        )
    lines += [f"{name}: skipped ({reason})" for name, reason in skipped.items()]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    results: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    with ScriptedModelServer() as model:
        results["sqlite"] = await measure("sqlite", {"bus_backend": "sqlite"}, model, args)
        with ExitStack() as exits:
            try:
                azurite = exits.enter_context(azurite_queue())
            except ServerError as error:
                skipped["azurite"] = str(error).splitlines()[0]
            else:
                bus = {
                    "bus_backend": "storage_queue",
                    "storage_queue_connection_string": azurite.connection_string,
                    "bus_create_queues": True,
                }
                results["azurite"] = await measure("azurite", bus, model, args)
    print(f"tasks={args.tasks} worker_concurrency={args.concurrency} hop_rounds={args.rounds}")
    print(table(results, skipped))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks submitted at once per bus")
    parser.add_argument("--concurrency", type=int, default=8, help="the worker's concurrent runs")
    parser.add_argument("--rounds", type=int, default=30, help="direct/orchestrated pairs per bus")
    asyncio.run(main(parser.parse_args()))
