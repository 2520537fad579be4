"""In-memory OpenTelemetry for the runtime tests (the ``otel`` fixture of tests/runtime/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


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
        return self.collect().get(name, [])

    def collect(self, waiting_for: Sequence[str] = ()) -> dict[str, list[Any]]:
        """One collection: each metric's data points by name (exemplars are handed over once, in the
        collection after their records).

        ``waiting_for``: metrics to wait for, up to 5 s. The runtime records a call's GenAI metrics at its
        event loop's next turn, after the response is on its way: a test thread reading them as soon as it
        has the response may otherwise collect before they are recorded."""
        stop = time.monotonic() + 5
        while True:
            data = self.metrics.get_metrics_data()
            points: dict[str, list[Any]] = {}
            for resource in data.resource_metrics if data is not None else ():
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        points.setdefault(metric.name, []).extend(metric.data.data_points)
            if all(name in points for name in waiting_for) or time.monotonic() > stop:
                return points
            time.sleep(0.01)
