"""``python -m agent_runtime.worker``: the task worker process, what Kubernetes runs and KEDA scales.

It reads the same environment as the API (:class:`~agent_runtime.settings.Settings`), consumes
``AGENTSTAGE_TASK_QUEUE`` on the configured bus and runs the agents of ``AGENTSTAGE_AGENTS`` (see
:mod:`agent_runtime.tasks.worker` for the delivery guarantees).

- SIGTERM / SIGINT: stop leasing; running tasks get ``worker_shutdown_grace_seconds`` to finish, then go
  back to the queue for another worker.
- Liveness: with ``AGENTSTAGE_WORKER_HEARTBEAT_FILE`` set, the file is touched on every poll of the queue
  (at least once a second while idle); probe its age, e.g. ``find $FILE -mmin -1``. Readiness is not
  needed: a worker serves no traffic, it pulls.
- Exit codes: 0 stopped by a signal; 2 configuration error (settings, agents, tool modules, store);
  3 the bus kept failing after ``worker_bus_retries`` retries (every message is still on the queue);
  1 anything else.

It takes no arguments but ``--help``: everything else is a setting, as for the API. Secret settings come
as on Lambda from the Secrets Manager secret ``AGENTSTAGE_SETTINGS_SECRET_ARN`` names (pods on EKS), read
once at start as the pod's own identity, or from settings files a Kubernetes Secret mounts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from agent_runtime.errors import EXIT_CONFIGURATION
from agent_runtime.memory.factory import open_stores
from agent_runtime.services import Assembly, Lifecycle
from agent_runtime.settings import Settings, check_json_settings
from agent_runtime.settings_secret import load_settings_secret
from agent_runtime.startup import StartupError, configured
from agent_runtime.tasks.factory import check_task_settings
from agent_runtime.tasks.worker import Worker, WorkerBusError
from agent_runtime.tools import ToolRegistry, default_registry

EXIT_STOPPED = 0
EXIT_FAILED = 1
EXIT_BUS_UNAVAILABLE = 3

log = logging.getLogger("agentstage.worker")


async def serve(settings: Settings, registry: ToolRegistry = default_registry) -> None:
    """Run a worker until SIGTERM/SIGINT; raises :class:`WorkerBusError` when the bus fails for good."""
    check_task_settings(settings)  # before any store is opened: its message is the clearest
    assembly = Assembly.from_settings(settings, registry, open_stores)
    lifecycle = Lifecycle(assembly)
    try:
        services = await lifecycle.get()
        worker = Worker(services.runner, services.catalog, await services.tasks.get(), settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        log.info("worker consuming queue '%s' (%d at a time)", worker.queue, settings.worker_concurrency)
        await worker.run()
    finally:
        await lifecycle.close()


def parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m agent_runtime.worker",
        description="Run agent tasks from a queue until SIGTERM or SIGINT. The worker is configured by the "
        "same AGENTSTAGE_* environment variables as the API, chiefly AGENTSTAGE_TASK_QUEUE (the queue to "
        "consume), AGENTSTAGE_BUS_BACKEND (where it is), AGENTSTAGE_AGENTS (what to run), "
        "AGENTSTAGE_WORKER_CONCURRENCY, AGENTSTAGE_WORKER_SHUTDOWN_GRACE_SECONDS and "
        "AGENTSTAGE_WORKER_HEARTBEAT_FILE (a liveness file touched on every poll).",
        epilog="exit codes: 0 stopped by a signal; 1 failed; 2 configuration error (settings, agents, tool "
        "modules, store); 3 the bus kept failing (every message is still on the queue)",
    )


def _settings() -> Settings:
    """The settings, with those of the settings secret when one is configured (it is read here, after the
    settings module fixed its directory: passed explicitly)."""
    secret_settings = load_settings_secret()
    settings = Settings() if secret_settings is None else Settings(_secrets_dir=secret_settings)
    check_json_settings(settings)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = configured(_settings)
        configured(lambda: asyncio.run(serve(settings)))
    except StartupError as error:
        log.error("%s", error)
        return EXIT_CONFIGURATION
    except WorkerBusError as error:
        log.error("%s", error)
        return EXIT_BUS_UNAVAILABLE
    except Exception:
        log.exception("the worker failed")
        return EXIT_FAILED
    log.info("worker stopped")
    return EXIT_STOPPED


if __name__ == "__main__":
    sys.exit(main())
