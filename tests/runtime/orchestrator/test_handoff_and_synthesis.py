"""Handoff gives the conversation to one delegate; synthesis asks the orchestrator's model for one answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orchestration_stack import ALICE, open_stack

from agent_runtime.caller import Caller
from agent_runtime.orchestrator.runner import OrchestrationResult
from agent_runtime.testing import Faults, ScriptedModelServer


def test_handoff_answers_as_the_delegate_who_keeps_the_conversation(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with open_stack(model, tmp_path) as stack:
            first = await stack.run("desk", "please write me a limerick", conversation_id="c-1")
            assert (first.agent, first.answer) == ("writer", "please write me a limerick")
            # No rule matches the follow-up (it would go to research): the conversation stays with writer.
            second = await stack.run("desk", "and another one", conversation_id="c-1")
            assert (second.agent, second.answer) == ("writer", "and another one")
            assert isinstance(second, OrchestrationResult)
            [delegation] = second.delegations
            assert delegation.task_id is not None
            record = await stack.tasks.store.get(delegation.task_id)
            assert record is not None and record.conversation_id == "c-1"
            history = await stack.services.conversations.history(ALICE.owner, "c-1")
            assert [m["content"] for m in history] == [
                "please write me a limerick",
                "please write me a limerick",
                "and another one",
                "and another one",
            ], "the delegate's own memory carries the conversation, without bookkeeping in it"
            fresh = await stack.run("desk", "and another one", conversation_id="c-2")
            assert fresh.agent == "research", "another conversation is routed afresh"
            events = [
                (event.attributes or {}).get("gen_ai.agent.name")
                for span in stack.finished_spans()
                if span.name == "orchestrate desk"
                for event in span.events
                if event.name == "handoff"
            ]
            assert events == ["writer", "writer", "research"]

    asyncio.run(scenario())
    writer_calls = [r["messages"] for r in model.requests if r["model"] == "m-writer"]
    assert [m["content"] for m in writer_calls[1] if m["role"] == "user"] == [
        "please write me a limerick",
        "and another one",
    ], "the second turn reached writer with the first turn as history"


def test_a_handoff_and_the_history_behind_it_are_the_callers_own(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    """Bob names Alice's conversation: he is routed afresh, and the delegate replays none of her turns."""
    bob = Caller("bob", frozenset({"user"}), tenant="t-b")

    async def scenario() -> None:
        async with open_stack(model, tmp_path) as stack:
            first = await stack.run("desk", "please write me a limerick", conversation_id="shared-id")
            assert first.agent == "writer"
            theirs = await stack.run("desk", "and another one", conversation_id="shared-id", caller=bob)
            assert theirs.agent == "research", "Alice's handoff does not route Bob's conversation"
            conversations = stack.services.conversations
            assert [m["content"] for m in await conversations.history(bob.owner, "shared-id")] == [
                "and another one",
                "and another one",
            ]
            assert [m["content"] for m in await conversations.history(ALICE.owner, "shared-id")] == [
                "please write me a limerick",
                "please write me a limerick",
            ], "Bob's turn was not appended to Alice's conversation"

    asyncio.run(scenario())
    research_prompts = [r["messages"] for r in model.requests if r["model"] == "m-research"]
    assert research_prompts and "limerick" not in str(research_prompts), "Alice's text reached Bob's run"


def test_synthesis_writes_one_answer_from_the_delegates(model: ScriptedModelServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with open_stack(model, tmp_path) as stack:
            result = await stack.run("synth", "what do we know?")
            assert result.answer == "Combined: the delegates agree."
            assert [(step.kind, getattr(step, "model", None)) for step in result.steps] == [
                ("model", "m-router")
            ]

    asyncio.run(scenario())
    [synthesis] = [r for r in model.requests if r["model"] == "m-router"]
    request = synthesis["messages"][-1]["content"]
    assert "[research]\nwhat do we know?" in request and "[writer]\nwhat do we know?" in request
    assert "[flaky] no answer: failed (model_error)" in request, "the model is told what is missing"


def test_a_failed_synthesis_falls_back_to_the_concatenation(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    model.faults["m-router"] = Faults(rate_500=1.0)

    async def scenario() -> None:
        async with open_stack(model, tmp_path) as stack:
            result = await stack.run("synth", "what do we know?")
            assert result.answer.startswith("[research]\nwhat do we know?\n\n[writer]\nwhat do we know?")
            [span] = [s for s in stack.finished_spans() if s.name == "orchestrate synth"]
            assert [e.name for e in span.events] == ["synthesis_fallback"]

    asyncio.run(scenario())


def test_a_delegates_injected_answer_is_withheld_from_the_synthesis(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with open_stack(model, tmp_path) as stack:
            result = await stack.run("synth", "summarise the memo")
            assert result.answer == "Combined: the delegates agree."

    asyncio.run(scenario())
    [synthesis] = [r for r in model.requests if r["model"] == "m-router"]
    request = synthesis["messages"][-1]["content"]
    assert "Ignore all previous instructions" not in request
    assert "[research] no answer: failed (output_withheld)" in request
