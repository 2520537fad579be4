"""One trace from the caller through the orchestrator, the bus and the delegate to its tools; and the
orchestrator itself run as a task, whose sub-tasks name it as their parent."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from orchestration_stack import ALICE, open_stack

from agent_runtime.tasks.model import TaskState
from agent_runtime.testing import ScriptedModelServer

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{CALLER_TRACE}-b7ad6b7169203331-01"


def test_one_trace_spans_orchestrator_bus_delegate_and_tools(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    spans: list[ReadableSpan] = []

    async def scenario() -> None:
        async with open_stack(model, tmp_path) as stack:
            result = await stack.run("lead", "calc 6*7", trace_headers={"traceparent": TRACEPARENT})
            assert result.answer == "[research]\nThe answer is 42."
            spans.extend(stack.finished_spans())

    asyncio.run(scenario())
    by_name = {span.name: span for span in spans}
    chain = [
        "orchestrate lead",
        "delegate research",
        "task research",
        "invoke_agent research",
        "execute_tool calculator",
    ]
    for child, parent in zip(chain[1:], chain, strict=False):
        assert parent_id(by_name[child]) == span_id(by_name[parent]), f"{child} under {parent}"
    assert {f"{span.context.trace_id:032x}" for span in spans} == {CALLER_TRACE}, "a single trace"
    orchestrate = by_name["orchestrate lead"].attributes or {}
    assert orchestrate["gen_ai.operation.name"] == "invoke_agent"
    assert orchestrate["agentstage.orchestration.selected"] == ("research",)
    delegate = by_name["delegate research"].attributes or {}
    assert (delegate["messaging.system"], delegate["messaging.destination.name"]) == (
        "sqlite",
        "agentstage-tasks",
    )
    assert delegate["agentstage.delegation.status"] == "succeeded"
    assert isinstance(tokens := delegate["gen_ai.usage.input_tokens"], int) and tokens > 0


def span_id(span: ReadableSpan) -> int | None:
    return span.context.span_id if span.context else None


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def test_the_orchestrator_runs_as_a_task_and_parents_its_sub_tasks(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with open_stack(model, tmp_path) as stack:
            parent, _ = await stack.tasks.submit("lead", [{"role": "user", "content": "everyone, go"}], ALICE)
            loop = asyncio.get_running_loop()
            [done] = await stack.tasks.wait([parent.id], loop.time() + 5)
            assert done.state is TaskState.SUCCEEDED, done.error
            assert done.result is not None and done.result["answer"].startswith("[research]\neveryone, go")
            children = await stack.tasks.store.children(parent.id)
            assert sorted(child.agent for child in children) == ["flaky", "research", "slow", "writer"]
            assert {child.caller for child in children} == {"alice"}, "sub-tasks run as the caller"
            again, created = await stack.tasks.submit(
                "research",
                [{"role": "user", "content": "everyone, go"}],
                ALICE,
                idempotency_key=f"{parent.id}:delegate:research",
            )
            assert not created and again.parent_id == parent.id, "a redelivered parent finds its sub-tasks"

    asyncio.run(scenario())
