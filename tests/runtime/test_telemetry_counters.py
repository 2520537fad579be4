"""Counters and gauges summed on the request path reach the SDK's readers exact, as the SDK's own would."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

from agent_runtime.telemetry_counters import LocalCounter, LocalGauge


def _points(reader: InMemoryMetricReader, name: str) -> tuple[Any, dict[tuple[tuple[str, Any], ...], float]]:
    data = reader.get_metrics_data()
    [metric] = [
        m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name
    ]
    return metric.data, {tuple(sorted(p.attributes.items())): p.value for p in metric.data.data_points}


def test_adds_from_many_threads_are_all_counted_whatever_the_attribute_order() -> None:
    reader = InMemoryMetricReader()
    counter = LocalCounter(MeterProvider(metric_readers=[reader]).get_meter("t"), "held", description="d")

    def add(n: int) -> None:
        for _ in range(n):
            counter.add(2, {"budget": "tenant", "metric": "tokens"})
            counter.add(1, {"metric": "tokens", "budget": "tenant"})
            counter.add(1, {"budget": "agent", "metric": "requests"})

    threads = [threading.Thread(target=add, args=(5_000,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    data, points = _points(reader, "held")
    assert points == {
        (("budget", "tenant"), ("metric", "tokens")): 60_000,
        (("budget", "agent"), ("metric", "requests")): 20_000,
    }
    assert data.is_monotonic and data.aggregation_temporality == AggregationTemporality.CUMULATIVE


def test_a_delta_reader_gets_what_was_added_since_its_last_collection() -> None:

    reader = InMemoryMetricReader(preferred_temporality={ObservableCounter: AggregationTemporality.DELTA})
    counter = LocalCounter(MeterProvider(metric_readers=[reader]).get_meter("t"), "cost", unit="USD")
    counter.add(0.25, {"model": "m"})
    assert _points(reader, "cost")[1] == {(("model", "m"),): 0.25}
    counter.add(0.5, {"model": "m"})
    counter.add(0.25, {"model": "m"})
    assert _points(reader, "cost")[1] == {(("model", "m"),): pytest.approx(0.75)}


def test_a_gauge_reports_the_last_value_per_attribute_set() -> None:
    reader = InMemoryMetricReader()
    gauge = LocalGauge(MeterProvider(metric_readers=[reader]).get_meter("t"), "pressure")
    gauge.set(0.2, {"agent": "a"})
    gauge.set(0.9, {"agent": "a"})
    gauge.set(0.1, {"agent": "b"})
    assert _points(reader, "pressure")[1] == {(("agent", "a"),): 0.9, (("agent", "b"),): 0.1}
