"""``emf_agent_endpoint``: EMF records sent to the CloudWatch agent's listener instead of stdout (pods on EKS).

A real listener on loopback stands in for the agent, reading what the agent reads: newline-delimited JSON
records over TCP, one record per datagram over UDP. The tests stop and restart it, clog its connection and
leave it absent, and check that records arrive whole, in order and with the log group the agent routes by,
that nothing waits on the network but the sink's own thread, and that what cannot be sent is counted.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from runtime_helpers import AGENTS, API_KEYS, LEAKY_ANSWER, PLANTED, USER_KEY, Runtime, make_registry

from agent_runtime.api import create_app
from agent_runtime.emf import MAX_UDP_RECORD, AgentSink, EmfBuffer, Metric, StreamSink
from agent_runtime.errors import ConfigurationError
from agent_runtime.settings import Settings
from agent_runtime.settings_contract import parse_agent_endpoint
from agent_runtime.startup import describe_settings_error
from agent_runtime.telemetry_emf import NAMESPACE, EmfMetrics, log_group, sink_for
from agent_runtime.testing import ScriptedModelServer, ServerThread

LOG_GROUP = "/agentstage/test/metrics"
FAST_RETRY = (0.01, 0.05)
"""Backoff for tests: the agent's return is noticed within a twentieth of a second."""


def document(seq: int, padding: int = 0) -> dict[str, Any]:
    """A minimal EMF document numbered ``seq`` (a metric of its own), optionally padded to a large size."""
    directive = {"Namespace": "agentstage", "Dimensions": [["Environment"]], "Metrics": [{"Name": "Seq"}]}
    body: dict[str, Any] = {"_aws": {"Timestamp": 1_700_000_000_000, "CloudWatchMetrics": [directive]}}
    return body | {"Environment": "test", "Seq": seq} | ({"Padding": "x" * padding} if padding else {})


# -- stand-ins for the agent -------------------------------------------------------------------------


