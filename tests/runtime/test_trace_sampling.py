"""``trace_sample_ratio``: roots traced by trace id at the ratio, a caller's traceparent decision followed."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from agent_runtime.governance.setup import build_redactor
from agent_runtime.settings import Settings
from agent_runtime.telemetry import Telemetry

SAMPLED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
NOT_SAMPLED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}


@pytest.fixture
def telemetry_for() -> Iterator[Callable[..., Telemetry]]:
    made: list[Telemetry] = []

    def make(**overrides: object) -> Telemetry:
        # An OTLP endpoint nobody listens on: nothing is exported before shutdown drops it.
        settings = Settings(telemetry_exporter="otlp", otlp_endpoint="http://127.0.0.1:9", **overrides)
        made.append(Telemetry(settings, build_redactor(settings)))
        return made[-1]

    yield make
    for telemetry in made:
        telemetry.shutdown()


def _recorded(telemetry: Telemetry, headers: dict[str, str] | None, runs: int = 1) -> int:
    spans = [telemetry.start_run("assistant", None, headers) for _ in range(runs)]
    return sum(span.is_recording() for span in spans)


def test_without_a_ratio_every_run_is_traced(
    telemetry_for: Callable[..., Telemetry], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    assert _recorded(telemetry_for(), None, runs=50) == 50


def test_a_ratio_traces_that_share_of_the_roots(telemetry_for: Callable[..., Telemetry]) -> None:
    assert _recorded(telemetry_for(trace_sample_ratio=0.0), None, runs=200) == 0
    assert _recorded(telemetry_for(trace_sample_ratio=1.0), None, runs=200) == 200
    assert 40 < _recorded(telemetry_for(trace_sample_ratio=0.5), None, runs=200) < 160


def test_a_callers_decision_is_followed_whatever_the_ratio(telemetry_for: Callable[..., Telemetry]) -> None:
    assert _recorded(telemetry_for(trace_sample_ratio=0.0), SAMPLED) == 1
    assert _recorded(telemetry_for(trace_sample_ratio=1.0), NOT_SAMPLED) == 0


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_a_ratio_outside_zero_to_one_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="trace_sample_ratio"):
        Settings(trace_sample_ratio=ratio)
