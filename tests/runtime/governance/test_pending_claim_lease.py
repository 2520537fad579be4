"""A side-effecting call's pending claim has a lease: an attempt that died with its process (its claim never
completed nor released) no longer makes every retry with the same key "still running" for the whole
idempotency window; once the lease lapses, the retry runs the call again under the same key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent_runtime.caller import Caller
from agent_runtime.governance.ledger_sqlite import SqliteLedger
from agent_runtime.llm import ToolCall
from agent_runtime.tools import ToolContext, ToolRegistry
from agent_runtime.tools import executor as executor_module
from agent_runtime.tools.executor import ToolExecutor

pytestmark = pytest.mark.anyio

TIMEOUT, MARGIN = 0.05, 0.2


class PayArgs(BaseModel):
    amount: int


def payments_registry(paid: list[str | None], crash: list[bool]) -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool(side_effects=True, description="Pay (a side effect).")
    async def pay(args: PayArgs, ctx: ToolContext) -> str:
        if crash and crash.pop():
            raise RuntimeError("the process dies here")
        paid.append(ctx.idempotency_key)
        return f"paid {args.amount}"

    return registry


def context() -> ToolContext:
    # The executor reads only who calls, for which agent; the shared clients are not used by this tool.
    none: Any = None
    return ToolContext(Caller("alice", frozenset({"user"})), "payer", none, none, none, none, none)


async def test_a_retry_runs_a_call_whose_attempt_died_once_its_claim_lapses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor_module, "PENDING_LEASE_MARGIN_SECONDS", MARGIN)
    ledger = await SqliteLedger.open(str(tmp_path / "ledger.db"))
    paid: list[str | None] = []
    executor = ToolExecutor(
        payments_registry(paid, crash=[True]), timeout_seconds=TIMEOUT, ledger=ledger, idempotency_ttl=3600
    )
    call = ToolCall("call_1", "pay", json.dumps({"amount": 5}))

    async def attempt() -> str:
        result = await executor.run(call, agent_tools=["pay"], context=context(), idempotency_scope="req-1")
        return result.content

    async def died(key: str) -> None:  # the process died: the claim is neither completed nor released
        return None

    try:
        monkeypatch.setattr(ledger, "release", died)
        assert "failed" in await attempt()
        monkeypatch.undo()
        monkeypatch.setattr(executor_module, "PENDING_LEASE_MARGIN_SECONDS", MARGIN)
        assert "still running for an earlier attempt" in await attempt(), "within the lease: it may be"
        await asyncio.sleep(TIMEOUT + MARGIN + 0.1)
        assert await attempt() == "paid 5", "the lease lapsed: the attempt died, the call runs again"
        assert await attempt() == "paid 5", "and its result is kept for the idempotency window"
    finally:
        await ledger.close()
    assert len(paid) == 1 and paid[0] is not None