class Agent:
    """What a listener received: each record with the index of the connection it came on."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[tuple[int, bytes]] = []
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _received(self, connection: int, record: bytes) -> None:
        with self.changed:
            self.received.append((connection, record))
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The first ``count`` records, parsed (each must be one whole JSON document)."""
        with self.changed:
            arrived = self.changed.wait_for(lambda: len(self.received) >= count, timeout)
            assert arrived, f"{len(self.received)} of {count} records reached the agent"
            return [json.loads(record) for _, record in self.received[:count]]

    def wait_until(self, done: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every record received, parsed, once ``done`` holds for them."""
        with self.changed:
            records: list[dict[str, Any]] = []

            def arrived() -> bool:
                records[:] = [json.loads(record) for _, record in self.received]
                return bool(done(records))

            assert self.changed.wait_for(arrived, timeout), f"the agent received only {records}"
            return records

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """The agent goes away: its sockets closed, its threads ended."""
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()


class TcpAgent(Agent):
    """The agent's TCP listener: it splits each connection's stream into lines, as the agent does."""

    def __init__(self, *, accept: bool = True) -> None:
        super().__init__()
        self._accept = accept
        self.connections = 0
        self.hung_up = 0
        """Connections the sink closed, after the agent read everything sent on them."""
        self.cut_off = 0
        """Connections the sink closed in the middle of a record."""
        self._listener: socket.socket | None = None

    def start(self) -> TcpAgent:
        """Listen (again, on the same port once it had one)."""
        self._stop.clear()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        listener.settimeout(0.02)
        self.port = listener.getsockname()[1]
        self._listener = listener
        if self._accept:
            self._spawn(self._serve)
        return self

    def accept_now(self) -> None:
        """Start taking the connections queued while the agent did not accept."""
        self._spawn(self._serve)

    def _serve(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._spawn(self._read, connection, self.connections)
            self.connections += 1
        self._listener.close()

    def _read(self, connection: socket.socket, index: int) -> None:
        connection.settimeout(0.02)
        pending = b""
        with connection:
            while not self._stop.is_set():
                try:
                    chunk = connection.recv(1 << 16)
                except TimeoutError:
                    continue
                if not chunk:
                    with self.changed:
                        self.hung_up += 1
                        self.cut_off += bool(pending)
                        self.changed.notify_all()
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._received(index, line)

    def wait_for_hangup(self) -> list[dict[str, Any]]:
        """Every record, once the sink has closed every connection it opened."""
        return self.wait_until(lambda _: self.connections and self.hung_up == self.connections)

    def stop(self) -> None:
        super().stop()
        if self._listener is not None and not self._accept:
            self._listener.close()


class UdpAgent(Agent):
    """The agent's UDP listener: each datagram is one record."""

    def start(self) -> UdpAgent:
        self._stop.clear()
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        receiver.bind(("127.0.0.1", self.port))
        receiver.settimeout(0.02)
        self.port = receiver.getsockname()[1]
        self._spawn(self._read, receiver)
        return self

    def _read(self, receiver: socket.socket) -> None:
        with receiver:
            while not self._stop.is_set():
                try:
                    self._received(0, receiver.recv(1 << 17))
                except TimeoutError:
                    continue


@pytest.fixture
def tcp_agent() -> Iterator[TcpAgent]:
    agent = TcpAgent().start()
    yield agent
    agent.stop()


@pytest.fixture
def udp_agent() -> Iterator[UdpAgent]:
    agent = UdpAgent().start()
    yield agent
    agent.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (for now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sink(protocol: str, port: int, **options: Any) -> AgentSink:
    return AgentSink(protocol, "127.0.0.1", port, LOG_GROUP, retry_seconds=FAST_RETRY, **options)  # type: ignore[arg-type]


# -- TCP ---------------------------------------------------------------------------------------------


def test_records_arrive_whole_in_order_on_one_connection_with_the_log_group(tcp_agent: TcpAgent) -> None:
    agent_sink = sink("tcp", tcp_agent.port)
    wide = [Metric(f"M{index}", "Milliseconds", "values", (("Environment",),)) for index in range(100)]
    buffer = EmfBuffer("agentstage", sink=agent_sink, max_buffered=10_000)
    for metric in wide:  # the largest document the format allows: 100 metrics of 100 values (~150 kB)
        for value in range(100):
            buffer.record(metric, 1000 + value / 7, {"Environment": "test"})
    buffer.flush()
    agent_sink.write([document(seq) for seq in range(200)])
    agent_sink.close(5)

    [big, *numbered] = tcp_agent.wait_for(201)
    assert len(json.dumps(big)) > 100_000
    assert {m["Name"] for m in big["_aws"]["CloudWatchMetrics"][0]["Metrics"]} == {m.name for m in wide}
    assert all(big[m.name] == [1000 + v / 7 for v in range(100)] for m in wide), "values intact"
    assert [record["Seq"] for record in numbered] == list(range(200))
    for record in [big, *numbered]:
        assert record["_aws"]["LogGroupName"] == LOG_GROUP, "the agent drops EMF records naming no log group"
        assert "LogStreamName" not in record["_aws"], "the agent names the stream (one per node)"
    assert {connection for connection, _ in tcp_agent.received} == {0}
    assert (agent_sink.sent, agent_sink.dropped) == (201, 0)
    tcp_agent.wait_for_hangup()
    assert tcp_agent.cut_off == 0


def test_records_wait_while_the_agent_is_away_and_follow_in_order_when_it_returns(
    tcp_agent: TcpAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.emf")
    agent_sink = sink("tcp", tcp_agent.port)
    agent_sink.write([document(seq) for seq in range(3)])
    tcp_agent.wait_for(3)

    tcp_agent.stop()
    agent_sink.write([document(seq) for seq in range(3, 8)])
    deadline = time.monotonic() + 5
    while not any("cannot reach" in r.message for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (agent_sink.sent, agent_sink.dropped) == (3, 0), "held, not lost, while the agent is away"

    tcp_agent.start()
    records = tcp_agent.wait_for(8)
    assert [record["Seq"] for record in records] == list(range(8))
    assert [connection for connection, _ in tcp_agent.received] == [0, 0, 0, 1, 1, 1, 1, 1]
    assert agent_sink.drain(5) and (agent_sink.sent, agent_sink.dropped) == (8, 0)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "agentstage.emf"]
    endpoint = f"tcp://127.0.0.1:{tcp_agent.port}"
    assert [level for level, _ in messages] == ["WARNING", "INFO"], "one line per outage, not per retry"
    assert all(endpoint in message and '"Seq"' not in message for _, message in messages)
    agent_sink.close(1)


def test_a_full_buffer_drops_and_counts_while_the_agent_stops_reading(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The agent takes the connection but never reads: once the socket buffers fill, the sink's thread
    waits in a send, and the caller's writes still return at once, each dropped and counted."""
    caplog.set_level(logging.WARNING, logger="agentstage.emf")
    agent = TcpAgent(accept=False).start()
    agent_sink = sink("tcp", agent.port, capacity=3, send_timeout=60)
    written = 0
    while agent_sink.dropped == 0:  # until the kernel's buffers and the sink's are full
        assert written < 400, "the connection never filled up"
        agent_sink.write([document(written, padding=256 * 1024)])
        written += 1
        time.sleep(0.005)
    dropped = agent_sink.dropped

    started = time.monotonic()
    agent_sink.write([document(seq, padding=256 * 1024) for seq in range(written, written + 20)])
    written += 20
    assert time.monotonic() - started < 1.0, "a write never waits for the network"
    assert agent_sink.dropped == dropped + 20
    [warning] = [r.getMessage() for r in caplog.records if r.name == "agentstage.emf"]
    assert "being dropped: the buffer of 3 records is full" in warning, "once, not per record"

    agent.accept_now()
    assert agent_sink.drain(30)
    arrived = [record["Seq"] for record in agent.wait_for(agent_sink.sent, timeout=30)]
    assert arrived == sorted(arrived), "what arrives keeps its order"
    assert len(arrived) + agent_sink.dropped == written, "every record is either delivered or counted"
    agent_sink.close(1)
    agent.stop()


def test_close_delivers_within_its_deadline_and_drops_the_rest(tcp_agent: TcpAgent, closed_port: int) -> None:
    delivered = sink("tcp", tcp_agent.port)
    delivered.write([document(seq) for seq in range(50)])
    delivered.close(5)
    assert (delivered.sent, delivered.dropped) == (50, 0), "close waits for what it can deliver"
    assert [record["Seq"] for record in tcp_agent.wait_for(50)] == list(range(50))

    stranded = sink("tcp", closed_port)
    stranded.write([document(seq) for seq in range(5)])
    started = time.monotonic()
    stranded.close(0.3)
    assert time.monotonic() - started < 2.0
    assert (stranded.sent, stranded.dropped) == (0, 5)
    stranded.write([document(5)])
    assert stranded.dropped == 6, "a record written after close is dropped, counted"
    assert not [t for t in threading.enumerate() if t.name == "emf-agent-sink" and t.is_alive()]


def test_force_flush_waits_for_delivery_within_its_timeout(tcp_agent: TcpAgent, closed_port: int) -> None:
    """What ``Telemetry.flush`` calls: it reports whether the agent has the records."""
    delivered = EmfMetrics("test", EmfBuffer(NAMESPACE, sink=sink("tcp", tcp_agent.port)))
    delivered.retry("gpt-4o-mini")
    assert delivered.force_flush(5000)
    [record] = tcp_agent.wait_for(1)
    assert record["ModelRetries"] == 1 and record["Model"] == "gpt-4o-mini"

    absent = sink("tcp", closed_port)
    stranded = EmfMetrics("test", EmfBuffer(NAMESPACE, sink=absent))
    stranded.retry("gpt-4o-mini")
    started = time.monotonic()
    assert not stranded.force_flush(200)
    assert time.monotonic() - started < 2.0
    absent.close(0)
    assert absent.dropped == 1


def test_a_buffer_takes_a_sink_or_a_stream() -> None:
    with pytest.raises(ValueError, match="give a sink or a stream, not both"):
        EmfBuffer(NAMESPACE, sink=StreamSink(), stream=io.StringIO())


# -- UDP ---------------------------------------------------------------------------------------------


def test_udp_sends_one_record_per_datagram_and_drops_one_too_large(
    udp_agent: UdpAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agentstage.emf")
    agent_sink = sink("udp", udp_agent.port)
    agent_sink.write([document(0), document(1, padding=MAX_UDP_RECORD), document(2)])
    records = udp_agent.wait_for(2)
    assert [record["Seq"] for record in records] == [0, 2]
    assert all(record["_aws"]["LogGroupName"] == LOG_GROUP for record in records)
    assert all(not raw.endswith(b"\n") for _, raw in udp_agent.received), "a datagram is the record"
    assert agent_sink.dropped == 1
    [warning] = [r.getMessage() for r in caplog.records if r.name == "agentstage.emf"]
    assert f"a record exceeds the {MAX_UDP_RECORD} bytes of a datagram" in warning
    agent_sink.close(1)


def test_udp_holds_records_once_the_agent_refuses_and_sends_them_when_it_returns(
    udp_agent: UdpAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """A datagram to an absent agent is lost unseen, but the refusal it draws makes the next send fail:
    from then on records are held until the agent listens again."""
    caplog.set_level(logging.INFO, logger="agentstage.emf")
    agent_sink = sink("udp", udp_agent.port)
    agent_sink.write([document(0)])
    udp_agent.wait_for(1)
    udp_agent.stop()
    agent_sink.write([document(1)])
    time.sleep(0.2)  # sent, lost: the refusal it draws is the error of the next send
    agent_sink.write([document(seq) for seq in range(2, 6)])
    time.sleep(0.3)
    assert (agent_sink.sent, agent_sink.dropped) == (2, 0), "held from the refusal on"
    udp_agent.start()
    agent_sink.write([document(6)])
    assert agent_sink.drain(5)
    records = udp_agent.wait_for(6)
    assert [record["Seq"] for record in records] == [0, 2, 3, 4, 5, 6]
    levels = [r.levelname for r in caplog.records if r.name == "agentstage.emf"]
    assert levels == ["WARNING", "INFO"], "one line per outage, not per retry"
    agent_sink.close(1)


# -- the setting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("http://127.0.0.1:25888", "'http://' given"),
        ("127.0.0.1:25888", "given"),
        ("tcp://127.0.0.1", "name the host and a port"),
        ("tcp://:25888", "name the host and a port"),
        ("tcp://127.0.0.1:0", "name the host and a port"),
        ("tcp://127.0.0.1:99999", "a port from 1 to 65535"),
        ("udp://127.0.0.1:agent", "a port from 1 to 65535"),
        ("tcp://user@127.0.0.1:25888", "nothing before the host or after the port"),
        ("tcp://127.0.0.1:25888/metrics", "nothing before the host or after the port"),
    ],
)
def test_a_bad_endpoint_is_refused_naming_the_setting(
    value: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTSTAGE_TELEMETRY_EXPORTER", "emf")
    monkeypatch.setenv("AGENTSTAGE_EMF_AGENT_ENDPOINT", value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = describe_settings_error(refused.value)
    assert message.startswith("AGENTSTAGE_EMF_AGENT_ENDPOINT: must be tcp://host:port or udp://host:port")
    assert problem in message and repr(value) in message


def test_the_endpoint_needs_the_emf_exporter() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(telemetry_exporter="otlp", emf_agent_endpoint="tcp://127.0.0.1:25888")
    message = describe_settings_error(refused.value)
    assert message.startswith(
        "AGENTSTAGE_EMF_AGENT_ENDPOINT: applies only to AGENTSTAGE_TELEMETRY_EXPORTER=emf"
    )


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("tcp://127.0.0.1:25888", ("tcp", "127.0.0.1", 25888)),
        (" udp://[::1]:25888 ", ("udp", "::1", 25888)),
        (
            "TCP://cloudwatch-agent.amazon-cloudwatch:25888",
            ("tcp", "cloudwatch-agent.amazon-cloudwatch", 25888),
        ),
    ],
)
def test_good_endpoints(value: str, parsed: tuple[str, str, int]) -> None:
    settings = Settings(telemetry_exporter="emf", emf_agent_endpoint=value)
    assert settings.emf_agent_endpoint == value.strip()
    assert parse_agent_endpoint(value) == parsed


def test_unset_or_blank_writes_to_stdout_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    for settings in (
        Settings(telemetry_exporter="emf"),
        Settings(telemetry_exporter="emf", emf_agent_endpoint=" "),
    ):
        assert settings.emf_agent_endpoint is None
        assert isinstance(sink_for(settings), StreamSink)
    metrics = EmfMetrics.from_settings(Settings(telemetry_exporter="emf", environment="dev"))
    metrics.retry("gpt-4o-mini")
    metrics.shutdown()
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["ModelRetries"] == 1 and "LogGroupName" not in line


def test_the_log_group_follows_the_environment_and_refuses_one_it_cannot_name() -> None:
    settings = Settings(
        telemetry_exporter="emf", environment="prod", emf_agent_endpoint="udp://127.0.0.1:25888"
    )
    agent_sink = sink_for(settings)
    assert isinstance(agent_sink, AgentSink) and agent_sink.endpoint == "udp://127.0.0.1:25888"
    assert log_group("prod") == "/agentstage/prod/metrics"
    with pytest.raises(ConfigurationError, match=r"AGENTSTAGE_ENVIRONMENT 'prod east' cannot name"):
        EmfMetrics.from_settings(settings.model_copy(update={"environment": "prod east"}))


# -- the runtime ---------------------------------------------------------------------------------------


def test_the_runtime_sends_its_metrics_and_nothing_of_what_was_said(
    model: ScriptedModelServer, tcp_agent: TcpAgent, tmp_path: Path
) -> None:
    """Prompts carrying secrets, an answer leaking them, content capture on: the records hold metric
    names, dimension values and numbers only, in the log group the stack names. The runtime's shutdown
    delivers what the sink holds, then hangs up."""
    settings = Settings(
        llm_endpoint=model.base_url,
        llm_auth="none",
        llm_max_retries=0,
        sqlite_path=str(tmp_path / "state.db"),
        agents=json.dumps(AGENTS),
        api_keys=json.dumps(API_KEYS),
        environment="staging",
        telemetry_exporter="emf",
        emf_agent_endpoint=f"tcp://127.0.0.1:{tcp_agent.port}",
        emf_log_group="/aws/eks/ags-stg-agents/metrics",
        capture_content=True,
    )
    app = create_app(settings, registry=make_registry())  # its telemetry, from the settings as deployed
    runtime = Runtime(ServerThread(app).start(), settings)
    prompt = f"my card is {PLANTED['card']} and my key {PLANTED['api_key']}: remember zebra-quartz-17"
    try:
        assert runtime.invoke("restricted", prompt).status_code == 200
        assert runtime.invoke("assistant", "leak").status_code == 200
    finally:
        runtime.close()

    records = tcp_agent.wait_for_hangup()
    raw = b"".join(record for _, record in tcp_agent.received).decode()
    runs = {record["Agent"]: record["Runs"] for record in records if "Runs" in record}
    assert runs == {"restricted": 1, "assistant": 1}
    assert {record["_aws"]["LogGroupName"] for record in records} == {"/aws/eks/ags-stg-agents/metrics"}
    for secret in [*PLANTED.values(), "zebra-quartz-17", USER_KEY, LEAKY_ANSWER[:20], "remember"]:
        assert secret not in raw
