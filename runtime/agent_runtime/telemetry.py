"""OpenTelemetry traces, metrics and structured logs with the GenAI semantic conventions.

Spans: ``invoke_agent <agent>`` per run (child of the caller's W3C ``traceparent``), ``chat <model>`` per
model attempt, ``execute_tool <tool>`` per tool call. Metrics: ``gen_ai.client.token.usage`` and
``gen_ai.client.operation.duration`` (the conventions' histograms) plus the runtime's cost, errors, retries,
breaker state and budget pressure. The trace context of the current span goes out on every outgoing HTTP
request of the model client (:meth:`Telemetry.inject_headers`) and the tools' shared client
(:meth:`Telemetry.inject`).

Exporters come from settings: ``none`` (no-op API objects: near-zero cost), ``console``, ``otlp`` (HTTP),
``azure_monitor`` or ``emf`` (CloudWatch Embedded Metric Format records per agent and model, on stdout or
to the CloudWatch agent: :mod:`agent_runtime.telemetry_emf`; traces stay in the process); SDK and exporter
packages are imported only when chosen, so cold start pays nothing for them otherwise. A host whose process is frozen between
events (Lambda) calls :meth:`Telemetry.flush` after each one. Content (prompts, answers, tool arguments and
results) is recorded only with ``capture_content``, and always through the redactor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import httpx
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agent_runtime.errors import AgentRuntimeError, ModelError
from agent_runtime.governance.redaction import Redactor
from agent_runtime.resilience import BreakerState, Observer
from agent_runtime.settings import Settings
from agent_runtime.telemetry_counters import LocalCounter, LocalGauge
from agent_runtime.trace import TokenUsage

if TYPE_CHECKING:
    from agent_runtime.telemetry_emf import EmfMetrics

ModelOperation = Literal["chat", "embeddings"]
"""The GenAI semantic conventions' ``gen_ai.operation.name`` of the model calls the runtime makes."""

content_log = logging.getLogger("agentstage.genai")
_PROPAGATOR = TraceContextTextMapPropagator()
_PROVIDER_NAMES = {
    "openai": "openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
}
"""``gen_ai.system`` of each provider, as the OpenTelemetry GenAI conventions name them."""
EXPORT_BATCH_SIZE = 64
"""Spans per OTLP/console export, unless ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` says otherwise."""

AZURE_MONITOR_INSTRUMENTATIONS = {
    "azure_sdk": True,
    **dict.fromkeys(
        ("django", "fastapi", "flask", "httpx", "httpx2", "psycopg2", "requests", "urllib", "urllib3"), False
    ),
}
"""The Azure Monitor distro's automatic instrumentations, each on or off: the Azure SDK's calls (Cosmos DB,
Service Bus, Storage, Key Vault) stay traced as dependencies; the web framework and HTTP clients do not. The
runtime's own ``invoke_agent`` span is the request (a server span); a framework span beside it would be one
more per request, unsampled by the run's decision and costing the hot routes; a client span records every
URL the process fetches - a tool's ``http_get`` of any page, query string included - outside the redactor.
A test holds this to the installed distro's list, so a new instrumentation is a decision, not a default."""


BUDGET_RESERVED, BUDGET_SETTLED, BUDGET_REFUSED = (
    "agentstage.budget.reserved",
    "agentstage.budget.settled",
    "agentstage.budget.refused",
)
BUDGET_NAME, BUDGET_METRIC, BUDGET_REASON = (
    "agentstage.budget.name",
    "agentstage.budget.metric",
    "agentstage.budget.reason",
)
"""Budget metrics and their attributes: the dashboard's budget query reads these names."""
COST_ATTRIBUTE = "agentstage.usage.cost_usd"
"""The attribute of a model call's span with its price in USD (only when the model has one)."""


