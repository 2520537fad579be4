"""Model routing: small prompts, declared task classes and budget pressure go to the cheaper deployment,
and the choice is in the trace."""

from __future__ import annotations

import json

from otel_helpers import Otel
from runtime_helpers import RuntimeFactory

from agent_runtime.testing import ScriptedModelServer

ROUTED = {
    "name": "routed",
    "model": "gpt-4o",
    "routing": {"cheap_model": "gpt-4o-mini", "max_prompt_chars": 20, "task_classes": ["smalltalk"]},
}
PRESSURED = {
    "name": "pressured",
    "model": "gpt-4o",
    "routing": {"cheap_model": "gpt-4o-mini", "budget_pressure": 0.5},
}


def test_small_prompts_and_cheap_task_classes_go_to_the_cheap_model(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer, otel: Otel
) -> None:
    runtime = runtime_factory(agents=json.dumps([ROUTED]), app_options=otel.app_options)
    small = runtime.invoke("routed", "hi").json()
    large = runtime.invoke("routed", "please summarise the quarterly report for me").json()
    chat = {
        "model": "routed",
        "messages": [{"role": "user", "content": "a long question about nothing much at all"}],
    }
    tagged = runtime.post("/v1/chat/completions", chat | {"metadata": {"task_class": "smalltalk"}})
    assert tagged.status_code == 200
    assert [r["model"] for r in model.requests] == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    assert (small["steps"][0]["route"], large["steps"][0]["route"]) == ("small_prompt", "default")
    reasons = [
        s.attributes["agentstage.route.reason"]
        for s in otel.spans.get_finished_spans()
        if s.name.startswith("chat")
    ]
    assert reasons == ["small_prompt", "default", "task_class"]


def test_a_budget_near_its_limit_routes_to_the_cheap_model(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer
) -> None:
    budgets = [{"name": "daily", "scope": "agent", "window_seconds": 86400, "requests": 4}]
    runtime = runtime_factory(agents=json.dumps([PRESSURED]), budgets=json.dumps(budgets))
    routes = [runtime.invoke("pressured", "hello").json()["steps"][0]["route"] for _ in range(4)]
    assert routes == ["default", "budget_pressure", "budget_pressure", "budget_pressure"]
    assert [r["model"] for r in model.requests] == ["gpt-4o"] + ["gpt-4o-mini"] * 3
