"""Tools with side effects the task tests can count, and the model script that calls them.

``pay`` applies a payment to ``effects.db`` beside the runtime's state file the way a real payment API
does: at most once per idempotency key, with every attempt counted. It is what the kill test watches: a
task whose side effect was applied twice would have two ``payments`` rows (different keys).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pydantic import BaseModel

from agent_runtime.testing import Rule, Script, ScriptedToolCall
from agent_runtime.tools import ToolContext, ToolRegistry


class PayArgs(BaseModel):
    ref: str
    seconds: float = 0.0


class TransferArgs(BaseModel):
    amount: int
    iban: str


class NapArgs(BaseModel):
    seconds: float


TRANSFERS: list[str] = []
"""Transfers executed in this process (the approval tests run their worker in-process)."""


def effects_path(ctx: ToolContext) -> Path:
    return Path(ctx.settings.sqlite_path).with_name("effects.db")


def apply_payment(path: Path, key: str, ref: str) -> None:
    with sqlite3.connect(path, timeout=10) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS payments (key TEXT PRIMARY KEY, ref TEXT NOT NULL)")
        conn.execute("CREATE TABLE IF NOT EXISTS attempts (key TEXT NOT NULL, ref TEXT NOT NULL)")
        conn.execute("INSERT INTO attempts (key, ref) VALUES (?, ?)", (key, ref))
        conn.execute("INSERT OR IGNORE INTO payments (key, ref) VALUES (?, ?)", (key, ref))


def payments(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path, timeout=10) as conn:
        return conn.execute("SELECT key, ref FROM payments ORDER BY ref").fetchall()


def attempts(path: Path) -> int:
    with sqlite3.connect(path, timeout=10) as conn:
        return conn.execute("SELECT count(*) FROM attempts").fetchone()[0]


async def pay(args: PayArgs, ctx: ToolContext) -> str:
    """Pay ``ref`` (idempotent downstream: keyed by the call's idempotency key)."""
    assert ctx.idempotency_key, "a side-effecting tool always gets an idempotency key"
    await asyncio.sleep(args.seconds / 2)
    await asyncio.to_thread(apply_payment, effects_path(ctx), ctx.idempotency_key, args.ref)
    await asyncio.sleep(args.seconds / 2)
    return f"paid {args.ref}"


async def transfer(args: TransferArgs, ctx: ToolContext) -> str:
    """Transfer money (a reviewer must approve every call)."""
    TRANSFERS.append(f"{args.amount}:{ctx.idempotency_key}")
    return f"transferred {args.amount}"


async def nap(args: NapArgs, ctx: ToolContext) -> str:
    """Sleep, then ask to go on (the model keeps calling it: a long-running task)."""
    await asyncio.sleep(args.seconds)
    return "nap again"


def register(registry: ToolRegistry) -> ToolRegistry:
    registry.tool(side_effects=True)(pay)
    registry.tool(requires_approval=True)(transfer)
    registry.tool()(nap)
    return registry


def call(name: str, arguments: dict[str, object]) -> tuple[ScriptedToolCall, ...]:
    return (ScriptedToolCall(name=name, arguments=arguments),)


SCRIPT = Script(
    [
        Rule(
            pattern=r"^pay (?P<ref>\S+) (?P<s>[\d.]+)$",
            tool_calls=call("pay", {"ref": r"\g<ref>", "seconds": r"\g<s>"}),
            delay=0.05,
        ),
        Rule(
            pattern=r"^transfer (?P<amount>\d+)$",
            tool_calls=call("transfer", {"amount": r"\g<amount>", "iban": "DE89370400440532013000"}),
        ),
        Rule(
            pattern=r"^transfer twice$",
            tool_calls=call("transfer", {"amount": 1, "iban": "x"})
            + call("transfer", {"amount": 2, "iban": "y"}),
        ),
        Rule(pattern=r"nap", on="any", tool_calls=call("nap", {"seconds": 0.2})),
        Rule(pattern=r"^fail$", status=500),
    ]
)

AGENTS = [
    {
        "name": "payer",
        "instructions": "Pay.",
        "tools": ["pay", "transfer", "nap"],
        "memory": {"persist": False},
    },
]
