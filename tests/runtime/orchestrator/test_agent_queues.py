"""``AGENTSTAGE_AGENT_QUEUES``: checked when the runtime is assembled, and an agent routed to another
deployment's queue is delegated there and never run here (where it would run under the wrong identity)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from orchestration_stack import AGENTS, ALICE, open_stack

from agent_runtime.errors import ConfigurationError
from agent_runtime.memory.factory import open_stores
from agent_runtime.orchestrator.errors import ServedElsewhere
from agent_runtime.orchestrator.runner import OrchestrationResult
from agent_runtime.runner import RunOptions
from agent_runtime.services import Assembly
from agent_runtime.settings import Settings
from agent_runtime.testing import ScriptedModelServer
from agent_runtime.tools import ToolRegistry
from agent_runtime.tools.builtins import builtin_tools


@pytest.mark.parametrize(
    ("agent_queues", "complaint"),
    [
        ("{not json", "AGENTSTAGE_AGENT_QUEUES is not valid JSON"),
        ('["tasks-research"]', "AGENTSTAGE_AGENT_QUEUES must be a JSON object"),
        ('{"reseach": "tasks-research"}', "'reseach' is not a configured agent"),
        ('{"research": ""}', "'research' must map to a queue name"),
    ],
)
def test_a_wrong_agent_queues_fails_assembly_naming_the_entry(agent_queues: str, complaint: str) -> None:
    settings = Settings(llm_auth="none", agents=json.dumps(AGENTS), agent_queues=agent_queues)
    with pytest.raises(ConfigurationError, match=complaint):
        Assembly.from_settings(settings, ToolRegistry(builtin_tools()), open_stores)


def test_an_agent_routed_elsewhere_is_delegated_to_its_queue_and_never_run_here(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        routes = json.dumps({"writer": "tasks-writer"})
        async with open_stack(model, tmp_path, agent_queues=routes) as stack:
            elsewhere = r"agent 'writer' runs in another deployment \(queue 'tasks-writer'\)"
            with pytest.raises(ServedElsewhere, match=elsewhere):
                await stack.run("writer", "a poem, please")
            with pytest.raises(ServedElsewhere):
                stack.runner.stream(
                    stack.agent("writer"), [{"role": "user", "content": "hi"}], RunOptions(caller=ALICE)
                )

            result = await stack.run("picker", "both of you, please")  # the router picks research and writer
            assert isinstance(result, OrchestrationResult)
            research, writer = result.delegations
            assert (research.agent, research.status) == ("research", "succeeded"), "unrouted: runs here"
            assert (writer.agent, writer.status) == ("writer", "timed_out"), "nobody here serves it"
            [message] = await stack.tasks.bus.receive("tasks-writer", wait_seconds=1)
            assert message.body["task_id"] == writer.task_id, "the sub-task went to the writer's queue"

    asyncio.run(scenario())
    assert "m-writer" not in [request["model"] for request in model.requests]
