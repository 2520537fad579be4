"""A task spends the budgets of the application that submitted it: the worker runs it as the submitting
caller's application, so moving work into tasks never moves its spending to the shared ``unknown`` quota.
Records stored before tasks carried an application still run, as the unknown application."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from task_stack import Stack, close_stack, open_stack, run_worker_until_finished, task_settings

from agent_runtime.caller import UNKNOWN_APPLICATION, Caller
from agent_runtime.tasks.model import TaskRecord, TaskState
from agent_runtime.testing import ScriptedModelServer

pytestmark = pytest.mark.anyio

FOREVER = 10**8
"""A budget window no test run crosses the end of."""
ONE_RUN_PER_APPLICATION = [
    {"name": "app-runs", "scope": "application", "match": "*", "window_seconds": FOREVER, "requests": 1}
]
PORTAL_ALICE = Caller("alice", frozenset({"user"}), application="portal")
KIOSK_ALICE = Caller("alice", frozenset({"user"}), application="kiosk")
UNNAMED_BOB = Caller("bob", frozenset({"user"}))


@pytest.fixture
async def budgeted(task_model: ScriptedModelServer, tmp_path: Path) -> AsyncIterator[Stack]:
    """The task stack with one run (its first model call) allowed per application and window."""
    settings = task_settings(task_model, tmp_path, budgets=json.dumps(ONE_RUN_PER_APPLICATION))
    opened = await open_stack(settings)
    yield opened
    await close_stack(opened)


async def run_task(stack: Stack, caller: Caller, ref: str) -> TaskRecord:
    record, _ = await stack.tasks.submit("payer", [{"role": "user", "content": f"pay {ref} 0"}], caller)
    [done] = await run_worker_until_finished(stack, [record.id])
    return done


def refused_for(record: TaskRecord, application: str) -> bool:
    error = record.error or {}
    return (
        record.state is TaskState.FAILED
        and error.get("code") == "quota_exceeded"
        and f"budget 'app-runs' of application '{application}'" in str(error.get("message"))
    )


async def test_a_task_spends_the_budget_of_the_application_that_submitted_it(budgeted: Stack) -> None:
    first = await run_task(budgeted, PORTAL_ALICE, "p1")
    assert first.state is TaskState.SUCCEEDED, first.error
    assert first.application == "portal"

    second = await run_task(budgeted, PORTAL_ALICE, "p2")
    assert refused_for(second, "portal"), second.error

    other_application = await run_task(budgeted, KIOSK_ALICE, "k1")
    assert other_application.state is TaskState.SUCCEEDED, (
        f"the same caller through another application has a quota of its own: {other_application.error}"
    )
    unnamed = await run_task(budgeted, UNNAMED_BOB, "u1")
    assert unnamed.state is TaskState.SUCCEEDED, (
        f"no task spent the unknown application's run: {unnamed.error}"
    )


async def test_a_task_stored_before_applications_runs_as_the_unknown_application(budgeted: Stack) -> None:
    queued, _ = await budgeted.tasks.submit("payer", [{"role": "user", "content": "pay old 0"}], PORTAL_ALICE)
    legacy = json.loads(queued.model_dump_json())
    del legacy["application"]
    with sqlite3.connect(budgeted.settings.sqlite_path) as conn:  # the record as an older runtime wrote it
        conn.execute("UPDATE tasks SET record = ? WHERE id = ?", (json.dumps(legacy), queued.id))
    stored = await budgeted.tasks.store.get(queued.id)
    assert stored is not None and stored.application == UNKNOWN_APPLICATION

    [done] = await run_worker_until_finished(budgeted, [queued.id])
    assert done.state is TaskState.SUCCEEDED, done.error
    assert refused_for(await run_task(budgeted, UNNAMED_BOB, "u2"), UNKNOWN_APPLICATION), (
        "the legacy task spent the unknown application's run"
    )
    assert (await run_task(budgeted, PORTAL_ALICE, "p3")).state is TaskState.SUCCEEDED
