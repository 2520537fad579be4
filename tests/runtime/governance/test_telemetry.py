"""Traces and metrics follow the GenAI semantic conventions, and the caller's trace context reaches the
model endpoint; exporters are chosen by settings and imported only when chosen."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from otel_helpers import Otel
from runtime_helpers import RuntimeFactory

from agent_runtime.governance.redaction import Redactor
from agent_runtime.settings import Settings
from agent_runtime.telemetry import AZURE_MONITOR_INSTRUMENTATIONS, Telemetry
from agent_runtime.testing import ScriptedModelServer
from agent_runtime.trace import TokenUsage

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_a_run_is_one_trace_of_genai_spans_under_the_callers_traceparent(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer, otel: Otel
) -> None:
    runtime = runtime_factory(app_options=otel.app_options)
    body = {"input": "calc 2+3", "conversation_id": "conv-1"}
    response = runtime.post("/v1/agents/assistant/invoke", body, headers={"traceparent": TRACEPARENT})
    assert response.json()["answer"] == "5", response.text
    spans = otel.spans.get_finished_spans()
    assert sorted(s.name for s in spans) == [
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "execute_tool calculator",
        "invoke_agent assistant",
    ]
    assert {f"{s.context.trace_id:032x}" for s in spans} == {TRACE_ID}
    run = otel.span("invoke_agent assistant")
    assert run.parent is not None and f"{run.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.agent.name"] == "assistant"
    assert run.attributes["gen_ai.conversation.id"] == "conv-1"
    chat = next(s for s in spans if s.name.startswith("chat"))
    assert chat.parent.span_id == run.context.span_id
    assert {
        k: chat.attributes[k]
        for k in ("gen_ai.operation.name", "gen_ai.request.model", "gen_ai.provider.name")
    } == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.provider.name": "openai",
    }
    assert (
        chat.attributes["gen_ai.usage.input_tokens"] > 0 and chat.attributes["gen_ai.usage.output_tokens"] > 0
    )
    assert chat.attributes["agentstage.route.reason"] == "default"
    tool = otel.span("execute_tool calculator")
    assert tool.attributes["gen_ai.tool.name"] == "calculator" and tool.parent.span_id == run.context.span_id
    assert not any(event.name.startswith("gen_ai.") for s in spans for event in s.events), (
        "content capture is off"
    )

    chat_ids = {f"{s.context.span_id:016x}" for s in spans if s.name.startswith("chat")}
    sent = [headers["traceparent"].split("-") for headers in model.headers]
    assert [(trace, span in chat_ids) for _, trace, span, _ in sent] == [(TRACE_ID, True)] * 2


def test_global_providers_add_no_span_or_metric_beside_the_runs_own(
    runtime_factory: RuntimeFactory, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An auto-instrumenting agent or a vendor's distro sets the global providers; FastAPI's own telemetry
    would then trace every request - the hot routes included - past the runtime's sampling and redaction."""
    global_telemetry = Otel()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", global_telemetry.tracer_provider)
    monkeypatch.setattr(metrics._internal, "_METER_PROVIDER", global_telemetry.meter_provider)
    runtime = runtime_factory(app_options=otel.app_options)
    assert runtime.invoke("restricted", "hello there").status_code == 200
    assert runtime.http.get("/healthz").status_code == 200
    assert {s.name for s in otel.spans.get_finished_spans()} == {
        "invoke_agent restricted",
        "chat gpt-4o-mini",
    }
    assert global_telemetry.spans.get_finished_spans() == ()
    assert global_telemetry.collect() == {}


def test_token_usage_and_duration_metrics(runtime_factory: RuntimeFactory, otel: Otel) -> None:
    runtime = runtime_factory(app_options=otel.app_options)
    usage = runtime.invoke("restricted", "hello there").json()["usage"]
    points = otel.collect(waiting_for=("gen_ai.client.token.usage", "gen_ai.client.operation.duration"))
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in points["gen_ai.client.token.usage"]}
    assert tokens == {"input": usage["prompt_tokens"], "output": usage["completion_tokens"]}
    [duration] = points["gen_ai.client.operation.duration"]
    assert duration.count == 1 and duration.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    chat = next(s for s in otel.spans.get_finished_spans() if s.name.startswith("chat"))
    exemplars = [e for p in points["gen_ai.client.token.usage"] for e in p.exemplars] + duration.exemplars
    assert len(exemplars) == 3, "every record of a traced call has its exemplar"
    assert {(e.trace_id, e.span_id) for e in exemplars} == {(chat.context.trace_id, chat.context.span_id)}


