"""The model router: a strict JSON answer picks the delegates; anything else falls back to the rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from orchestration_stack import Stack, open_stack

from agent_runtime.agents import Orchestration
from agent_runtime.orchestrator.routing import parse_router_answer, route_by_rules
from agent_runtime.orchestrator.runner import OrchestrationResult
from agent_runtime.testing import Faults, ScriptedModelServer


def delegates_of(result: object) -> list[str]:
    assert isinstance(result, OrchestrationResult)
    return [d.agent for d in result.delegations]


def router_fallbacks(stack: Stack) -> list[str]:
    return [
        str((event.attributes or {})["reason"])
        for span in stack.finished_spans()
        if span.name == "orchestrate picker"
        for event in span.events
        if event.name == "router_fallback"
    ]


def test_the_models_json_choice_is_followed(model: ScriptedModelServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with open_stack(model, tmp_path) as stack:
            assert delegates_of(await stack.run("picker", "numbers for Q3")) == ["research"]
            assert delegates_of(await stack.run("picker", "both of you")) == ["research", "writer"]
            assert router_fallbacks(stack) == []

    asyncio.run(scenario())
    router = [r for r in model.requests if r["model"] == "m-router"]
    assert len(router) == 2
    system = router[0]["messages"][0]["content"]
    assert "- research: Finds facts and numbers." in system and "- writer: Writes prose." in system
    assert "tools" not in router[0], "the router is offered no tools"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("chatty request", "unusable answer: not JSON"),
        ("a stranger asks", "unusable answer: 'hacker' is not a delegate"),
    ],
)
def test_an_unusable_answer_falls_back_to_the_rules(
    model: ScriptedModelServer, tmp_path: Path, text: str, reason: str
) -> None:
    async def scenario() -> None:
        async with open_stack(model, tmp_path) as stack:
            result = await stack.run("picker", text)
            assert delegates_of(result) == ["writer"], "picker's default agent"
            assert result.answer == f"[writer]\n{text}"
            [fallback] = router_fallbacks(stack)
            assert fallback.startswith(reason)

    asyncio.run(scenario())


def test_a_failing_router_model_falls_back_to_the_rules(model: ScriptedModelServer, tmp_path: Path) -> None:
    model.faults["m-router"] = Faults(rate_500=1.0)

    async def scenario() -> None:
        async with open_stack(model, tmp_path) as stack:
            assert delegates_of(await stack.run("picker", "numbers for Q3")) == ["writer"]
            assert router_fallbacks(stack) == ["model call failed: model_error"]

    asyncio.run(scenario())


DELEGATES = ("research", "writer")


@pytest.mark.parametrize(
    ("answer", "single", "error"),
    [
        ('{"agents": ["research"]} trailing', False, "not JSON"),
        ('```json\n{"agents": ["research"]}\n```', False, "not JSON"),
        ('["research"]', False, 'not an object with exactly the key "agents"'),
        ('{"agents": ["research"], "why": "facts"}', False, 'not an object with exactly the key "agents"'),
        ('{"agents": []}', False, '"agents" is not a non-empty list of names'),
        ('{"agents": "research"}', False, '"agents" is not a non-empty list of names'),
        ('{"agents": ["research", "writer"]}', True, "handoff needs exactly one agent"),
        (None, False, "not JSON"),
    ],
)
def test_router_answers_are_parsed_strictly(answer: str | None, single: bool, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_router_answer(answer, DELEGATES, single=single)


def test_a_router_answer_is_deduplicated_in_order() -> None:
    answer = ' {"agents": ["writer", "research", "writer"]}\n'
    assert parse_router_answer(answer, DELEGATES, single=False) == ("writer", "research")


def test_the_first_matching_rule_wins() -> None:
    plan = Orchestration.model_validate(
        {
            "delegates": DELEGATES,
            "rules": [{"match": "(?i)draft", "agents": ["writer"]}, {"match": "data", "agents": DELEGATES}],
        }
    )
    assert route_by_rules(plan, "Draft from the data").agents == ("writer",)
    assert route_by_rules(plan, "the data").agents == DELEGATES
    assert route_by_rules(plan, "nothing matches").agents == DELEGATES, "no default_agents: every delegate"
