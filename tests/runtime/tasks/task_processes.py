"""Worker processes (``python -m agent_runtime.worker``) sharing the SQLite bus and state with a test, which
SIGKILLs them where it likes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from task_effects import AGENTS

from agent_runtime.testing import ScriptedModelServer

HERE = Path(__file__).parent


def worker_env(model: ScriptedModelServer, state: Path, heartbeat: Path, **overrides: str) -> dict[str, str]:
    """The environment of a worker on ``state``'s files: short leases, no dead letters unless ``overrides``
    (setting names, as ``bus_max_delivery_count``) say otherwise."""
    settings = {
        "LLM_ENDPOINT": model.base_url,
        "LLM_AUTH": "none",
        "SQLITE_PATH": str(state / "state.db"),
        "BUS_SQLITE_PATH": str(state / "bus.db"),
        "AGENTS": json.dumps(AGENTS),
        "TOOL_MODULES": json.dumps(["task_worker_tools"]),
        "TASK_LEASE_SECONDS": "1",
        "BUS_VISIBILITY_SECONDS": "1",
        "BUS_MAX_DELIVERY_COUNT": "100",  # dozens of kills may hit one task: none may be dead-lettered
        "WORKER_CONCURRENCY": "3",
        "WORKER_HEARTBEAT_FILE": str(heartbeat),
        "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
    } | {name.upper(): value for name, value in overrides.items()}
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGENTSTAGE_")}
    path = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env | {f"AGENTSTAGE_{name}": value for name, value in settings.items()} | {"PYTHONPATH": path}


async def start_worker(env: dict[str, str], state: Path, log: Path) -> asyncio.subprocess.Process:
    """A worker process, once it polls its queue (its heartbeat file appears)."""
    alive = Path(env["AGENTSTAGE_WORKER_HEARTBEAT_FILE"])
    alive.unlink(missing_ok=True)
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent_runtime.worker", env=env, cwd=state, stdout=output, stderr=output
        )
    deadline = time.monotonic() + 30
    while not alive.exists():
        assert process.returncode is None, (
            f"the worker exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        )
        assert time.monotonic() < deadline, "the worker did not start polling within 30 s"
        await asyncio.sleep(0.02)
    return process
