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

Where flushed documents go is a :class:`Sink`: standard output (:class:`StreamSink`, the default), or the
CloudWatch agent's EMF listener (:class:`AgentSink`) where nothing turns standard output into metrics - pods
on EKS, where the ``amazon-cloudwatch-observability`` add-on runs the agent on every node.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import random
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TextIO

log = logging.getLogger("agentstage.emf")

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
Document = dict[str, object]
"""One EMF document: the ``_aws`` metadata, the dimension values and the metric values."""


class Sink(Protocol):
    """Where flushed documents go. ``write`` runs on whatever thread flushed - a request's, when a buffer
    flushes itself - so it must neither block on the network nor raise for a delivery problem."""

    def write(self, documents: Sequence[Document]) -> None: ...

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until everything written is delivered; whether it is."""
        ...

    def close(self, timeout: float) -> None:
        """Deliver what is held within ``timeout`` seconds, then stop; later writes are dropped."""
        ...


class StreamSink:
    """Documents as JSON lines on a text stream: ``sys.stdout`` (looked up at each write) by default."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, documents: Sequence[Document]) -> None:
        stream = self._stream or sys.stdout
        for document in documents:
            stream.write(json.dumps(document, separators=(",", ":")) + "\n")
        stream.flush()

    def drain(self, timeout: float) -> bool:
        return True

    def close(self, timeout: float) -> None:
        """Nothing to stop: the stream is the host's."""


class EmfBuffer:
    """Metrics recorded since the last flush, written as EMF documents to a :class:`Sink`.

    ``sink`` defaults to a :class:`StreamSink` on ``stream`` (``sys.stdout`` when a flush writes, so a host
    may replace it). Safe to record from several threads: a flush takes the buffered values and writes them
    outside the lock.
    """

    def __init__(
        self,
        namespace: str,
        *,
        sink: Sink | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        max_buffered: int = 1000,
        max_age_seconds: float = 60.0,
    ) -> None:
        if sink is not None and stream is not None:
            raise ValueError("EmfBuffer: give a sink or a stream, not both (a StreamSink wraps a stream)")
        self._namespace = namespace
        self._sink: Sink = sink or StreamSink(stream)
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
        timestamp = int(self._clock() * 1000)
        self._sink.write(
            [
                document
                for group, metrics in groups.items()
                for document in self._documents(group, metrics, timestamp)
            ]
        )

    def drain(self, timeout: float) -> bool:
        """Flush, and wait up to ``timeout`` seconds until the sink has delivered everything; whether it has."""
        self.flush()
        return self._sink.drain(timeout)

    def close(self, timeout: float) -> None:
        """Flush, and give the sink ``timeout`` seconds to deliver what it holds before it stops."""
        self.flush()
        self._sink.close(timeout)

    def _documents(
        self, group: Group, metrics: Mapping[Metric, list[float]], timestamp: int
    ) -> list[Document]:
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
    ) -> Document:
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


AgentProtocol = Literal["tcp", "udp"]
MAX_UDP_RECORD = 65_507
"""Bytes one UDP datagram carries over IPv4; the agent reads each datagram as one record."""
UDP_PROBE_SECONDS = 0.05
"""How long a datagram sent while the agent was away waits for a refusal: the agent is on the same node (or
host), so its refusal comes back well within this."""


