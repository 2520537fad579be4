"""Traces and metrics follow the GenAI semantic conventions, and the caller's trace context reaches the
model endpoint; exporters are chosen by settings and imported only when chosen."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from otel_helpers import Otel
from runtime_helpers import RuntimeFactory

from agent_runtime.governance.redaction import Redactor
from agent_runtime.settings import Settings
from agent_runtime.telemetry import Telemetry
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


def test_console_exporter_builds_sdk_providers() -> None:
    telemetry = Telemetry(Settings(telemetry_exporter="console"), Redactor())
    try:
        assert type(telemetry.tracer).__module__.startswith("opentelemetry.sdk")
    finally:
        telemetry.shutdown()
