"""The runtime's metrics on CloudWatch, as Embedded Metric Format lines (``telemetry_exporter: emf``).

Per agent, the metrics come from the GenAI spans the runtime already makes: an ``invoke_agent`` span
carries the agent, its duration and its outcome; a ``chat`` or ``embeddings`` span the agent, the model,
the tokens and the price. Deriving them there keeps one source of truth, and gives every run's exact
duration to CloudWatch (which computes p50/p95 from them). The budget, retry and breaker signals, which
belong to no span, are recorded as they happen (:class:`Telemetry` forwards them).

Namespace :data:`NAMESPACE`; every metric carries the ``Environment`` dimension (the runtime's
``environment`` setting), so stacks sharing an account and region keep their metrics apart. The
monitoring component's dashboard reads these names (``components/aws/monitoring.py`` mirrors them; a test
proves they agree).

Lambda freezes an instance between events, so its host calls :meth:`Telemetry.flush` after each event. Where
standard output does not become metrics (pods on EKS), ``emf_agent_endpoint`` sends the documents to the
CloudWatch agent instead (:class:`~agent_runtime.emf.AgentSink`), into the log group
:func:`log_group` names; shutting down gives it :data:`SHUTDOWN_SECONDS` to deliver what it holds.
"""

from __future__ import annotations

import re

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from agent_runtime.emf import AgentSink, EmfBuffer, Metric, Sink, StreamSink
from agent_runtime.errors import ConfigurationError
from agent_runtime.resilience import BreakerState
from agent_runtime.settings import Settings
from agent_runtime.settings_contract import env_name, parse_agent_endpoint
from agent_runtime.telemetry import COST_ATTRIBUTE

NAMESPACE = "agentstage"
ENVIRONMENT, AGENT, MODEL = "Environment", "Agent", "Model"
BUDGET, BUDGET_METRIC, REASON = "Budget", "BudgetMetric", "Reason"

_BY_AGENT = ((ENVIRONMENT, AGENT),)
_BY_AGENT_MODEL = ((ENVIRONMENT, AGENT, MODEL),)
_BY_MODEL = ((ENVIRONMENT, MODEL),)

RUNS = Metric("Runs", "Count", "sum", _BY_AGENT)
RUN_ERRORS = Metric("RunErrors", "Count", "sum", _BY_AGENT)
"""Runs that ended in an error (0 for the others, so ``RunErrors / Runs`` is the error rate)."""
RUN_DURATION = Metric("RunDuration", "Milliseconds", "values", _BY_AGENT)
INPUT_TOKENS = Metric("InputTokens", "Count", "sum", _BY_AGENT + _BY_AGENT_MODEL)
OUTPUT_TOKENS = Metric("OutputTokens", "Count", "sum", _BY_AGENT + _BY_AGENT_MODEL)
COST = Metric("CostUSD", "None", "sum", _BY_AGENT + _BY_AGENT_MODEL)
"""Priced model usage in USD (CloudWatch has no currency unit); only calls to models with a price."""
MODEL_CALLS = Metric("ModelCalls", "Count", "sum", _BY_AGENT_MODEL)
MODEL_ERRORS = Metric("ModelErrors", "Count", "sum", _BY_AGENT_MODEL)
MODEL_DURATION = Metric("ModelCallDuration", "Milliseconds", "values", _BY_AGENT_MODEL)
MODEL_RETRIES = Metric("ModelRetries", "Count", "sum", _BY_MODEL)
BREAKER_STATE = Metric("BreakerState", "None", "values", _BY_MODEL)
"""Each transition of a model's circuit breaker: 0 closed, 1 half-open, 2 open (Maximum shows an open)."""
BUDGET_PRESSURE = Metric("BudgetPressure", "Percent", "values", _BY_AGENT)
"""The highest share of any budget in use after each reservation, in percent."""
BUDGET_RESERVED = Metric("BudgetReserved", "Count", "sum", ((ENVIRONMENT, BUDGET, BUDGET_METRIC),))
"""Held before model calls ran, per budget and metric (tokens, requests, micro-USD)."""
BUDGET_SETTLED = Metric("BudgetSettled", "Count", "sum", ((ENVIRONMENT, BUDGET, BUDGET_METRIC),))
BUDGET_REFUSED = Metric("BudgetRefused", "Count", "sum", ((ENVIRONMENT, BUDGET, BUDGET_METRIC, REASON),))
BUDGET_WAIT = Metric("BudgetWait", "Milliseconds", "values", ((ENVIRONMENT, BUDGET),))

_MODEL_OPERATIONS = frozenset({"chat", "embeddings"})

SHUTDOWN_SECONDS = 5.0
"""How long shutting down waits for the CloudWatch agent to take the records still held: well inside
Kubernetes' default 30-second grace period, beside the server's own draining."""
_LOG_GROUP_NAME = re.compile(r"[A-Za-z0-9_.#/-]{1,512}")
"""CloudWatch Logs' rule for a log group name."""


