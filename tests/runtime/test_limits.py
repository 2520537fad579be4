"""The loop's limits: step limit, deadline, token budget; upstream failures are 502s."""

from __future__ import annotations

import json
import time

from otel_helpers import Otel
from runtime_helpers import AGENTS, Runtime, RuntimeFactory


def test_the_step_limit_stops_a_model_that_never_answers(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory(max_steps=3)
    response = runtime.invoke("assistant", "loop")
    assert response.status_code == 502
    assert response.json()["error"] == {
        "code": "step_limit_exceeded",
        "message": "agent 'assistant' did not answer within 3 model calls",
    }


def test_an_agent_can_set_its_own_step_limit(runtime_factory: RuntimeFactory, model) -> None:
    agents = [{**AGENTS[0], "max_steps": 2}]
    runtime = runtime_factory(agents=json.dumps(agents))
    assert runtime.invoke("assistant", "loop").json()["error"]["code"] == "step_limit_exceeded"
    assert len(model.requests) == 2


def test_the_deadline_bounds_the_whole_run(runtime_factory: RuntimeFactory, otel: Otel) -> None:
    runtime = runtime_factory(deadline_seconds=0.3, app_options=otel.app_options)
    started = time.monotonic()
    response = runtime.invoke("assistant", "slow")
    assert time.monotonic() - started < 1.4
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "deadline_exceeded"
    assert otel.span("invoke_agent assistant").attributes["error.type"] == "deadline_exceeded"


def test_the_deadline_also_bounds_a_stream(runtime_factory: RuntimeFactory, otel: Otel) -> None:
    runtime = runtime_factory(deadline_seconds=0.3, app_options=otel.app_options)
    body = {"model": "assistant", "messages": [{"role": "user", "content": "slow"}], "stream": True}
    response = runtime.post("/v1/chat/completions", body)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "deadline_exceeded"
    assert otel.span("invoke_agent assistant").attributes["error.type"] == "deadline_exceeded"


def test_the_deadline_bounds_a_run_between_its_tools_and_model_calls(
    runtime_factory: RuntimeFactory, otel: Otel
) -> None:
    """The run's one timer covers the tool turn too: a tool that sleeps past the deadline is cut."""
    runtime = runtime_factory(deadline_seconds=0.5, app_options=otel.app_options)
    started = time.monotonic()
    response = runtime.invoke("assistant", "nap")
    assert time.monotonic() - started < 2.0
    assert response.json()["error"]["code"] == "deadline_exceeded"
    assert otel.span("invoke_agent assistant").attributes["error.type"] == "deadline_exceeded"


def test_the_token_budget_stops_a_run_that_spent_it(runtime_factory: RuntimeFactory) -> None:
    agents = [{**AGENTS[0], "token_budget": 5}]
    response = runtime_factory(agents=json.dumps(agents)).invoke("assistant", "calc 1+1")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "budget_exceeded"


def test_a_failing_model_endpoint_is_a_502(runtime: Runtime) -> None:
    response = runtime.invoke("assistant", "fail")
    assert response.status_code == 502
    assert response.json()["error"] == {
        "code": "model_error",
        "message": "the model endpoint answered HTTP 500: scripted failure (HTTP 500)",
    }


def test_an_unreachable_model_endpoint_is_a_502(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory(llm_endpoint="http://127.0.0.1:9/v1")
    response = runtime.invoke("assistant", "hello")
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "the model endpoint is unreachable"