class AgentSink:
    """Documents sent to the CloudWatch agent's EMF listener (``tcp://`` or ``udp://`` ``host:port``).

    The agent publishes each record to CloudWatch Logs in the log group its ``_aws.LogGroupName`` names, and
    with its EMF-only setting drops any record that names none, so every record gets ``log_group``. The log
    stream is left to the agent (one per node), which keeps pods from sharing one hot stream across nodes.
    TCP carries newline-delimited records over one connection; UDP one record per datagram, unacknowledged:
    the datagrams sent before an absent agent's refusal comes back are lost, and a record over
    :data:`MAX_UDP_RECORD` bytes cannot be sent at all. Prefer TCP.

    Nothing here blocks or raises into the caller: :meth:`write` only encodes and queues, and one thread of
    the sink's own sends the records in order. While the agent cannot be reached, records wait in a buffer
    of ``capacity`` records and the thread reconnects with exponential backoff (``retry_seconds``: first
    and longest pause, jittered); a record that finds the buffer full, or is still waiting when
    :meth:`close`'s deadline passes, is dropped and counted in :attr:`dropped`. Outages and drops are
    logged once each, with the endpoint and the error, never a record.
    """

    def __init__(
        self,
        protocol: AgentProtocol,
        host: str,
        port: int,
        log_group: str,
        *,
        capacity: int = 1000,
        connect_timeout: float = 2.0,
        send_timeout: float = 5.0,
        retry_seconds: tuple[float, float] = (0.2, 30.0),
    ) -> None:
        if protocol not in ("tcp", "udp"):
            raise ValueError(f"AgentSink: protocol must be 'tcp' or 'udp', not {protocol!r}")
        if capacity < 1:
            raise ValueError("AgentSink: capacity must be at least 1 record")
        self._protocol = protocol
        self._address = (host, port)
        self.endpoint = f"{protocol}://{f'[{host}]' if ':' in host else host}:{port}"
        self._log_group = log_group
        self._capacity = capacity
        self._connect_timeout = connect_timeout
        self._send_timeout = send_timeout
        self._retry_first, self._retry_longest = retry_seconds
        self._changed = threading.Condition()
        self._records: deque[bytes] = deque()
        self._sending = False
        self._sent = 0
        self._dropped = 0
        self._closing = threading.Event()
        self._deadline = math.inf
        self._closed = False
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._unreachable = False
        self._dropping = False

    @property
    def sent(self) -> int:
        """Records handed to the agent's connection (TCP) or sent as datagrams (UDP)."""
        return self._sent

    @property
    def dropped(self) -> int:
        """Records given up: the buffer was full, a datagram too large, or the close deadline passed."""
        return self._dropped

    # -- the caller's side ---------------------------------------------------------------------------

    def write(self, documents: Sequence[Document]) -> None:
        records = [self._encode(document) for document in documents]
        full = too_large = 0
        with self._changed:
            for record in records:
                if self._protocol == "udp" and len(record) > MAX_UDP_RECORD:
                    too_large += 1
                elif self._closed or len(self._records) + self._sending >= self._capacity:
                    full += 1
                else:
                    self._records.append(record)
            self._dropped += full + too_large
            warn = bool(full or too_large) and not self._dropping and not self._closed
            self._dropping = self._dropping or warn
            if self._records and self._thread is None and not self._closed:
                # Started on first use, not at construction: no thread for a process that never
                # records, and none inherited half-alive by a process forked before the first flush.
                self._thread = threading.Thread(target=self._run, name="emf-agent-sink", daemon=True)
                self._thread.start()
            self._changed.notify_all()
        if warn:
            reasons = [f"the buffer of {self._capacity} records is full"] if full else []
            reasons += [f"a record exceeds the {MAX_UDP_RECORD} bytes of a datagram"] if too_large else []
            log.warning(
                "EMF records for the CloudWatch agent at %s are being dropped: %s; %d dropped so far",
                self.endpoint,
                ", and ".join(reasons),
                self._dropped,
            )

    def drain(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: not self._records and not self._sending, timeout)

    def close(self, timeout: float) -> None:
        with self._changed:
            if self._closing.is_set():
                return
            self._deadline = time.monotonic() + timeout
            self._closing.set()
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            # The thread keeps every socket call within the deadline; the margin covers a slow name lookup.
            thread.join(timeout + 1.0)
        with self._changed:
            self._closed = True
            self._dropped += len(self._records)
            self._records.clear()

    def _encode(self, document: Document) -> bytes:
        metadata = document.get("_aws")
        if not isinstance(metadata, dict):
            raise TypeError("AgentSink: not an EMF document (it has no _aws metadata)")
        record = {**document, "_aws": {**metadata, "LogGroupName": self._log_group}}
        text = json.dumps(record, separators=(",", ":"))
        return (text + "\n" if self._protocol == "tcp" else text).encode()

    # -- the sending thread --------------------------------------------------------------------------

    def _run(self) -> None:
        pause = self._retry_first
        while (record := self._next()) is not None:
            try:
                self._send(record)
            except (OSError, ValueError) as error:  # ValueError: a host name IDNA cannot encode
                self._disconnect()
                if self._failed(record, error):
                    self._report_unreachable(error)
                    self._pause(pause)
                    pause = min(pause * 2, self._retry_longest)
                continue
            self._delivered()
            pause = self._retry_first
        self._disconnect()

    def _next(self) -> bytes | None:
        """The first record in line, once there is one; ``None`` once closing leaves nothing to send, or
        its deadline has passed (what still waits is dropped)."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._records) or self._closing.is_set())
            if not self._records or self._expired():
                self._dropped += len(self._records)
                self._records.clear()
                self._changed.notify_all()
                return None
            self._sending = True
            return self._records.popleft()

    def _failed(self, record: bytes, error: OSError | ValueError) -> bool:
        """Put ``record`` first in line again (the order holds across reconnects), and whether the agent is
        unreachable: a datagram too large to send, or a record past the close deadline, is dropped instead."""
        too_large = getattr(error, "errno", None) == errno.EMSGSIZE
        with self._changed:
            if too_large or self._expired():
                self._dropped += 1
            else:
                self._records.appendleft(record)
            self._sending = False
            self._changed.notify_all()
        return not too_large

    def _delivered(self) -> None:
        with self._changed:
            self._sending = False
            self._sent += 1
            self._dropping = False
            self._changed.notify_all()
        if self._unreachable:
            self._unreachable = False
            log.info(
                "reached the CloudWatch agent at %s again (%d EMF records dropped so far)",
                self.endpoint,
                self._dropped,
            )

    def _send(self, record: bytes) -> None:
        if self._socket is not None and self._protocol == "tcp" and self._peer_closed(self._socket):
            self._disconnect()  # the agent restarted: a fresh connection, no pause
        sock = self._socket or self._connect()
        sock.settimeout(self._within_deadline(self._send_timeout))
        if self._protocol == "tcp":
            sock.sendall(record)
            return
        sock.send(record)
        if self._unreachable:
            # A datagram to an absent agent vanishes without an error; the refusal it draws comes back as
            # the error of the next send. While the agent is away, wait for that answer before counting a
            # record delivered, so that records are held for its return instead of lost one by one.
            time.sleep(self._within_deadline(UDP_PROBE_SECONDS))
            if code := sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                raise OSError(code, os.strerror(code))

    def _connect(self) -> socket.socket:
        timeout = self._within_deadline(self._connect_timeout)
        if self._protocol == "tcp":
            sock = socket.create_connection(self._address, timeout=timeout)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        else:
            family, kind, proto, _, address = socket.getaddrinfo(*self._address, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
            # A connected datagram socket hears the port-unreachable answers of an absent agent, as errors
            # of the next send: the record is kept and the agent retried, as over TCP.
            sock.connect(address)
        self._socket = sock
        return sock

    @staticmethod
    def _peer_closed(sock: socket.socket) -> bool:
        """Whether the agent closed the connection: it never sends, so anything readable is the end of the
        stream (a write into a closed connection would succeed and be lost)."""
        sock.settimeout(0.0)
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _disconnect(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _expired(self) -> bool:
        return self._closing.is_set() and time.monotonic() >= self._deadline

    def _within_deadline(self, seconds: float) -> float:
        """``seconds``, or less once closing: no socket call outlives :meth:`close`'s deadline."""
        return max(0.001, min(seconds, self._deadline - time.monotonic()))

    def _pause(self, seconds: float) -> None:
        """Back off before reconnecting, jittered so that the pods of a node do not reconnect in step when
        its agent restarts. :meth:`close` cuts a pause short once, for a last try within its deadline."""
        seconds *= 0.5 + random.random() / 2
        if not self._closing.is_set():
            self._closing.wait(seconds)
        else:
            time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))

    def _report_unreachable(self, error: OSError | ValueError) -> None:
        if not self._unreachable:
            self._unreachable = True
            log.warning(
                "cannot reach the CloudWatch agent at %s (%s: %s); EMF records wait in a buffer of %d and "
                "are dropped when it is full",
                self.endpoint,
                type(error).__name__,
                getattr(error, "strerror", None) or error,
                self._capacity,
            )
