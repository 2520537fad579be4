"""``create_app``: the FastAPI application every host serves (Function App, Lambda, container, dev);
``serve_app``: the same for a server's ``--factory``, as the container image runs it."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from agent_runtime.api import agents, chat, conversations, health, tasks
from agent_runtime.api.errors import BugResponses, install_error_handlers
from agent_runtime.api.hot_routes import HotRoutes
from agent_runtime.api.limits import BodyLimit
from agent_runtime.errors import EXIT_CONFIGURATION
from agent_runtime.governance.setup import build_redactor
from agent_runtime.memory.factory import open_stores
from agent_runtime.services import Assembly, Lifecycle
from agent_runtime.settings import Settings
from agent_runtime.startup import StartupError, configured
from agent_runtime.telemetry import Telemetry
from agent_runtime.tools import ToolRegistry, default_registry


def create_app(
    settings: Settings | None = None,
    *,
    registry: ToolRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> FastAPI:
    """The runtime's HTTP API, configured by ``settings`` (read from the environment when omitted).

    Configuration is checked here, so a bad agent definition or key mapping fails at import of the host
    (:class:`~agent_runtime.errors.ConfigurationError`), not at the first request. ``registry`` defaults to
    the default tool registry (built-ins plus tools registered with ``@tool``). OpenTelemetry providers,
    when given, replace the exporters ``telemetry_exporter`` chooses (tests record spans in memory).
    """
    settings = settings or Settings()
    telemetry = None
    if tracer_provider is not None or meter_provider is not None:
        telemetry = Telemetry(
            settings, build_redactor(settings), tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    assembly = Assembly.from_settings(settings, registry or default_registry, open_stores, telemetry)
    lifecycle = Lifecycle(assembly)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await lifecycle.get()
        # Everything built so far (modules, routes, schemas, clients, stores) lives as long as the process:
        # move it out of the collector's sight, so a full collection scans only what requests allocated
        # (50-180 ms of pause otherwise, over ~100k startup objects). Startup leaves next to no garbage
        # (a few dozen objects), so no collection first: it would only delay the first request.
        gc.freeze()
        yield
        await lifecycle.close()

    app = FastAPI(
        title="agentstage agent runtime",
        version="0.1.0",
        description="Run configured agents over HTTP: a native API and an OpenAI-compatible one, "
        'where `model` names the agent. Errors are JSON `{"error": {"code", "message", "field"?}}`.',
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry (0.16x) traces requests whenever a global provider is set (an
        # auto-instrumenting agent, a vendor distro): a second span per request beside the run's own, from
        # providers the runtime's redaction and sampling never see; and with none set it still asks the
        # three global providers on every request. The runtime's telemetry is its own (`Telemetry`).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.lifecycle = lifecycle
    # Added first, so innermost: it answers the bugs of FastAPI's path (the hot routes answer their own).
    app.add_middleware(BugResponses)
    app.add_middleware(HotRoutes, lifecycle=lifecycle)
    # Added last, so outermost: the body limit holds for the hot routes too.
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    install_error_handlers(app)
    for module in (health, agents, chat, tasks, conversations):
        app.include_router(module.router)
    return app


def serve_app() -> FastAPI:
    """:func:`create_app` for ``uvicorn --factory``: a settings or configuration error is one line on stderr
    and exit status 2, as the task worker reports it, where uvicorn would print the exception's traceback."""
    try:
        return configured(create_app)
    except StartupError as error:
        print(f"agentstage runtime: {error}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIGURATION)