class Telemetry(Observer):
    def __init__(
        self,
        settings: Settings,
        redactor: Redactor,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._redactor = redactor
        self._capture = settings.capture_content
        self._provider = _PROVIDER_NAMES[settings.llm_provider]
        self._shutdown: list[Any] = []
        self._emf: EmfMetrics | None = None
        if tracer_provider is None and meter_provider is None:
            tracer_provider, meter_provider = self._configure(settings)
        self.tracer = (tracer_provider or trace.NoOpTracerProvider()).get_tracer("agentstage.runtime")
        meter = (meter_provider or metrics.NoOpMeterProvider()).get_meter("agentstage.runtime")
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per model call."
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Duration of model calls."
        )
        # Counters and gauges are summed locally and collected off the request path (telemetry_counters).
        self._cost = LocalCounter(
            meter, "agentstage.model.cost", unit="USD", description="Priced model usage."
        )
        self._errors = LocalCounter(meter, "agentstage.model.errors", description="Failed model attempts.")
        self._retries = LocalCounter(meter, "agentstage.model.retries", description="Model call retries.")
        self._breaker = LocalGauge(
            meter, "agentstage.breaker.state", description="Circuit breaker: 0 closed, 1 half-open, 2 open."
        )
        self._budget = LocalGauge(
            meter,
            "agentstage.budget.pressure",
            description="Highest fraction of any budget in use after a reservation.",
        )
        self._budget_reserved = LocalCounter(
            meter,
            BUDGET_RESERVED,
            description="Held by model calls before they ran, per budget and metric (tokens, requests, "
            "micro-USD).",
        )
        self._budget_settled = LocalCounter(
            meter, BUDGET_SETTLED, description="Really spent by model calls, per budget and metric."
        )
        self._budget_refused = LocalCounter(
            meter,
            BUDGET_REFUSED,
            description="Calls refused, per budget, metric and reason: exhausted (spent) or held (by calls "
            "in flight, after waiting).",
        )
        self._budget_wait = meter.create_histogram(
            "agentstage.budget.wait.duration",
            unit="s",
            description="How long calls waited for calls in flight to settle before they were admitted.",
        )

    def _configure(
        self, settings: Settings
    ) -> tuple[trace.TracerProvider | None, metrics.MeterProvider | None]:
        """SDK providers for the chosen exporter (imported here, not at module import)."""
        if settings.telemetry_exporter == "none":
            return None, None
        if settings.telemetry_exporter == "azure_monitor":
            from azure.monitor.opentelemetry import configure_azure_monitor

            credential = None
            if settings.identity_client_id:
                from azure.identity import ManagedIdentityCredential

                credential = ManagedIdentityCredential(client_id=settings.identity_client_id)
            sampling = (
                {} if settings.trace_sample_ratio is None else {"sampling_ratio": settings.trace_sample_ratio}
            )
            configure_azure_monitor(
                connection_string=settings.applicationinsights_connection_string,
                credential=credential,
                resource=_resource(settings),
                instrumentation_options={
                    library: {"enabled": enabled}
                    for library, enabled in AZURE_MONITOR_INSTRUMENTATIONS.items()
                },
                **sampling,
            )
            return trace.get_tracer_provider(), metrics.get_meter_provider()
        if settings.telemetry_exporter == "emf":
            return self._configure_emf(settings), None
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if settings.telemetry_exporter == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            span_exporter: Any = ConsoleSpanExporter()
            metric_exporter: Any = ConsoleMetricExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            base = settings.otlp_endpoint.rstrip("/") if settings.otlp_endpoint else None
            span_exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces" if base else None)
            metric_exporter = OTLPMetricExporter(endpoint=f"{base}/v1/metrics" if base else None)
        tracer_provider = TracerProvider(resource=_resource(settings), sampler=_sampler(settings))
        # Small batches: encoding a batch holds the GIL, and requests on the event loop wait for it (up to
        # the 5 ms switch interval at a time). 512 spans (the SDK's default) stalled requests by 10-40 ms
        # at p99; 64 keeps each stall to a couple of milliseconds for the same spans exported.
        batch_size = None if "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in os.environ else EXPORT_BATCH_SIZE
        tracer_provider.add_span_processor(
            BatchSpanProcessor(span_exporter, max_export_batch_size=batch_size)
        )
        meter_provider = MeterProvider(
            resource=_resource(settings), metric_readers=[PeriodicExportingMetricReader(metric_exporter)]
        )
        self._shutdown += [tracer_provider, meter_provider]
        return tracer_provider, meter_provider

    def _configure_emf(self, settings: Settings) -> trace.TracerProvider:
        """Spans recorded (every one: the metrics must count each run, whatever the caller sampled) and
        turned into EMF metrics as they end; none is exported."""
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        from agent_runtime.telemetry_emf import EmfMetrics

        self._emf = EmfMetrics.from_settings(settings)
        tracer_provider = TracerProvider(resource=_resource(settings), sampler=ALWAYS_ON)
        tracer_provider.add_span_processor(self._emf)
        self._shutdown.append(tracer_provider)
        return tracer_provider

    def flush(self) -> None:
        """Send what was recorded so far: EMF lines written, OTLP/console batches exported. A Lambda host
        calls it after each event, before the instance is frozen; nothing to do for ``none``."""
        for provider in self._shutdown:
            provider.force_flush()

    def shutdown(self) -> None:
        """Flush and stop the providers this object created."""
        for provider in self._shutdown:
            provider.shutdown()

    # -- spans ---------------------------------------------------------------------------------------
    # Spans are started and ended explicitly, and made current only around each await (``active``): a
    # run's generator may be resumed in another task (a streamed response), where a context attached in
    # the first task could not be detached.

    def start_run(self, agent: str, conversation_id: str | None, headers: Mapping[str, str] | None) -> Span:
        """The run's span, child of the caller's ``traceparent`` when it sent one."""
        attributes: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}
        if conversation_id:
            attributes["gen_ai.conversation.id"] = conversation_id
        parent = _PROPAGATOR.extract(headers) if headers else None
        return self.tracer.start_span(f"invoke_agent {agent}", parent, SpanKind.SERVER, attributes)

    def start_chat(
        self,
        parent: Span | None,
        model: str,
        agent: str,
        route_reason: str | None = None,
        *,
        operation: ModelOperation = "chat",
    ) -> Span:
        """A model call's span (``chat`` or ``embeddings``); a root span when there is no run around it."""
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": model,
            "gen_ai.provider.name": self._provider,
            "gen_ai.agent.name": agent,
        }
        if route_reason is not None:
            attributes["agentstage.route.reason"] = route_reason
        context = _child_of(parent) if parent is not None else None
        return self.tracer.start_span(f"{operation} {model}", context, SpanKind.CLIENT, attributes)

    def start_tool(self, parent: Span, tool: str, call_id: str, agent: str) -> Span:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.agent.name": agent,
        }
        return self.tracer.start_span(
            f"execute_tool {tool}", _child_of(parent), SpanKind.INTERNAL, attributes
        )

    def end(self, span: Span, error: BaseException | None = None) -> None:
        """End ``span``; a runtime error is recorded by code with a redacted message, never a traceback.

        ``GeneratorExit`` is no failure: the consumer closed the run's generator, after taking its result
        (every run that is not streamed ends so) or because its caller went away.
        """
        if isinstance(error, GeneratorExit):
            error = None
        if isinstance(error, AgentRuntimeError):
            span.set_attribute("error.type", error.code)
            span.set_status(Status(StatusCode.ERROR, self._redactor.redact(error.message)))
        elif error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    @staticmethod
    def active(span: Span) -> AbstractContextManager[Span]:
        """Make ``span`` current for the awaits inside (so outgoing requests carry its trace context)."""
        return _Current(span)

    # -- recording -----------------------------------------------------------------------------------

    def model_call(
        self,
        span: Span,
        *,
        model: str,
        response_model: str,
        usage: TokenUsage,
        seconds: float,
        cost: float,
        operation: ModelOperation = "chat",
    ) -> None:
        """Usage on the model call's span and in the GenAI metrics.

        The span's attributes are set now; the histograms are recorded once the step under way has ended
        (:func:`_after_this_step`). On a request's path that step ends with the response written, so the SDK's
        three records no longer delay it (a sequential request answered 20-50 us sooner; the CPU is the
        same). They still count every call, with the call's span as their exemplars'.
        """
        span.set_attributes(
            {
                "gen_ai.response.model": response_model,
                "gen_ai.usage.input_tokens": usage.prompt_tokens,
                "gen_ai.usage.output_tokens": usage.completion_tokens,
            }
        )
        if cost:
            span.set_attribute(COST_ATTRIBUTE, cost)
        base = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": model,
            "gen_ai.provider.name": self._provider,
        }
        if cost:
            self._cost.add(cost, base)
        _after_this_step(partial(self._record_call, span, base, usage, seconds))

    def _record_call(self, span: Span, base: dict[str, str], usage: TokenUsage, seconds: float) -> None:
        context = trace.set_span_in_context(span)
        self._tokens.record(usage.prompt_tokens, {**base, "gen_ai.token.type": "input"}, context)
        self._tokens.record(usage.completion_tokens, {**base, "gen_ai.token.type": "output"}, context)
        self._duration.record(seconds, base, context)

    def content(self, span: Span, event: str, payload: Any) -> None:
        """Prompts, answers and tool traffic: redacted, and only with ``capture_content``."""
        if not self._capture:
            return
        redacted = json.dumps(self._redactor.redact_value(payload), default=str)
        span.add_event(event, {"content": redacted})
        content_log.info(
            json.dumps(
                {"event": event, "trace_id": f"{span.get_span_context().trace_id:032x}", "content": redacted}
            )
        )

    def budget_pressure(self, agent: str, pressure: float) -> None:
        self._budget.set(pressure, {"gen_ai.agent.name": agent})
        if self._emf is not None:
            self._emf.budget_pressure(agent, pressure)

    # -- BudgetMeter ---------------------------------------------------------------------------------

    def budget_reserved(self, budget: str, metric: str, amount: int) -> None:
        self._budget_reserved.add(amount, {BUDGET_NAME: budget, BUDGET_METRIC: metric})
        if self._emf is not None:
            self._emf.budget_reserved(budget, metric, amount)

    def budget_settled(self, budget: str, metric: str, amount: int) -> None:
        self._budget_settled.add(amount, {BUDGET_NAME: budget, BUDGET_METRIC: metric})
        if self._emf is not None:
            self._emf.budget_settled(budget, metric, amount)

    def budget_refused(self, budget: str, metric: str, reason: str) -> None:
        self._budget_refused.add(1, {BUDGET_NAME: budget, BUDGET_METRIC: metric, BUDGET_REASON: reason})
        if self._emf is not None:
            self._emf.budget_refused(budget, metric, reason)

    def budget_waited(self, budget: str, seconds: float) -> None:
        self._budget_wait.record(seconds, {BUDGET_NAME: budget})
        if self._emf is not None:
            self._emf.budget_waited(budget, seconds)

    # -- Observer (resilience) -----------------------------------------------------------------------

    def retry(self, deployment: str, error: ModelError, delay: float) -> None:
        self._retries.add(1, {"gen_ai.request.model": deployment})
        if self._emf is not None:
            self._emf.retry(deployment)
        trace.get_current_span().add_event("retry", {"gen_ai.request.model": deployment, "delay_s": delay})

    def failure(self, deployment: str, error: ModelError) -> None:
        self._errors.add(1, {"gen_ai.request.model": deployment, "error.type": error.code})

    def breaker(self, deployment: str, state: BreakerState) -> None:
        self._breaker.set(int(state), {"gen_ai.request.model": deployment})
        if self._emf is not None:
            self._emf.breaker(deployment, state)
        trace.get_current_span().add_event(
            "circuit_breaker", {"gen_ai.request.model": deployment, "state": state.name}
        )

    # -- propagation ---------------------------------------------------------------------------------

    @staticmethod
    async def inject(request: httpx.Request) -> None:
        """httpx request hook: the current span's ``traceparent`` on the outgoing request."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        request.headers.update(carrier)

    @staticmethod
    def inject_headers(headers: dict[str, str]) -> None:
        """The model client's header hook: the current span's ``traceparent`` into ``headers``."""
        _PROPAGATOR.inject(headers)


class _Current(AbstractContextManager[Span]):
    """``trace.use_span(span, record_exception=False, set_status_on_exception=False)`` as a plain class: the
    same attach and detach of the context, at a third of the cost of a generator-based context manager
    (every await of a run enters one; errors are recorded by :meth:`Telemetry.end`, not here)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *exc_info: object) -> None:
        otel_context.detach(self._token)


def _after_this_step(record: Callable[[], None]) -> None:
    """Run ``record`` at the event loop's next turn, after the step under way (at once outside a loop).

    The loop runs callbacks in the order they were scheduled, so ``record`` runs before anything that waits
    for the current task to finish (a host flushing telemetry after an event, a test reading metrics).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        record()
        return
    loop.call_soon(record)


def _child_of(parent: Span) -> otel_context.Context:
    return trace.set_span_in_context(parent)


def _sampler(settings: Settings) -> Any:
    """``trace_sample_ratio`` as a parent-based sampler: a caller's decision (its traceparent's sampled flag)
    is followed and a root is traced by its trace id, so every service samples the same traces; None (the
    SDK's own choice from OTEL_TRACES_SAMPLER) when the setting is unset."""
    if settings.trace_sample_ratio is None:
        return None
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    return ParentBased(TraceIdRatioBased(settings.trace_sample_ratio))


def _resource(settings: Settings) -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create(
        {"service.name": settings.service_name, "deployment.environment.name": settings.environment}
    )
