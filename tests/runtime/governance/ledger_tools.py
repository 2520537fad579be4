"""A side-effecting tool for runtime processes started by the shared-ledger tests.

Imported by each runtime through ``AGENTSTAGE_TOOL_MODULES`` (``@tool`` registers it in the default
registry): every execution appends one line to the file ``LEDGER_TEST_EFFECTS`` names, so a test can
count how often the side effect really happened, across processes.
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

from agent_runtime.tools import ToolContext, tool


class ChargeArgs(BaseModel):
    amount: int


def _record(line: str) -> None:
    with open(os.environ["LEDGER_TEST_EFFECTS"], "a", encoding="utf-8") as effects:
        effects.write(line)


@tool(side_effects=True, description="Charge the caller (a side effect that must never repeat).")
async def charge(args: ChargeArgs, ctx: ToolContext) -> str:
    await asyncio.to_thread(_record, f"{os.getpid()} charged {args.amount}\n")
    return f"charged {args.amount}"
