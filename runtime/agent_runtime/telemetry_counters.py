"""Counters and gauges kept in a dict on the request path and read by the OpenTelemetry SDK when it exports.

A synchronous SDK instrument costs ~2.4 us per ``add`` (attribute hashing, view matching, aggregation,
exemplar sampling) and a governed model call makes seven of them (budget holds and settlements per metric,
cost). Here an ``add`` is one dict update under a lock (~0.5 us); the totals are handed to the SDK as
*observable* instruments whose callbacks the metric reader calls on its own thread at each collection. The
exported series are the same - monotonic sums, cumulative or delta as the exporter prefers, and last-value
gauges - and exact: every ``add`` is in the next collection.

The lock matters: an ``add`` is a read-modify-write, and the task worker's threads record too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation

_Key = tuple[tuple[str, str], ...]


class _Recorded:
    """Values per attribute set, guarded by a lock, reported to the SDK as observations."""

    def __init__(self) -> None:
        self._values: dict[_Key, float] = {}
        self._lock = threading.Lock()

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            values = list(self._values.items())
        return [Observation(value, dict(key)) for key, value in values]


class LocalCounter(_Recorded):
    """A monotonic counter: ``add`` sums per attribute set; exported as an observable counter."""

    def __init__(self, meter: Meter, name: str, unit: str = "", description: str = "") -> None:
        super().__init__()
        meter.create_observable_counter(name, [self._observe], unit=unit, description=description)

    def add(self, amount: float, attributes: Mapping[str, str]) -> None:
        key = tuple(sorted(attributes.items()))  # one series per attribute set, whatever the order
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount


class LocalGauge(_Recorded):
    """A gauge: ``set`` keeps the last value per attribute set; exported as an observable gauge."""

    def __init__(self, meter: Meter, name: str, unit: str = "", description: str = "") -> None:
        super().__init__()
        meter.create_observable_gauge(name, [self._observe], unit=unit, description=description)

    def set(self, value: float, attributes: Mapping[str, str]) -> None:
        key = tuple(sorted(attributes.items()))
        with self._lock:
            self._values[key] = value
