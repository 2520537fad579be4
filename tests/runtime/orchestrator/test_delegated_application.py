"""Delegation keeps the caller's application: the sub-tasks an orchestrator hands out over the bus spend the
budgets of the application that called the orchestrator, whether it ran in the request or as a task, never
the shared quota of the unknown application."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from orchestration_stack import open_stack

from agent_runtime.caller import Caller
from agent_runtime.orchestrator.errors import DelegationFailed
from agent_runtime.tasks.model import TaskState
from agent_runtime.testing import ScriptedModelServer

FOREVER = 10**8
"""A budget window no test run crosses the end of."""
PORTAL_RUNS = json.dumps(
    [
        {
            "name": "portal-runs",
            "scope": "application",
            "match": "portal",
            "window_seconds": FOREVER,
            "requests": 1,
        }
    ]
)
"""One delegate run (its first model call) for the portal application; no limit for any other."""
PORTAL_ALICE = Caller("alice", frozenset({"user"}), application="portal")
KIOSK_ALICE = Caller("alice", frozenset({"user"}), application="kiosk")
POEM = "a poem, please"  # no rule matches: lead delegates to its default agent, writer; lead calls no model
SPENT = "no delegate answered: 'writer' failed (quota_exceeded)"


def test_sub_tasks_spend_the_budget_of_the_application_that_called_the_orchestrator(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with open_stack(model, tmp_path, budgets=PORTAL_RUNS) as stack:
            first = await stack.run("lead", POEM, caller=PORTAL_ALICE)
            assert first.answer == f"[writer]\n{POEM}"
            with pytest.raises(DelegationFailed) as spent:
                await stack.run("lead", POEM, caller=PORTAL_ALICE)
            assert spent.value.message == SPENT, "the portal's one run went to its first delegation"
            other = await stack.run("lead", POEM, caller=KIOSK_ALICE)
            assert other.answer == f"[writer]\n{POEM}", "another application's delegations are its own"

    asyncio.run(scenario())


def test_an_orchestrator_run_as_a_task_hands_its_application_to_its_sub_tasks(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with open_stack(model, tmp_path, budgets=PORTAL_RUNS) as stack:
            loop = asyncio.get_running_loop()
            for expected in (TaskState.SUCCEEDED, TaskState.FAILED):
                parent, _ = await stack.tasks.submit(
                    "lead", [{"role": "user", "content": POEM}], PORTAL_ALICE
                )
                [done] = await stack.tasks.wait([parent.id], loop.time() + 5)
                assert done.state is expected, done.error
                [child] = await stack.tasks.store.children(parent.id)
                assert (child.caller, child.application) == ("alice", "portal")
            assert done.error is not None and done.error["message"] == SPENT
            assert child.error is not None and "application 'portal'" in child.error["message"]

    asyncio.run(scenario())
