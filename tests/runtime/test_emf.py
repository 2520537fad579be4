"""``telemetry_exporter: emf``: the runtime's metrics as CloudWatch Embedded Metric Format lines on stdout.

The runtime runs governed calls against the scripted model server; what a flush writes is parsed, checked
against the EMF specification's structure and limits, and compared with what the model server reported.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from runtime_helpers import AGENTS, API_KEYS, Runtime, make_registry

from agent_runtime.api import create_app
from agent_runtime.emf import MAX_DIMENSION_VALUE, MAX_METRICS, MAX_VALUES, EmfBuffer, Metric
from agent_runtime.governance.redaction import Redactor
from agent_runtime.settings import Settings
from agent_runtime.telemetry import Telemetry
from agent_runtime.telemetry_emf import EmfMetrics
from agent_runtime.testing import Faults, ScriptedModelServer, ServerThread

ENVIRONMENT = "staging"
PRICES = {"gpt-4o-mini": {"input": 1000, "output": 2000}}
"""USD per million tokens: a token costs a thousandth or two of a cent, so cost is easy to check."""
UNITS = {"Count", "Milliseconds", "Seconds", "Percent", "None"}


class EmfRuntime(Runtime):
    """A served runtime with the emf exporter, and its telemetry (which the host flushes after each event)."""

    def __init__(self, server: ServerThread, settings: Settings, telemetry: Telemetry) -> None:
        super().__init__(server, settings)
        self.telemetry = telemetry


RuntimeFactory = Callable[..., EmfRuntime]


@pytest.fixture
def emf_runtime(model: ScriptedModelServer, tmp_path: Path) -> Iterator[RuntimeFactory]:
    """Start a runtime with the emf exporter and settings of its own (stopped after the test)."""
    started: list[EmfRuntime] = []

    def start(**overrides: Any) -> EmfRuntime:
        values: dict[str, Any] = {
            "llm_endpoint": model.base_url,
            "llm_auth": "none",
            "llm_max_retries": 0,
            "sqlite_path": str(tmp_path / "state.db"),
            "agents": json.dumps(AGENTS),
            "api_keys": json.dumps(API_KEYS),
            "deadline_seconds": 10,
            "environment": ENVIRONMENT,
            "telemetry_exporter": "emf",
            "model_prices": json.dumps(PRICES),
        }
        settings = Settings(**(values | overrides))
        app = create_app(settings, registry=make_registry())
        runtime = EmfRuntime(ServerThread(app).start(), settings, app.state.lifecycle.assembly.telemetry)
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.close()


def documents(text: str) -> list[dict[str, Any]]:
    """Every line written, each checked to be a valid EMF document (the specification's rules)."""
    parsed = []
    for line in text.splitlines():
        document = json.loads(line)
        metadata = document["_aws"]
        assert isinstance(metadata["Timestamp"], int)
        for directive in metadata["CloudWatchMetrics"]:
            assert directive["Namespace"] == "agentstage"
            assert 1 <= len(directive["Dimensions"])
            for keys in directive["Dimensions"]:
                assert len(keys) <= 30
                for key in keys:
                    assert isinstance(document[key], str) and 1 <= len(document[key]) <= MAX_DIMENSION_VALUE
            assert len(directive["Metrics"]) <= MAX_METRICS
            for definition in directive["Metrics"]:
                assert set(definition) == {"Name", "Unit"} and definition["Unit"] in UNITS
                value = document[definition["Name"]]
                values = value if isinstance(value, list) else [value]
                assert 1 <= len(values) <= MAX_VALUES
                assert all(isinstance(v, int | float) and math.isfinite(v) for v in values)
        parsed.append(document)
    return parsed


def metric_points(
    docs: list[dict[str, Any]], name: str
) -> list[tuple[dict[str, Any], Any, str, list[list[str]]]]:
    """(root dimensions, value, unit, dimension sets) of each document carrying metric ``name``."""
    found = []
    for document in docs:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for definition in directive["Metrics"]:
                if definition["Name"] == name:
                    keys = {key for keys in directive["Dimensions"] for key in keys}
                    dimensions = {key: document[key] for key in keys}
                    found.append((dimensions, document[name], definition["Unit"], directive["Dimensions"]))
    return found


def total(docs: list[dict[str, Any]], name: str, **dimensions: str) -> float:
    """The sum of metric ``name`` over the documents whose dimensions include ``dimensions``."""
    return sum(
        sum(value) if isinstance(value, list) else value
        for found, value, _, _ in metric_points(docs, name)
        if dimensions.items() <= found.items()
    )


def flushed(runtime: EmfRuntime, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    runtime.telemetry.flush()
    return documents(capsys.readouterr().out)


def test_runs_tokens_and_cost_per_agent_and_model(
    emf_runtime: RuntimeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = emf_runtime()
    capsys.readouterr()
    answers = {
        "assistant": runtime.invoke("assistant", "calc 2+3").json(),  # two model calls around the tool
        "restricted": runtime.invoke("restricted", "hello there").json(),
    }
    assert capsys.readouterr().out == "", "nothing is written before the host flushes"
    assert [step["kind"] for step in answers["assistant"]["steps"]] == ["model", "tool", "model"]
    docs = flushed(runtime, capsys)

    for agent, answer in answers.items():
        own = [d for d in docs if d.get("Agent") == agent]
        calls = [step["usage"] for step in answer["steps"] if step["kind"] == "model"]
        served_in, served_out = (
            sum(usage[kind] for usage in calls) for kind in ("prompt_tokens", "completion_tokens")
        )
        assert (served_in, served_out) == (
            answer["usage"]["prompt_tokens"],
            answer["usage"]["completion_tokens"],
        )
        by_agent = {"Environment": ENVIRONMENT, "Agent": agent}
        by_model = {**by_agent, "Model": "gpt-4o-mini"}
        assert metric_points(own, "Runs") == [(by_agent, 1, "Count", [["Environment", "Agent"]])]
        assert metric_points(own, "RunErrors") == [(by_agent, 0, "Count", [["Environment", "Agent"]])]
        [(_, durations, unit, _)] = metric_points(own, "RunDuration")
        assert unit == "Milliseconds" and len(durations) == 1 and durations[0] > 0
        both = [["Environment", "Agent"], ["Environment", "Agent", "Model"]]
        assert metric_points(own, "InputTokens") == [(by_model, served_in, "Count", both)]
        assert metric_points(own, "OutputTokens") == [(by_model, served_out, "Count", both)]
        [(_, cost, unit, sets)] = metric_points(own, "CostUSD")
        assert (cost, unit, sets) == (
            pytest.approx((served_in * 1000 + served_out * 2000) / 1e6),
            "None",
            both,
        )
        assert total(own, "ModelCalls", **by_model) == len(calls) and total(own, "ModelErrors") == 0
        [(_, model_durations, unit, _)] = metric_points(own, "ModelCallDuration")
        assert unit == "Milliseconds" and len(model_durations) == len(calls)


def test_counters_are_deltas_and_an_empty_flush_writes_nothing(
    emf_runtime: RuntimeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = emf_runtime()
    first = runtime.invoke("restricted", "hi").json()["usage"]
    assert total(flushed(runtime, capsys), "InputTokens", Agent="restricted") == first["prompt_tokens"]
    assert flushed(runtime, capsys) == []
    second = runtime.invoke("restricted", "hi there").json()["usage"]
    docs = flushed(runtime, capsys)
    assert total(docs, "InputTokens", Agent="restricted") == second["prompt_tokens"]
    assert total(docs, "Runs", Agent="restricted") == 1


def test_failures_retries_and_the_breaker(
    emf_runtime: RuntimeFactory, model: ScriptedModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    model.faults["*"] = Faults(rate_500=1.0)
    runtime = emf_runtime(llm_max_retries=2, retry_base_seconds=0.01, breaker_failure_threshold=3)
    assert runtime.invoke("restricted", "hi").status_code == 502
    docs = flushed(runtime, capsys)
    assert total(docs, "Runs", Agent="restricted") == 1
    assert total(docs, "RunErrors", Agent="restricted") == 1
    assert total(docs, "ModelCalls", Agent="restricted", Model="gpt-4o-mini") == 3
    assert total(docs, "ModelErrors", Agent="restricted", Model="gpt-4o-mini") == 3
    assert total(docs, "InputTokens") == 0, "failed calls report no usage"
    [(dimensions, retries, unit, sets)] = metric_points(docs, "ModelRetries")
    assert (dimensions, retries, unit, sets) == (
        {"Environment": ENVIRONMENT, "Model": "gpt-4o-mini"},
        2,
        "Count",
        [["Environment", "Model"]],
    )
    [(_, states, _, _)] = metric_points(docs, "BreakerState")
    assert states == [2], "the third failure opened the breaker"


def test_budget_metrics(emf_runtime: RuntimeFactory, capsys: pytest.CaptureFixture[str]) -> None:
    budget = {"name": "few", "scope": "agent", "match": "restricted", "window_seconds": 3600, "requests": 1}
    runtime = emf_runtime(budgets=json.dumps([budget]))
    assert [runtime.invoke("restricted", "hi").status_code for _ in range(2)] == [200, 429]
    docs = flushed(runtime, capsys)
    by_budget = {"Environment": ENVIRONMENT, "Budget": "few", "BudgetMetric": "requests"}
    assert metric_points(docs, "BudgetReserved") == [
        (by_budget, 1, "Count", [["Environment", "Budget", "BudgetMetric"]])
    ]
    assert total(docs, "BudgetSettled", **by_budget) == 1
    [(dimensions, refused, _, _)] = metric_points(docs, "BudgetRefused")
    assert (dimensions, refused) == ({**by_budget, "Reason": "exhausted"}, 1)
    [(dimensions, pressure, unit, _)] = metric_points(docs, "BudgetPressure")
    assert (dimensions, pressure, unit) == (
        {"Environment": ENVIRONMENT, "Agent": "restricted"},
        [100.0],
        "Percent",
    )
    assert total(docs, "RunErrors", Agent="restricted") == 1, "the refused run"


def test_every_run_counts_whatever_the_caller_sampled(
    emf_runtime: RuntimeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = emf_runtime()
    unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    body = {"input": "hi"}
    assert runtime.post("/v1/agents/restricted/invoke", body, headers={"traceparent": unsampled}).is_success
    assert total(flushed(runtime, capsys), "Runs", Agent="restricted") == 1


def test_a_delegation_is_not_a_run_of_the_agent_it_waits_for() -> None:
    """An orchestrator's ``delegate`` span names the agent whose runtime runs (and counts) the task."""
    stream = io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(EmfMetrics(ENVIRONMENT, EmfBuffer("agentstage", stream=stream)))
    tracer = provider.get_tracer("test")
    for kind in (SpanKind.SERVER, SpanKind.PRODUCER):
        attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "billing"}
        tracer.start_span("run", kind=kind, attributes=attributes).end()
    provider.force_flush()
    assert total(documents(stream.getvalue()), "Runs", Agent="billing") == 1


def test_the_emf_exporter_loads_no_metrics_sdk_and_no_exporter() -> None:
    """The spans it derives the metrics from need the SDK's tracer; nothing else of the SDK, no exporter and
    no AWS SDK is loaded, and nothing is written at startup."""
    code = (
        "import sys; from agent_runtime.api import create_app; create_app(); "
        "print('opentelemetry.sdk.trace' in sys.modules, [m for m in sys.modules if m.startswith("
        "('opentelemetry.sdk.metrics', 'opentelemetry.exporter', 'botocore', 'azure.monitor'))])"
    )
    environment = {"AGENTSTAGE_TELEMETRY_EXPORTER": "emf", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd="runtime",
        env=environment,
    )
    assert out.stdout == "True []\n"


def test_without_the_emf_exporter_a_flush_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    telemetry = Telemetry(Settings(), Redactor())
    telemetry.budget_reserved("few", "requests", 1)
    telemetry.flush()
    assert capsys.readouterr().out == ""


# -- the format on its own ---------------------------------------------------------------------------

COUNT = Metric("Things", "Count", "sum", (("Environment",),))
TIMES = Metric("Time", "Milliseconds", "values", (("Environment",),))


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_arrays_and_metrics_are_split_at_the_specifications_limits() -> None:
    stream = io.StringIO()
    buffer = EmfBuffer("agentstage", stream=stream, clock=Clock())
    for value in range(150):
        buffer.record(TIMES, value, {"Environment": "x"})
    many = [Metric(f"M{index}", "Count", "sum", (("Environment",),)) for index in range(MAX_METRICS + 20)]
    for metric in many:
        buffer.record(metric, 1, {"Environment": "x"})
    buffer.flush()
    docs = documents(stream.getvalue())
    assert [len(d["Time"]) for d in docs if "Time" in d] == [100, 50]
    assert sorted(d["Time"][0] for d in docs if "Time" in d) == [0, 100]
    names = [
        definition["Name"]
        for d in docs
        for c in d["_aws"]["CloudWatchMetrics"]
        for definition in c["Metrics"]
    ]
    assert sorted(n for n in names if n.startswith("M")) == sorted(m.name for m in many), "each metric once"
    assert all(d["_aws"]["Timestamp"] == 1_700_000_000_000 for d in docs)


def test_values_are_checked_and_long_dimension_values_cut() -> None:
    stream = io.StringIO()
    buffer = EmfBuffer("agentstage", stream=stream)
    with pytest.raises(ValueError, match=r"metric Things: no value for dimensions \['Environment'\]"):
        buffer.record(COUNT, 1, {"Agent": "a"})
    buffer.record(COUNT, math.nan, {"Environment": "x"})
    buffer.record(COUNT, 2, {"Environment": "y" * 2000})
    buffer.flush()
    [document] = documents(stream.getvalue())
    assert document["Environment"] == "y" * MAX_DIMENSION_VALUE and document["Things"] == 2
    with pytest.raises(ValueError, match="at most 30 keys"):
        Metric("Wide", "Count", "sum", (tuple(f"K{index}" for index in range(31)),))
    with pytest.raises(ValueError, match="cannot share its name with a dimension"):
        Metric("Agent", "Count", "sum", (("Agent",),))


def test_a_buffer_nobody_flushes_flushes_itself_when_full_or_old() -> None:
    stream, clock = io.StringIO(), Clock()
    buffer = EmfBuffer("agentstage", stream=stream, clock=clock, max_buffered=3, max_age_seconds=60)
    for _ in range(2):
        buffer.record(TIMES, 1.0, {"Environment": "x"})
    assert stream.getvalue() == ""
    buffer.record(TIMES, 1.0, {"Environment": "x"})
    assert [d["Time"] for d in documents(stream.getvalue())] == [[1.0, 1.0, 1.0]]
    stream.truncate(0), stream.seek(0)
    clock.now += 3600  # an idle hour does not age the next value
    buffer.record(COUNT, 1, {"Environment": "x"})
    assert stream.getvalue() == ""
    clock.now += 60
    buffer.record(COUNT, 1, {"Environment": "x"})
    assert [d["Things"] for d in documents(stream.getvalue())] == [2]