def log_group(environment: str) -> str:
    """The log group of the records sent to the CloudWatch agent: one per environment, as the metrics'
    ``Environment`` dimension is, so stacks sharing an account and region keep them apart. Infrastructure
    creates it (retention, KMS key) and lets the agent write to it; the name is this function's."""
    name = f"/agentstage/{environment}/metrics"
    if not _LOG_GROUP_NAME.fullmatch(name):
        raise ConfigurationError(
            f"{env_name('environment')} '{environment}' cannot name the EMF log group {name}: with "
            f"{env_name('emf_agent_endpoint')} set it may hold only letters, digits and _ . # / -"
        )
    return name


def sink_for(settings: Settings) -> Sink:
    """Standard output, or the CloudWatch agent ``emf_agent_endpoint`` names."""
    if settings.emf_agent_endpoint is None:
        return StreamSink()
    protocol, host, port = parse_agent_endpoint(settings.emf_agent_endpoint)
    return AgentSink(protocol, host, port, settings.emf_log_group or log_group(settings.environment))


class EmfMetrics(SpanProcessor):
    """Records the runtime's metrics into an :class:`EmfBuffer`; flushing the tracer provider writes them."""

    def __init__(self, environment: str, buffer: EmfBuffer | None = None) -> None:
        self._environment = environment
        self._buffer = buffer or EmfBuffer(NAMESPACE)

    @classmethod
    def from_settings(cls, settings: Settings) -> EmfMetrics:
        """The runtime's metrics for ``settings.environment``, written where :func:`sink_for` says."""
        return cls(settings.environment, EmfBuffer(NAMESPACE, sink=sink_for(settings)))

    # -- SpanProcessor -------------------------------------------------------------------------------

    def on_end(self, span: ReadableSpan) -> None:
        """A run is an ``invoke_agent`` span the runtime serves (kind SERVER): an orchestrator's
        ``delegate`` span (PRODUCER) names the agent it waits for, whose run its own runtime counts."""
        attributes = span.attributes or {}
        operation = attributes.get("gen_ai.operation.name")
        agent = attributes.get("gen_ai.agent.name")
        if not isinstance(agent, str) or span.start_time is None or span.end_time is None:
            return
        milliseconds = round((span.end_time - span.start_time) / 1e6, 3)
        failed = int(span.status.status_code is StatusCode.ERROR)
        if operation == "invoke_agent" and span.kind is SpanKind.SERVER:
            by_agent = {ENVIRONMENT: self._environment, AGENT: agent}
            self._buffer.record(RUNS, 1, by_agent)
            self._buffer.record(RUN_ERRORS, failed, by_agent)
            self._buffer.record(RUN_DURATION, milliseconds, by_agent)
        elif operation in _MODEL_OPERATIONS:
            model = attributes.get("gen_ai.request.model")
            if not isinstance(model, str):
                return
            by_model = {ENVIRONMENT: self._environment, AGENT: agent, MODEL: model}
            self._buffer.record(MODEL_CALLS, 1, by_model)
            self._buffer.record(MODEL_ERRORS, failed, by_model)
            self._buffer.record(MODEL_DURATION, milliseconds, by_model)
            for metric, key in (
                (INPUT_TOKENS, "gen_ai.usage.input_tokens"),
                (OUTPUT_TOKENS, "gen_ai.usage.output_tokens"),
                (COST, COST_ATTRIBUTE),
            ):
                value = attributes.get(key)
                if isinstance(value, int | float):
                    self._buffer.record(metric, value, by_model)

    def shutdown(self) -> None:
        self._buffer.close(SHUTDOWN_SECONDS)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write what was recorded, and wait (up to the timeout) until the sink has delivered it."""
        return self._buffer.drain(timeout_millis / 1000)

    # -- signals outside spans -----------------------------------------------------------------------

    def budget_pressure(self, agent: str, pressure: float) -> None:
        self._buffer.record(BUDGET_PRESSURE, pressure * 100, {ENVIRONMENT: self._environment, AGENT: agent})

    def budget_reserved(self, budget: str, metric: str, amount: int) -> None:
        self._buffer.record(BUDGET_RESERVED, amount, self._budget(budget, metric))

    def budget_settled(self, budget: str, metric: str, amount: int) -> None:
        self._buffer.record(BUDGET_SETTLED, amount, self._budget(budget, metric))

    def budget_refused(self, budget: str, metric: str, reason: str) -> None:
        self._buffer.record(BUDGET_REFUSED, 1, {**self._budget(budget, metric), REASON: reason})

    def budget_waited(self, budget: str, seconds: float) -> None:
        self._buffer.record(BUDGET_WAIT, seconds * 1000, {ENVIRONMENT: self._environment, BUDGET: budget})

    def retry(self, model: str) -> None:
        self._buffer.record(MODEL_RETRIES, 1, {ENVIRONMENT: self._environment, MODEL: model})

    def breaker(self, model: str, state: BreakerState) -> None:
        self._buffer.record(BREAKER_STATE, int(state), {ENVIRONMENT: self._environment, MODEL: model})

    def _budget(self, budget: str, metric: str) -> dict[str, str]:
        return {ENVIRONMENT: self._environment, BUDGET: budget, BUDGET_METRIC: metric}
