"""Fixtures of the governance tests: in-memory OpenTelemetry, a Redis server, and a page server for tools."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from memory.conftest import redis_url  # noqa: F401  (the session's throwaway redis-server)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agent_runtime.governance.ledger_cosmos import LEDGER_PARTITION_KEY
from agent_runtime.testing import ServerThread
from agent_runtime.testing.cosmos import LocalCosmosServer
from agent_runtime.testing.identity import LocalManagedIdentity


class Otel:
    """Providers that keep every span and metric in memory, for ``create_app(**otel.app_options)``."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    @property
    def app_options(self) -> dict[str, Any]:
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def span(self, name: str) -> Any:
        [span] = [s for s in self.spans.get_finished_spans() if s.name == name]
        return span

    def metric_points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def otel() -> Iterator[Otel]:
    recorder = Otel()
    yield recorder
    recorder.tracer_provider.shutdown()
    recorder.meter_provider.shutdown()


@pytest.fixture(scope="session")
def pages() -> Iterator[dict[str, str]]:
    """Text served at ``http://127.0.0.1:<port>/<name>``; the dict also holds the server's ``base`` URL."""
    content: dict[str, str] = {}

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(content.get(request.path_params["name"], ""))

    with ServerThread(Starlette(routes=[Route("/{name}", page)])) as server:
        content["base"] = server.url
        yield content


@dataclass(frozen=True)
class CosmosLedgerAccount:
    """A local Cosmos DB account with the ledger container the state store component creates, and the
    managed-identity endpoint an App Service host gives the runtime (``environment``)."""

    url: str
    client_id: str
    environment: dict[str, str]


@pytest.fixture(scope="session")
def cosmos_ledger() -> Iterator[CosmosLedgerAccount]:
    with LocalCosmosServer() as cosmos, LocalManagedIdentity() as identity:
        cosmos.create_container("agentstage", "ledger", LEDGER_PARTITION_KEY, default_ttl=-1)
        yield CosmosLedgerAccount(cosmos.url, "00000000-0000-0000-0000-0000000000c0", identity.environment)
