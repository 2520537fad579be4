"""CloudWatch Embedded Metric Format (EMF): metrics as JSON lines that CloudWatch Logs turns into metrics.

A host whose standard output reaches CloudWatch Logs (Lambda ships it as it is) publishes a metric by
printing one JSON document per line::

    {"_aws": {"Timestamp": 1700000000000, "CloudWatchMetrics": [{"Namespace": "agentstage",
      "Dimensions": [["Environment", "Agent"]], "Metrics": [{"Name": "Runs", "Unit": "Count"}]}]},
     "Environment": "prod", "Agent": "billing", "Runs": 3}

No SDK, no network call, no credentials: CloudWatch extracts the metrics from the log event. This module
knows the format only; which metrics the runtime writes is :mod:`agent_runtime.telemetry_emf`.

:class:`EmfBuffer` aggregates between flushes, because a Lambda instance is frozen between events and must
write before it returns: a counter adds up (each flush writes the delta since the last one), a distribution
keeps every value (CloudWatch computes percentiles from them). It writes within the specification's
limits - at most 100 metrics per directive, 100 values per metric array, 30 keys per dimension set and
1,024 characters per dimension value, so a document also stays far below a log event's size limit - and
flushes by itself when values pile up or grow old, so a long-lived process that nobody flushes neither
grows without bound nor sits on its metrics.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TextIO

MAX_METRICS = 100
"""Metric definitions one directive may hold."""
MAX_VALUES = 100
"""Values one metric's array may hold."""
MAX_DIMENSIONS = 30
"""Keys one dimension set may hold."""
MAX_DIMENSION_VALUE = 1024
"""Characters a dimension value may hold (longer ones are cut, not refused: a metric is better than none)."""

Unit = Literal["Count", "Milliseconds", "Seconds", "Percent", "None"]
"""The CloudWatch units the runtime's metrics use (a subset of ``MetricDatum.Unit``)."""
Kind = Literal["sum", "values"]
"""``sum``: a counter, written as the total since the last flush. ``values``: a distribution, written as
every value recorded (CloudWatch derives p50/p95 from them)."""


@dataclass(frozen=True)
class Metric:
    """One CloudWatch metric: its name, unit, how values aggregate, and the dimension sets it is published
    under (each set is a metric of its own in CloudWatch, and billed as one)."""

    name: str
    unit: Unit
    kind: Kind
    dimension_sets: tuple[tuple[str, ...], ...]
    keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.dimension_sets:
            raise ValueError(f"metric {self.name}: give at least one dimension set")
        for keys in self.dimension_sets:
            if len(keys) > MAX_DIMENSIONS:
                raise ValueError(f"metric {self.name}: a dimension set holds at most {MAX_DIMENSIONS} keys")
        keys = frozenset(key for keys in self.dimension_sets for key in keys)
        if self.name in keys:
            raise ValueError(f"metric {self.name}: a metric cannot share its name with a dimension")
        object.__setattr__(self, "keys", keys)


Group = tuple[tuple[str, str], ...]
"""The dimension values one document carries, as sorted (key, value) pairs."""


class EmfBuffer:
    """Metrics recorded since the last flush, written as EMF documents, one per line.

    ``stream`` defaults to whatever ``sys.stdout`` is when a flush writes (a host may replace it). Safe to
    record from several threads: a flush takes the buffered values and writes them outside the lock.
    """

    def __init__(
        self,
        namespace: str,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        max_buffered: int = 1000,
        max_age_seconds: float = 60.0,
    ) -> None:
        self._namespace = namespace
        self._stream = stream
        self._clock = clock
        self._max_buffered = max_buffered
        self._max_age = max_age_seconds
        self._lock = threading.Lock()
        self._groups: dict[Group, dict[Metric, list[float]]] = {}
        self._buffered = 0
        self._since = 0.0

    def record(self, metric: Metric, value: float, dimensions: Mapping[str, str]) -> None:
        """Add ``value`` to ``metric`` under ``dimensions`` (which must name every key of its dimension sets).

        Values that are not finite numbers are dropped: JSON cannot carry them, and CloudWatch would reject
        the whole document.
        """
        missing = metric.keys - dimensions.keys()
        if missing:
            raise ValueError(f"metric {metric.name}: no value for dimensions {sorted(missing)}")
        if not math.isfinite(value):
            return
        group = tuple(sorted((key, text[:MAX_DIMENSION_VALUE]) for key, text in dimensions.items()))
        now = self._clock()
        with self._lock:
            if not self._groups:
                self._since = now  # the age of the oldest value waiting
            values = self._groups.setdefault(group, {}).setdefault(metric, [])
            if metric.kind == "sum" and values:
                values[0] += value
            else:
                values.append(value)
                self._buffered += 1
            due = self._buffered >= self._max_buffered or now - self._since >= self._max_age
        if due:
            self.flush()

    def flush(self) -> None:
        """Write every metric recorded since the last flush (nothing when there is none)."""
        with self._lock:
            groups, self._groups = self._groups, {}
            self._buffered = 0
        if not groups:
            return
        stream = self._stream or sys.stdout
        timestamp = int(self._clock() * 1000)
        for group, metrics in groups.items():
            for document in self._documents(group, metrics, timestamp):
                stream.write(json.dumps(document, separators=(",", ":")) + "\n")
        stream.flush()

    def _documents(
        self, group: Group, metrics: Mapping[Metric, list[float]], timestamp: int
    ) -> list[dict[str, object]]:
        """The group's metrics spread over as few documents as the limits allow: a metric appears at most
        once per document, with at most :data:`MAX_VALUES` values, beside at most :data:`MAX_METRICS`
        others."""
        documents: list[dict[Metric, float | list[float]]] = []
        for metric, values in metrics.items():
            parts: list[float | list[float]] = (
                [values[0]]
                if metric.kind == "sum"
                else [values[i : i + MAX_VALUES] for i in range(0, len(values), MAX_VALUES)]
            )
            for part in parts:
                target = next((d for d in documents if metric not in d and len(d) < MAX_METRICS), None)
                if target is None:
                    target = {}
                    documents.append(target)
                target[metric] = part
        return [self._document(group, members, timestamp) for members in documents]

    def _document(
        self, group: Group, members: Mapping[Metric, float | list[float]], timestamp: int
    ) -> dict[str, object]:
        directives: dict[tuple[tuple[str, ...], ...], list[dict[str, str]]] = {}
        for metric in members:
            directives.setdefault(metric.dimension_sets, []).append(
                {"Name": metric.name, "Unit": metric.unit}
            )
        return {
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [
                    {
                        "Namespace": self._namespace,
                        "Dimensions": [list(keys) for keys in sets],
                        "Metrics": defs,
                    }
                    for sets, defs in directives.items()
                ],
            },
            **dict(group),
            **{metric.name: value for metric, value in members.items()},
        }
