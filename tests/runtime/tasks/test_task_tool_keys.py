"""Inside a task, a side-effecting call is keyed by (task, step, call index): a re-run after a crash
replays it even when the model words it with another call id, and a call cut off mid-way runs again
under the same key (which the tool passes downstream)."""

from __future__ import annotations

from pathlib import Path

import pytest
from task_effects import attempts, payments
from task_stack import Stack

from agent_runtime.caller import Caller
from agent_runtime.runner import RunOptions
from agent_runtime.tools.executor import idempotency_key

pytestmark = pytest.mark.anyio

ALICE = Caller("alice", frozenset({"user"}))
PAY = {"role": "user", "content": "pay k1 0"}


def effects(stack: Stack) -> Path:
    return Path(stack.settings.sqlite_path).with_name("effects.db")


async def run(stack: Stack, messages: list[dict[str, str]], **options: object) -> str:
    agent = stack.services.catalog.get("payer")
    result = await stack.services.runner.run(agent, messages, RunOptions(caller=ALICE, **options))  # type: ignore[arg-type]
    return result.answer


async def test_a_rerun_of_a_task_replays_its_side_effect_whatever_the_call_id(stack: Stack) -> None:
    assert await run(stack, [PAY], task_id="t1") == "paid k1"
    # A longer prompt makes the scripted model number its call differently (call_2_0, then call_3_0).
    assert await run(stack, [{"role": "system", "content": "again"}, PAY], task_id="t1") == "paid k1"
    assert attempts(effects(stack)) == 1
    assert await run(stack, [PAY], task_id="t2") == "paid k1"  # another task: its own payment
    assert len(payments(effects(stack))) == 2


async def test_outside_tasks_the_call_id_and_request_key_scope_the_side_effect(stack: Stack) -> None:
    await run(stack, [PAY], request_key="r1")
    await run(stack, [PAY], request_key="r1")
    await run(stack, [PAY], request_key="r2")
    assert attempts(effects(stack)) == 2


async def test_a_call_cut_off_by_a_dead_worker_runs_again_under_the_same_key(stack: Stack) -> None:
    key = idempotency_key("payer", ALICE, "task\0t9\0" + "0\0" + "0\0pay")
    assert await stack.services.ledger.claim(key, 60) is None  # the dead attempt's claim, never completed
    refused = await run(stack, [PAY], task_id="t9")
    assert "still running for an earlier attempt" in refused
    assert await run(stack, [PAY], task_id="t9", takeover=True) == "paid k1"
    assert payments(effects(stack)) == [(key, "k1")]
