"""An approval covers exactly the call the reviewer was shown: its real arguments, its id, tool and argument
digest; and a decision whose message was lost can be repeated."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from task_effects import SCRIPT, TRANSFERS
from task_stack import Stack, close_stack, open_stack, parked, run_worker_until, task_settings

from agent_runtime.bus.base import BusError, OutgoingMessage
from agent_runtime.caller import Caller
from agent_runtime.tasks.errors import TaskStateConflict
from agent_runtime.tasks.model import TaskState
from agent_runtime.testing import ScriptedModelServer
from agent_runtime.testing.script import Reply, Script

pytestmark = pytest.mark.anyio

ALICE = Caller("alice", frozenset({"user"}))
RITA = Caller("rita", frozenset({"user", "reviewer"}))
GOOD, EVIL = "DE89370400440532013000", "GB82WEST12345698765432"


class Transfers(Script):
    """``pay to <iban>``: one transfer of 900 to it; ``transfer dup``: two transfers sharing one call id."""

    def reply(self, messages: Sequence[dict[str, Any]]) -> Reply:
        text = messages[-1].get("content") if messages and messages[-1].get("role") == "user" else None
        if text == "transfer dup":
            return Reply(
                None,
                (
                    ("call_same", "transfer", {"amount": 1, "iban": GOOD}),
                    ("call_same", "transfer", {"amount": 1000000, "iban": EVIL}),
                ),
            )
        if isinstance(text, str) and text.startswith("pay to "):
            return Reply(None, (("call_1", "transfer", {"amount": 900, "iban": text.split()[-1]}),))
        return super().reply(messages)


@pytest.fixture(scope="module")
def transfers_model() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(Transfers(SCRIPT.rules)) as server:
        yield server


@pytest.fixture
async def bank(transfers_model: ScriptedModelServer, tmp_path: Path) -> AsyncIterator[Stack]:
    TRANSFERS.clear()
    opened = await open_stack(task_settings(transfers_model, tmp_path))
    yield opened
    await close_stack(opened)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def amounts() -> list[str]:
    return [transfer.split(":")[0] for transfer in TRANSFERS]


async def test_a_turn_whose_calls_share_an_id_is_refused(bank: Stack) -> None:
    record, _ = await bank.tasks.submit("payer", user("transfer dup"), ALICE)
    done = await run_worker_until(bank, record.id, lambda r: r.state.finished or parked(r))
    assert done.state is TaskState.FAILED
    assert done.error is not None and done.error["code"] == "model_error"
    assert "share an id" in done.error["message"]
    assert TRANSFERS == []


async def test_an_approval_never_covers_another_call_with_the_same_id(bank: Stack) -> None:
    """A checkpoint holding a second call under the approved call's id (one written before turns like that
    were refused): the approval is bound to the arguments the reviewer saw, so the second call parks."""
    record, _ = await bank.tasks.submit("payer", user(f"pay to {GOOD}"), ALICE)
    waiting = await run_worker_until(bank, record.id, parked)
    assert waiting.checkpoint is not None
    checkpoint = json.loads(json.dumps(waiting.checkpoint))
    [call] = checkpoint["prompt"][-1]["tool_calls"]
    smuggled = {
        **call,
        "function": {**call["function"], "arguments": json.dumps({"amount": 5, "iban": EVIL})},
    }
    checkpoint["prompt"][-1]["tool_calls"].append(smuggled)
    await bank.tasks.store.replace(
        waiting.model_copy(update={"checkpoint": checkpoint}), expected_version=waiting.version
    )
    await bank.tasks.decide(record.id, RITA, approve=True)
    again = await run_worker_until(
        bank, record.id, lambda r: r.state.finished or (parked(r) and r.approval.decision is None)
    )
    assert TRANSFERS == []  # a turn's calls run once each is approved
    assert again.state is TaskState.AWAITING_APPROVAL
    assert again.approval is not None and again.approval.arguments["amount"] == 5


async def test_the_reviewer_sees_and_the_audit_digests_the_real_arguments(
    bank: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tasks = {}
    for iban in (GOOD, EVIL):
        record, _ = await bank.tasks.submit("payer", user(f"pay to {iban}"), ALICE)
        tasks[iban] = await run_worker_until(bank, record.id, parked)
    queue = {record.id: record for record in await bank.tasks.awaiting_review(RITA)}
    for iban, waiting in tasks.items():
        assert waiting.approval is not None and waiting.checkpoint is not None
        assert queue[waiting.id].approval.arguments == {"amount": 900, "iban": iban}  # type: ignore[union-attr]
        reviewed = await bank.tasks.get(waiting.id, RITA)
        assert reviewed.approval is not None and reviewed.approval.arguments["iban"] == iban
        # The creator (and whoever else reads the task), callbacks and the stored copy: redacted.
        created = await bank.tasks.get(waiting.id, ALICE)
        assert created.approval is not None and iban not in json.dumps(dict(created.approval.arguments))
        assert iban not in json.dumps(dict(waiting.approval.arguments))
        [call] = waiting.checkpoint["prompt"][-1]["tool_calls"]
        real = hashlib.sha256(call["function"]["arguments"].encode()).hexdigest()
        [requested] = [
            json.loads(r.getMessage())
            for r in caplog.records
            if r.name == "agentstage.audit" and waiting.id in r.getMessage()
        ]
        assert requested["args_sha256"] == real
    assert not any(iban in r.getMessage() for r in caplog.records for iban in (GOOD, EVIL))


async def test_a_repeated_approval_resends_the_message_its_first_send_lost(bank: Stack) -> None:
    record, _ = await bank.tasks.submit("payer", user(f"pay to {GOOD}"), ALICE)
    await run_worker_until(bank, record.id, parked)
    working = bank.tasks.bus.send
    lost: list[str] = []

    async def lose_once(queue: str, message: OutgoingMessage) -> None:
        if not lost:
            lost.append(message.message_id or "")
            raise BusError("simulated bus failure")
        await working(queue, message)

    bank.tasks.bus.send = lose_once  # type: ignore[method-assign]
    with pytest.raises(BusError):
        await bank.tasks.decide(record.id, RITA, approve=True)
    retried = await bank.tasks.decide(record.id, RITA, approve=True)
    assert retried.state is TaskState.QUEUED
    done = await run_worker_until(bank, record.id, lambda r: r.state.finished)
    assert done.state is TaskState.SUCCEEDED
    assert amounts() == ["900"]


async def test_a_decision_names_the_call_it_was_made_for(bank: Stack) -> None:
    """A reviewer's client sends the digest it showed: a decision arriving after the task moved on to
    another call (a double submit, the second after the run resumed and parked again) is refused."""
    record, _ = await bank.tasks.submit("payer", user(f"pay to {GOOD}"), ALICE)
    waiting = await run_worker_until(bank, record.id, parked)
    assert waiting.approval is not None and waiting.approval.args_sha256 is not None
    with pytest.raises(TaskStateConflict, match="now waits on another call"):
        await bank.tasks.decide(record.id, RITA, approve=True, args_sha256="0" * 64)
    unchanged = await bank.tasks.get(record.id, RITA)
    assert unchanged.state is TaskState.AWAITING_APPROVAL and unchanged.approval is not None
    assert unchanged.approval.decision is None
    decided = await bank.tasks.decide(record.id, RITA, approve=True, args_sha256=waiting.approval.args_sha256)
    assert decided.state is TaskState.QUEUED