def test_a_model_calls_histograms_are_recorded_once_the_step_under_way_ends(otel: Otel) -> None:
    """After the response is written on a request's path; at once outside an event loop."""
    telemetry = Telemetry(
        Settings(), Redactor(), tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    usage = TokenUsage(prompt_tokens=3, completion_tokens=2, total_tokens=5)

    def record() -> None:
        span = telemetry.start_chat(None, "m", "agent")
        telemetry.model_call(span, model="m", response_model="m", usage=usage, seconds=0.25, cost=0.0)
        telemetry.end(span)

    def calls() -> int:
        return sum(point.count for point in otel.metric_points("gen_ai.client.operation.duration"))

    async def on_a_loop() -> None:
        record()
        assert calls() == 0, "not while the step is under way"
        await asyncio.sleep(0)
        assert calls() == 1

    asyncio.run(on_a_loop())
    record()
    assert calls() == 2
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum for p in otel.metric_points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 6, "output": 4}


def test_failures_and_retries_are_counted(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer, otel: Otel
) -> None:
    from agent_runtime.testing import Faults

    model.faults["*"] = Faults(rate_500=1.0)
    runtime = runtime_factory(app_options=otel.app_options, llm_max_retries=2, retry_base_seconds=0.01)
    assert runtime.invoke("restricted", "hi").status_code == 502
    assert sum(p.value for p in otel.metric_points("agentstage.model.errors")) == 3
    assert sum(p.value for p in otel.metric_points("agentstage.model.retries")) == 2
    run = otel.span("invoke_agent restricted")
    assert run.attributes["error.type"] == "model_error"


def test_no_exporter_means_no_sdk_and_nothing_heavy_is_imported_at_startup() -> None:
    code = (
        "import sys; from agent_runtime.api import create_app; create_app(); "
        "print([m for m in ('opentelemetry.sdk', 'azure.monitor.opentelemetry') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="runtime"
    )
    assert out.stdout.strip() == "[]"


def test_azure_monitor_is_configured_with_the_managed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.monitor.opentelemetry as azure_monitor

    calls: dict[str, Any] = {}
    monkeypatch.setattr(azure_monitor, "configure_azure_monitor", lambda **kwargs: calls.update(kwargs))
    settings = Settings(
        telemetry_exporter="azure_monitor",
        applicationinsights_connection_string="InstrumentationKey=00000000-0000-0000-0000-000000000000",
        identity_client_id="client-123",
    )
    Telemetry(settings, Redactor())
    assert calls["connection_string"].startswith("InstrumentationKey=")
    assert type(calls["credential"]).__name__ == "ManagedIdentityCredential"
    assert calls["resource"].attributes["service.name"] == "agentstage-runtime"


AZURE_MONITOR_CHECK = """
import os, sys
from agent_runtime.governance.redaction import Redactor
from agent_runtime.settings import Settings
from agent_runtime.telemetry import Telemetry
Telemetry(Settings(telemetry_exporter="azure_monitor", applicationinsights_connection_string=sys.argv[1]), Redactor())
import fastapi
from azure.core.settings import settings
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
print(fastapi.FastAPI.__name__, settings.tracing_implementation() is not None, [
    instrumentor().is_instrumented_by_opentelemetry
    for instrumentor in (HTTPXClientInstrumentor, RequestsInstrumentor, URLLib3Instrumentor)
], flush=True)
os._exit(0)  # without the exporters' flush at exit
"""


def test_azure_monitor_traces_the_azure_sdk_but_neither_the_framework_nor_any_fetched_url(
    tmp_path: Path,
) -> None:
    """The real distro, not a stub, in a process of its own: it patches FastAPI's class and the HTTP clients
    for the whole process, which must not reach the other tests."""
    ingestion = (
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
    )
    env = {
        **os.environ,
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",  # the distro's Azure VM detector asks the IMDS
        "AGENTSTAGE_SQLITE_PATH": str(tmp_path / "state.db"),
    }
    out = subprocess.run(
        [sys.executable, "-c", AZURE_MONITOR_CHECK, ingestion],
        capture_output=True,
        text=True,
        check=True,
        cwd="runtime",
        env=env,
        timeout=60,
    )
    assert out.stdout.split("\n")[0] == "FastAPI True [False, False, False]", out.stdout + out.stderr


def test_every_instrumentation_of_the_azure_monitor_distro_is_decided() -> None:
    from azure.monitor.opentelemetry import _constants

    assert set(AZURE_MONITOR_INSTRUMENTATIONS) == set(_constants._ALL_SUPPORTED_INSTRUMENTED_LIBRARIES)


def test_console_exporter_builds_sdk_providers() -> None:
    telemetry = Telemetry(Settings(telemetry_exporter="console"), Redactor())
    try:
        assert type(telemetry.tracer).__module__.startswith("opentelemetry.sdk")
    finally:
        telemetry.shutdown()
